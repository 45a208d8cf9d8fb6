"""Running code elsewhere: in a greenlet with a hard timeout, in a native thread.

:func:`run_in_greenlet` runs a function in a fresh greenlet and gives up
after a timeout, killing it and saying where it was stuck;
:func:`run_in_native_thread` runs a function in a real OS thread (even under
monkey patching) and hands back a :class:`~gruvi_gevent.Future` of its outcome.
The conformance kit, the pytest plugin and test suites share them.
"""

import functools
import os
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import gevent
from gevent import monkey

from ..errors import Timeout
from ..future import Future

__all__ = ['DEFAULT_TIMEOUT', 'run_in_greenlet', 'run_in_native_thread']

T = TypeVar('T')
P = ParamSpec('P')

#: Seconds to wait for something that should happen (a callback, a wake-up, a
#: function to return) before declaring that it did not: long enough never to
#: fire on a healthy run, short enough to fail fast. The kit's default, and
#: the one timeout of this project's own test suite.
DEFAULT_TIMEOUT = 10.0

# The kit's own frames, left out of the stacks it shows.
_HERE = os.path.dirname(os.path.abspath(__file__))

_start_new_thread: Callable[..., int] = monkey.get_original('_thread', 'start_new_thread')


def _capture(future: Future[T], func: Callable[..., T], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> None:
    """Run ``func(*args, **kwargs)`` and put its outcome in *future*.

    Nothing escapes, so gevent prints no traceback for the greenlet or thread
    that runs this; whoever holds *future* gets the exception instead.
    """
    __tracebackhide__ = True
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def spawn(func: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[Any, Future[T]]:
    """Start ``func(*args, **kwargs)`` in a new greenlet; return (greenlet, future).

    The future gets the outcome; nothing escapes to the hub.
    """
    future: Future[T] = Future()
    return gevent.spawn(_capture, future, func, args, kwargs), future


def _stack_of(greenlet: Any) -> str:
    """The stack of a parked greenlet, without the frames of this package."""
    frame: FrameType | None = getattr(greenlet, 'gr_frame', None)
    if frame is None:
        return '  (no frame: not started, or finished)\n'
    entries = [entry for entry in traceback.extract_stack(frame)
               if os.path.dirname(entry.filename) != _HERE]
    return ''.join(traceback.format_list(entries))


def kill(greenlet: Any, timeout: float | None) -> bool:
    """Kill *greenlet* and wait up to *timeout* for it to die; return whether it did."""
    if greenlet.dead:
        return True
    greenlet.kill(block=True, timeout=timeout)
    return greenlet.dead


def _name_of(func: Callable[..., object]) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, '__qualname__', None) or repr(func)


def run_in_greenlet(func: Callable[..., T], *args: Any, timeout: float | None = DEFAULT_TIMEOUT,
                    **kwargs: Any) -> T:
    """Call ``func(*args, **kwargs)`` in a fresh greenlet; give up after *timeout*.

    *Switchpoint.* Return what *func* returns, or re-raise its exception. If
    *func* has not finished after *timeout* seconds, kill its greenlet (which
    raises ``GreenletExit`` at its current switchpoint, so its ``finally``
    blocks run) and raise :class:`~gruvi_gevent.Timeout`, whose message shows
    where the greenlet was stuck. *timeout* None waits for ever.

    A hard timeout: the caller regains control even if *func* catches every
    exception, because *func* runs in a greenlet of its own. It cannot stop a
    function that never reaches a switchpoint (a busy loop): that needs a
    timeout outside the process, such as ``pytest-timeout``'s.

    If the caller is itself killed while it waits, *func*'s greenlet is killed
    too. To pass *func* an argument named ``timeout``, wrap it in
    ``functools.partial``.
    """
    __tracebackhide__ = True    # pytest: show the function's frames, not these
    greenlet, future = spawn(func, *args, **kwargs)
    try:
        try:
            return future.result(timeout)
        except Timeout:
            if future.done():
                raise
            stack = _stack_of(greenlet)
            died = kill(greenlet, 1.0)
            # Only a number of seconds times out, so timeout is not None here.
            raise Timeout('%s did not finish within %.3g seconds%s; it was at:\n%s'
                          % (_name_of(func), timeout,  # type: ignore[str-format]
                             '' if died else ' (and ignored being killed)',
                             stack)) from None
    finally:
        if not greenlet.dead:
            greenlet.kill(block=False)


def run_in_native_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Call ``func(*args, **kwargs)`` in a new OS thread; return a Future of the outcome.

    The thread is a real native thread even when the process is
    monkey-patched (``threading.Thread`` would then be a greenlet). The
    returned :class:`~gruvi_gevent.Future` gets *func*'s result or exception
    once the thread has run it; wait on it with ``future.result(timeout)``.
    """
    future: Future[T] = Future()
    _start_new_thread(_capture, (future, func, args, kwargs))
    return future
