"""Testing helpers: a conformance kit for waitables, and waitables that count.

Three kinds of helpers live here, for test suites that write or use waitables:

* **The conformance kit** checks that an object honours the whole
  :class:`~gruvi_gevent.interfaces.IWaitable` contract. It needs two functions
  of yours: ``make()`` returns a new object that is *not ready yet*, and
  ``make_ready(obj)`` makes it ready (or starts something that soon will).
  Optionally ``make_ready_from_thread(obj)`` does the same in a native thread:
  the kit calls it in an OS thread of its own, while a greenlet waits.
  :func:`check_waitable` runs every check; each check is also a function of
  its own (``check_interface``, ``check_callbacks_called_once``,
  ``check_remove``, ``check_already_ready``, ``check_remove_after_ready``,
  ``check_wait``, ``check_as_completed``, ``check_ready_from_thread``). A check
  that finds a breach raises ``AssertionError`` saying what went wrong.
  For pytest, subclass :class:`WaitableConformance` and get one test per check::

      from gruvi_gevent.testing import WaitableConformance

      class TestMyThing(WaitableConformance):
          def make(self):
              return MyThing()

          def make_ready(self, thing):
              thing.finish()

* :class:`RecordingWaitable` is a waitable of its own for people testing code
  that waits on things: it counts every add and remove, knows how many
  registrations are live, and becomes ready when told to, optionally from a
  native thread.
* :class:`CountingProxy` wraps any waitable (or an object that zope adapts to
  one) and counts the registrations made through it. The kit uses it to prove
  that ``wait()`` and ``as_completed()`` leave nothing registered.

Also :func:`run_in_greenlet` (run a function in a fresh greenlet with a hard
timeout) and :func:`run_in_native_thread` (run a function in a real OS thread,
even under monkey patching, and get a :class:`~gruvi_gevent.Future` back).

Every check, and every helper that waits, is a switchpoint: call them from a
greenlet of a thread that runs a gevent hub (the main thread of a test run
does), never from inside the hub itself. The kit never sleeps to wait for
something: it waits on the thing itself, bounded by a *timeout*.
"""

import functools
import traceback
from collections.abc import Callable, Iterable, Sequence
from types import FrameType, TracebackType
from typing import Any, NoReturn, ParamSpec, TypeVar, overload

import gevent
from gevent import monkey
from zope.interface import implementer
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from .errors import Timeout
from .future import Future
from .interfaces import IWaitable
from .waiting import as_completed, wait
from .wakeup import allocate_lock

__all__ = [
    'DEFAULT_TIMEOUT', 'SHORT_TIMEOUT',
    'check_waitable', 'check_interface', 'check_callbacks_called_once', 'check_remove',
    'check_already_ready', 'check_remove_after_ready', 'check_wait',
    'check_as_completed', 'check_ready_from_thread', 'CHECKS',
    'WaitableConformance', 'RecordingWaitable', 'CountingProxy',
    'waitable_of', 'run_in_greenlet', 'run_in_native_thread',
]

T = TypeVar('T')
P = ParamSpec('P')
# The type of the objects that a check's make() returns.
W = TypeVar('W')

#: Seconds the kit waits for something that should happen (a callback, a
#: wake-up) before it declares that it did not.
DEFAULT_TIMEOUT = 10.0

#: Seconds the kit gives a ``wait()`` or ``as_completed()`` that it *expects*
#: to time out (nothing is made ready meanwhile).
SHORT_TIMEOUT = 0.01

_start_new_thread: Callable[..., int] = monkey.get_original('_thread', 'start_new_thread')


def _fail(message: str) -> NoReturn:
    # Not `assert`: the checks must also hold under python -O.
    raise AssertionError(message)


def waitable_of(obj: object) -> Any:
    """Return what callbacks are registered with for *obj*.

    That is *obj* itself when it provides ``IWaitable`` (declared), the zope
    adapter when one is registered for its type (``IWaitable(obj)``), and
    *obj* again when it merely has both methods (undeclared, as ``wait()``
    accepts). Anything else raises ``TypeError``.
    """
    waitable = IWaitable(obj, None)
    if waitable is not None:
        return waitable
    if callable(getattr(obj, 'add_done_callback', None)) and \
            callable(getattr(obj, 'remove_done_callback', None)):
        return obj
    raise TypeError('%s is not waitable: it does not provide IWaitable, no adapter '
                    'is registered for it, and it lacks add_done_callback and '
                    'remove_done_callback' % type(obj).__name__)


# Running things elsewhere: a greenlet with a hard timeout, a native thread.

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


def _spawn(func: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[Any, Future[T]]:
    """Start ``func(*args, **kwargs)`` in a new greenlet; return (greenlet, future)."""
    future: Future[T] = Future()
    return gevent.spawn(_capture, future, func, args, kwargs), future


def _stack_of(greenlet: Any) -> str:
    """The stack of a parked greenlet, without the frames of this module."""
    frame: FrameType | None = getattr(greenlet, 'gr_frame', None)
    if frame is None:
        return '  (no frame: not started, or finished)\n'
    entries = [entry for entry in traceback.extract_stack(frame)
               if entry.filename != __file__]
    return ''.join(traceback.format_list(entries))


def _kill(greenlet: Any, timeout: float | None) -> bool:
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
    greenlet, future = _spawn(func, *args, **kwargs)
    try:
        try:
            return future.result(timeout)
        except Timeout:
            if future.done():
                raise
            stack = _stack_of(greenlet)
            died = _kill(greenlet, 1.0)
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


def _wait_result(future: Future[T], timeout: float, what: str) -> T:
    """Return ``future.result(timeout)``; fail the check if *timeout* passes first."""
    try:
        return future.result(timeout)
    except Timeout:
        if future.done():
            raise
        _fail('%s within %.3g seconds' % (what, timeout))


def _let_hub_run(rounds: int = 3) -> None:
    """Yield to the hub a few times, so that callbacks it has queued run.

    Gevent objects deliver their callbacks in a loop callback; a duplicate
    call, or one for a removed registration, would be queued behind the
    first. Each round lets everything queued so far run; nothing waits for
    time to pass.
    """
    for _ in range(rounds):
        gevent.sleep(0)


# Counting registrations: the shared machinery of RecordingWaitable and CountingProxy.

_LIVE, _CALLED, _REMOVED = range(3)


class _Registration:
    """One registration: the callback, its arguments and its state; also its handle."""

    __slots__ = ('callback', 'args', 'state', 'inner', 'calls', '__weakref__')

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.state = _LIVE
        self.inner: Any = None   # the handle the wrapped waitable returned (proxies only)
        self.calls = 0

    def __repr__(self) -> str:
        return '<registration %r%r %s>' % (self.callback, self.args,
                                            ('live', 'called', 'removed')[self.state])


class _Counting:
    """Counts the registrations of a waitable; lets a test wait until some are live.

    Thread-safe: the counters are guarded by an original OS lock, so that any
    native thread may add, remove or make ready.
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        # _Registration -> None: neither called nor removed
        self._live: dict[_Registration, None] = {}
        # (count, Future): wake when len(_live) reaches count
        self._watchers: list[tuple[int, Future[None]]] = []
        #: Every ``add_done_callback`` call.
        self.add_count = 0
        #: Every ``remove_done_callback`` call (of a live handle, a stale one, or None).
        self.remove_count = 0
        #: Callbacks called.
        self.call_count = 0

    @property
    def live_count(self) -> int:
        """The number of registrations that were neither called nor removed."""
        return len(self._live)

    @overload
    def _register(self, callback: Callable[..., object], args: tuple[Any, ...]
                  ) -> _Registration: ...

    @overload
    def _register(self, callback: Callable[..., object], args: tuple[Any, ...],
                  ready: Callable[[], bool] | None) -> _Registration | None: ...

    def _register(self, callback: Callable[..., object], args: tuple[Any, ...],
                  ready: Callable[[], bool] | None = None) -> _Registration | None:
        """Count an add; return a live registration, or None if ``ready()`` said so.

        *ready* is asked under the lock, so that nothing can become ready
        between the question and the registration.
        """
        registration = _Registration(callback, args)
        with self._lock:
            self.add_count += 1
            if ready is not None and ready():
                self.call_count += 1
                return None
            self._live[registration] = None
            reached = self._reached()
        for future in reached:
            future.set_result(None)
        return registration

    def _discard(self, registration: _Registration) -> None:
        """Forget a registration that did not come about (the add failed)."""
        with self._lock:
            self.add_count -= 1
            if self._live.pop(registration, 0) is None:
                registration.state = _REMOVED

    def _reached(self) -> Sequence[Future[None]]:
        """Pop the watchers whose count has been reached (call with the lock held)."""
        if not self._watchers:
            return ()
        live = len(self._live)
        reached = [future for count, future in self._watchers if live >= count]
        if reached:
            self._watchers = [(c, f) for c, f in self._watchers if live < c]
        return reached

    def _unregister(self, registration: _Registration | None) -> bool:
        """Count a remove call; return whether *registration* was live."""
        with self._lock:
            self.remove_count += 1
            if registration is None or registration.state != _LIVE:
                return False
            registration.state = _REMOVED
            self._live.pop(registration, None)
            return True

    def _take_for_call(self, registration: _Registration) -> bool:
        """Mark *registration* called; return whether it was live (owed a call)."""
        with self._lock:
            registration.calls += 1
            if registration.state != _LIVE:
                return False
            registration.state = _CALLED
            self._live.pop(registration, None)
            self.call_count += 1
            return True

    def wait_registered(self, count: int = 1, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until at least *count* registrations are live at once.

        *Switchpoint.* Returns at once if they already are. Use it to know that
        the code under test has registered its callbacks (for example that a
        greenlet is parked in ``wait()``) before making the object ready.
        Raises :class:`~gruvi_gevent.Timeout` if *timeout* passes first
        (None waits for ever).
        """
        future: Future[None] = Future()
        with self._lock:
            if len(self._live) >= count:
                return
            self._watchers.append((count, future))
        try:
            future.result(timeout)
        except Timeout:
            with self._lock:
                self._watchers = [(c, f) for c, f in self._watchers if f is not future]
            # Only a number of seconds times out, so timeout is not None here.
            raise Timeout('%r: %d live registrations expected, %d after %.3g seconds'
                          % (self, count, len(self._live), timeout)  # type: ignore[str-format]
                          ) from None


def _call_all(registrations: Iterable[_Registration]) -> None:
    """Call each registration's callback; re-raise the first exception after all ran."""
    first = None
    for registration in registrations:
        try:
            registration.callback(*registration.args)
        except BaseException as exc:
            if first is None:
                first = exc
    if first is not None:
        raise first


@implementer(IWaitable)
class RecordingWaitable(_Counting):
    """A waitable that records what is done to it and becomes ready on demand.

    For tests of code that waits on things: hand it to the code under test,
    then look at :attr:`add_count`, :attr:`remove_count`, :attr:`call_count`
    and :attr:`live_count` (registrations neither called nor removed; zero
    once well-behaved code has finished waiting). :meth:`wait_registered`
    waits until the code under test has registered, :meth:`make_ready` makes
    the object ready in the caller's context and :meth:`make_ready_from_thread`
    does it from a new native thread.

    It provides ``IWaitable`` and honours its contract, so it passes the
    conformance kit. Every method may be called from any native thread. Pass
    ``ready=True`` for an object that is ready from the start.
    """

    def __init__(self, ready: bool = False) -> None:
        super().__init__()
        self._ready = bool(ready)

    def __repr__(self) -> str:
        return '<%s %s live=%d adds=%d removes=%d calls=%d>' % (
            type(self).__name__, 'ready' if self._ready else 'not ready',
            self.live_count, self.add_count, self.remove_count, self.call_count)

    @property
    def ready(self) -> bool:
        """Whether the object is ready."""
        return self._ready

    def _is_ready(self) -> bool:
        return self._ready

    def add_done_callback(self, callback: Callable[..., object], *args: Any) -> object | None:
        """Call ``callback(*args)`` when the object becomes ready; return a handle.

        If it is ready already, call it at once and return None. Raises
        ``TypeError`` if *callback* is not callable.
        """
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        registration = self._register(callback, args, self._is_ready)
        if registration is None:
            callback(*args)
        return registration

    def remove_done_callback(self, handle: object | None) -> None:
        """Remove a callback added by :meth:`add_done_callback`.

        A handle already removed or already called, or None, is fine. Raises
        ``TypeError`` for anything that is not a handle of a RecordingWaitable.
        """
        if handle is not None and not isinstance(handle, _Registration):
            self._unregister(None)
            raise TypeError('handle must be a handle returned by add_done_callback, '
                            'got %r' % (handle,))
        self._unregister(handle)

    def make_ready(self) -> bool:
        """Make the object ready: call every live callback, in the caller's context.

        Return True, or False if the object was ready already (nothing is
        called twice). A callback that raises does not stop the others; the
        first exception is re-raised once all have been called.
        """
        with self._lock:
            if self._ready:
                return False
            self._ready = True
            registrations = list(self._live)
            for registration in registrations:
                registration.state = _CALLED
                registration.calls += 1
            self._live.clear()
            self.call_count += len(registrations)
        _call_all(registrations)
        return True

    def make_ready_from_thread(self) -> Future[bool]:
        """Make the object ready from a new native thread; return a Future.

        The callbacks run in that thread. The returned
        :class:`~gruvi_gevent.Future` completes (with :meth:`make_ready`'s
        return value, or its exception) once the thread has finished; wait on
        it with ``future.result(timeout)``.
        """
        return run_in_native_thread(self.make_ready)


@implementer(IWaitable)
class CountingProxy(_Counting):
    """A waitable that stands in for *obj* and counts the registrations made through it.

    Callbacks are registered with *obj*'s waitable (*obj* itself, or
    ``IWaitable(obj)`` for an adapted type; see :func:`waitable_of`) and
    :attr:`live_count` tells how many are still owed a call. Pass the proxy,
    not *obj*, to the code under test: ``wait()`` and ``as_completed()``
    return the proxy then, since they return the objects passed in.

    :attr:`stray_calls` counts calls that the wrapped waitable should not have
    made: a second call of a registration, or a call after its removal. Such
    calls are not passed on.
    """

    def __init__(self, obj: object) -> None:
        super().__init__()
        #: The wrapped object.
        self.obj = obj
        self._waitable = waitable_of(obj)
        #: Calls of a registration already called or removed (not passed on).
        self.stray_calls = 0

    def __repr__(self) -> str:
        return '<%s for %r live=%d adds=%d removes=%d calls=%d>' % (
            type(self).__name__, self.obj, self.live_count, self.add_count,
            self.remove_count, self.call_count)

    def add_done_callback(self, callback: Callable[..., object], *args: Any) -> object | None:
        """Register ``callback(*args)`` with the wrapped waitable; return a handle.

        Returns None if the wrapped waitable called the callback at once.
        """
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        registration = self._register(callback, args)
        try:
            inner = self._waitable.add_done_callback(self._fire, registration)
        except BaseException:
            self._discard(registration)
            raise
        registration.inner = inner
        if inner is None:
            # The wrapped object was ready: the callback should have run by now.
            return None if registration.state == _CALLED else registration
        return registration

    def remove_done_callback(self, handle: object | None) -> None:
        """Remove a callback added through the proxy; None or twice is fine."""
        if handle is not None and not isinstance(handle, _Registration):
            raise TypeError('handle must be a handle returned by add_done_callback, '
                            'got %r' % (handle,))
        self._unregister(handle)
        if handle is not None and handle.inner is not None:
            self._waitable.remove_done_callback(handle.inner)

    def _fire(self, registration: _Registration) -> None:
        if self._take_for_call(registration):
            registration.callback(*registration.args)
        else:
            with self._lock:
                self.stray_calls += 1


# The conformance kit.

class _Recorder:
    """A callback that records the arguments of each call, from any thread."""

    def __init__(self, expected: int = 1) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.expected = expected
        self.arrived: Future[None] = Future()     # done once `expected` calls have arrived

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        if len(self.calls) >= self.expected:
            self.arrived.set_result(None)

    def wait(self, timeout: float, what: str) -> None:
        _wait_result(self.arrived, timeout, what)


class _Scope:
    """The objects one check made; on exit, every one is made ready and awaited.

    So that a check leaves no child process running and no greenlet parked,
    whether it passes or fails.
    """

    def __init__(self, make: Callable[[], Any], make_ready: Callable[[Any], object],
                 timeout: float) -> None:
        self._make = make
        self._make_ready = make_ready
        self.timeout = timeout
        self.objects: list[Any] = []
        self._readied: set[int] = set()

    def __enter__(self) -> '_Scope':
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for obj in self.objects:
            if id(obj) not in self._readied:
                try:
                    self.ready(obj)
                except Exception:
                    pass
        try:
            wait([waitable_of(obj) for obj in self.objects], timeout=self.timeout)
        except Exception:
            pass

    def new(self) -> tuple[Any, Any]:
        """Make an object; return it and its waitable."""
        obj = self._make()
        self.objects.append(obj)
        try:
            waitable = waitable_of(obj)
        except TypeError as exc:
            _fail(str(exc))
        return obj, waitable

    def ready(self, obj: Any) -> None:
        self._readied.add(id(obj))
        self._make_ready(obj)

    def proxy(self) -> tuple[Any, CountingProxy]:
        obj, _ = self.new()
        return obj, CountingProxy(obj)

    def ready_and_wait(self, obj: Any, waitable: Any) -> None:
        """Make *obj* ready and wait until it is, through a callback registered before."""
        recorder = _Recorder()
        handle = waitable.add_done_callback(recorder)
        _check_not_ready(obj, handle, recorder)
        try:
            self.ready(obj)
            recorder.wait(self.timeout, 'a callback registered on %r was not called '
                                        'after make_ready()' % (obj,))
        finally:
            waitable.remove_done_callback(handle)
        _let_hub_run()


def _check_not_ready(obj: object, handle: object, recorder: _Recorder) -> None:
    if recorder.calls:
        _fail('%r called back at once from add_done_callback(): make() must return '
              'an object that is not ready yet' % (obj,))
    if handle is None:
        _fail('add_done_callback() on %r, which is not ready, returned None instead '
              'of a handle' % (obj,))


def _check_live(proxies: Iterable[CountingProxy], when: str) -> None:
    for proxy in proxies:
        if proxy.live_count:
            _fail('%s, %d callback(s) are still registered on %r'
                  % (when, proxy.live_count, proxy.obj))
        if proxy.stray_calls:
            _fail('%s, %r made %d call(s) of callbacks already called or removed'
                  % (when, proxy.obj, proxy.stray_calls))


def check_interface(make: Callable[[], W], make_ready: Callable[[W], object], *,
                    timeout: float = DEFAULT_TIMEOUT, require_declaration: bool = True) -> None:
    """Check that what *make* returns provides IWaitable (or adapts to it).

    ``zope.interface.verify.verifyObject(IWaitable, ...)`` runs on the object
    itself, or on ``IWaitable(obj)`` for an adapted type. With
    *require_declaration* false an undeclared object that merely has both
    methods passes too (``wait()`` accepts those), verified tentatively.
    Also checks that ``add_done_callback()`` refuses a callback that is not
    callable with ``TypeError``.
    """
    with _Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        declared = IWaitable(obj, None) is not None
        if not declared and require_declaration:
            _fail('%r neither provides IWaitable nor adapts to it: declare it with '
                  '@implementer(IWaitable) or register an adapter' % (obj,))
        try:
            verifyObject(IWaitable, waitable, tentative=not declared)
        except Invalid as exc:
            _fail('%r does not implement IWaitable correctly: %s' % (waitable, exc))
        try:
            handle = waitable.add_done_callback(42)
        except TypeError:
            pass
        else:
            waitable.remove_done_callback(handle)
            _fail('add_done_callback() on %r accepted a callback that is not callable'
                  % (obj,))


def check_callbacks_called_once(make: Callable[[], W], make_ready: Callable[[W], object], *,
                                timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that every registered callback is called exactly once, with its ``*args``.

    Registers callbacks with and without arguments, and one callable twice
    with different arguments (each registration is called once, with its own
    arguments), then makes the object ready.
    """
    with _Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        with_args = _Recorder()
        no_args = _Recorder()
        twice = _Recorder(expected=2)
        handle = waitable.add_done_callback(with_args, 'one', 2, None)
        _check_not_ready(obj, handle, with_args)
        waitable.add_done_callback(no_args)
        waitable.add_done_callback(twice, 'first')
        waitable.add_done_callback(twice, 'second')
        scope.ready(obj)
        what = 'a callback registered on %r was not called after make_ready()' % (obj,)
        with_args.wait(timeout, what)
        no_args.wait(timeout, what)
        twice.wait(timeout, what)
        _let_hub_run()
        if with_args.calls != [('one', 2, None)]:
            _fail('callback(*args) registered on %r: expected one call with '
                  "('one', 2, None), got %r" % (obj, with_args.calls))
        if no_args.calls != [()]:
            _fail('callback registered without args on %r: expected one call with (), '
                  'got %r' % (obj, no_args.calls))
        if sorted(twice.calls) != [('first',), ('second',)]:
            _fail('one callable registered twice on %r: expected one call per '
                  "registration, ('first',) and ('second',), got %r" % (obj, twice.calls))


def check_remove(make: Callable[[], W], make_ready: Callable[[W], object], *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a removed callback is not called, and that removal is forgiving.

    Removing a handle twice, or removing None, is not an error. Removing one of
    two registrations of the same callable removes only that one.
    """
    with _Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        removed = _Recorder()
        kept = _Recorder()
        same = _Recorder()
        handle = waitable.add_done_callback(removed, 'removed')
        _check_not_ready(obj, handle, removed)
        waitable.add_done_callback(kept, 'kept')
        same_first = waitable.add_done_callback(same, 'first')
        waitable.add_done_callback(same, 'second')
        try:
            waitable.remove_done_callback(handle)
            waitable.remove_done_callback(same_first)
        except Exception as exc:
            _fail('remove_done_callback() on %r raised %r' % (obj, exc))
        for stale in (handle, None):
            try:
                waitable.remove_done_callback(stale)
            except Exception as exc:
                _fail('remove_done_callback(%r) on %r raised %r; removing a handle '
                      'twice, or None, must be harmless' % (stale, obj, exc))
        scope.ready(obj)
        kept.wait(timeout, 'a callback registered on %r was not called after '
                           'make_ready()' % (obj,))
        same.wait(timeout, 'the remaining registration of a callable registered '
                           'twice on %r was not called' % (obj,))
        _let_hub_run()
        if removed.calls:
            _fail('a callback removed from %r was called: %r' % (obj, removed.calls))
        if kept.calls != [('kept',)]:
            _fail('callback registered on %r: expected one call with (\'kept\',), '
                  'got %r' % (obj, kept.calls))
        if same.calls != [('second',)]:
            _fail('one callable registered twice on %r, the first registration '
                  "removed: expected only ('second',), got %r" % (obj, same.calls))


def check_already_ready(make: Callable[[], W], make_ready: Callable[[W], object], *,
                        timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a callback added to a ready object is called at once, and gets None.

    "At once" means before ``add_done_callback()`` returns, in the caller's
    context. The object is asked again through a fresh ``waitable_of(obj)``,
    so that an adapter must read the object's state, not remember its own.
    """
    with _Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        scope.ready_and_wait(obj, waitable)
        for source in (waitable, waitable_of(obj)):
            recorder = _Recorder()
            handle = source.add_done_callback(recorder, 'now', 2)
            if recorder.calls != [('now', 2)]:
                _fail("add_done_callback(callback, 'now', 2) on %r, which is ready: "
                      "expected callback('now', 2) to be called at once, got %r"
                      % (obj, recorder.calls))
            if handle is not None:
                _fail('add_done_callback() on %r, which is ready, returned %r instead '
                      'of None' % (obj, handle))
            try:
                source.remove_done_callback(handle)
            except Exception as exc:
                _fail('remove_done_callback(None) on %r raised %r' % (obj, exc))
            _let_hub_run()
            if len(recorder.calls) != 1:
                _fail('a callback added to %r, which is ready, was called %d times'
                      % (obj, len(recorder.calls)))


def check_remove_after_ready(make: Callable[[], W], make_ready: Callable[[W], object], *,
                             timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that removing a callback after it was called is harmless (also twice)."""
    with _Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        recorder = _Recorder()
        handle = waitable.add_done_callback(recorder, 'x')
        _check_not_ready(obj, handle, recorder)
        scope.ready(obj)
        recorder.wait(timeout, 'a callback registered on %r was not called after '
                               'make_ready()' % (obj,))
        for _ in range(2):
            try:
                waitable.remove_done_callback(handle)
            except Exception as exc:
                _fail('remove_done_callback() on %r after its callback was called '
                      'raised %r' % (obj, exc))
        _let_hub_run()
        if recorder.calls != [('x',)]:
            _fail("callback registered on %r: expected one call with ('x',), got %r"
                  % (obj, recorder.calls))


def check_wait(make: Callable[[], W], make_ready: Callable[[W], object], *,
               timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that ``wait()`` works with the objects and leaves nothing registered.

    A greenlet parked in ``wait(count=1)`` is woken when one object is made
    ready; a ``wait()`` that times out returns what is ready so far; a waiter
    that is killed cleans up; objects already ready count at once, duplicates
    as several entries; and the objects themselves (not proxies or adapters)
    come back when they are passed in.
    """
    with _Scope(make, make_ready, timeout) as scope:
        first, p1 = scope.proxy()
        second, p2 = scope.proxy()
        proxies = (p1, p2)

        greenlet, outcome = _spawn(wait, [p1, p2], count=1, timeout=timeout)
        try:
            p1.wait_registered(1, timeout)
            p2.wait_registered(1, timeout)
            scope.ready(first)
            done, pending = _wait_result(
                outcome, timeout + 1, 'a greenlet in wait() did not return after '
                'make_ready(%r)' % (first,))
        finally:
            _kill(greenlet, timeout)
        if not done:
            _fail('a greenlet in wait([a, b], count=1) was not woken within %.3g seconds '
                  'after make_ready(a), a being %r' % (timeout, first))
        if done != [p1] or pending != [p2]:
            _fail('wait([a, b], count=1) after a was made ready: expected ([a], [b]), '
                  'got (%r, %r)' % (done, pending))
        _check_live(proxies, 'after wait() returned')

        done, pending = wait([p2], timeout=SHORT_TIMEOUT)
        if done or pending != [p2]:
            _fail('wait([b], timeout=%s) for an object that is not ready: expected '
                  '([], [b]), got (%r, %r)' % (SHORT_TIMEOUT, done, pending))
        _check_live(proxies, 'after wait() timed out')

        greenlet, outcome = _spawn(wait, [p2])
        try:
            p2.wait_registered(1, timeout)
        finally:
            died = _kill(greenlet, timeout)
        if not died:
            _fail('a greenlet parked in wait() on %r did not die when killed' % (second,))
        _check_live(proxies, 'after the greenlet in wait() was killed')

        scope.ready(second)
        done, pending = wait([p1, p2, p1], timeout=timeout)
        if pending or sorted(map(id, done)) != sorted(map(id, [p1, p2, p1])):
            _fail('wait([a, b, a]) on objects made ready: expected all three entries '
                  'done, got (%r, %r)' % (done, pending))
        _check_live(proxies, 'after wait() on objects already ready')

        done, pending = wait([first, second], timeout=timeout)
        if pending or len(done) != 2 or {id(obj) for obj in done} != {id(first), id(second)}:
            _fail('wait([a, b]) on objects made ready: expected the objects passed in '
                  'as done, got (%r, %r)' % (done, pending))


def check_as_completed(make: Callable[[], W], make_ready: Callable[[W], object], *,
                       timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that ``as_completed()`` works with the objects and leaves nothing registered.

    A consumer gets each object as it is made ready, in that order; a consumer
    that stops early, one that times out and one that is killed all leave
    nothing registered; the objects themselves come back when passed in.
    """
    with _Scope(make, make_ready, timeout) as scope:
        first, p1 = scope.proxy()
        second, p2 = scope.proxy()
        third, p3 = scope.proxy()
        proxies = (p1, p2, p3)

        outcome: Future[Any]
        got: list[CountingProxy] = []
        first_got: Future[CountingProxy] = Future()

        def consume() -> None:
            for obj in as_completed([p1, p2], timeout=timeout):
                got.append(obj)
                first_got.set_result(obj)

        greenlet, outcome = _spawn(consume)
        try:
            p1.wait_registered(1, timeout)
            p2.wait_registered(1, timeout)
            scope.ready(first)
            _wait_result(first_got, timeout, 'as_completed() did not yield an object '
                         'after make_ready(%r)' % (first,))
            if got != [p1]:
                _fail('as_completed([a, b]) after a was made ready: expected a first, '
                      'got %r' % (got,))
            scope.ready(second)
            _wait_result(outcome, timeout + 1, 'as_completed() did not finish after '
                         'both objects were made ready')
        finally:
            _kill(greenlet, timeout)
        if got != [p1, p2]:
            _fail('as_completed([a, b]) made ready a then b: expected [a, b], got %r'
                  % (got,))
        _check_live(proxies, 'after as_completed() finished')

        generator = as_completed([p1, p3], timeout=timeout)
        try:
            obj = next(generator)
        except Timeout:
            _fail('as_completed([a, b]) with a ready did not yield a')
        finally:
            generator.close()
        if obj is not p1:
            _fail('as_completed([a, b]) with a ready yielded %r, not a' % (obj,))
        _check_live(proxies, 'after the consumer of as_completed() stopped early')

        generator = as_completed([p3], timeout=SHORT_TIMEOUT)
        try:
            next(generator)
        except Timeout:
            pass
        else:
            _fail('as_completed([b], timeout=%s) on an object that is not ready did '
                  'not raise Timeout' % SHORT_TIMEOUT)
        finally:
            generator.close()
        _check_live(proxies, 'after as_completed() timed out')

        greenlet, outcome = _spawn(lambda: list(as_completed([p3])))
        try:
            p3.wait_registered(1, timeout)
        finally:
            died = _kill(greenlet, timeout)
        if not died:
            _fail('a greenlet in as_completed() on %r did not die when killed' % (third,))
        _check_live(proxies, 'after the greenlet in as_completed() was killed')

        scope.ready(third)
        done = list(as_completed([first, third], timeout=timeout))
        if len(done) != 2 or {id(obj) for obj in done} != {id(first), id(third)}:
            _fail('as_completed([a, b]) on objects made ready: expected the objects '
                  'passed in, got %r' % (done,))


def check_ready_from_thread(make: Callable[[], W], make_ready_from_thread: Callable[[W], object],
                            *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that readiness brought about in a native thread wakes a waiting greenlet.

    A greenlet parks in ``wait()`` on the object; the kit starts a native OS
    thread that calls ``make_ready_from_thread(obj)``. The greenlet must be
    woken with nothing else to poke the hub, callbacks must still be called
    once with their arguments, and nothing may stay registered.
    """
    def make_ready(obj: W) -> None:
        _wait_result(run_in_native_thread(make_ready_from_thread, obj), timeout,
                     'make_ready_from_thread(%r) did not return' % (obj,))

    with _Scope(make, make_ready, timeout) as scope:
        obj, proxy = scope.proxy()
        waitable = proxy._waitable
        recorder = _Recorder()
        handle = waitable.add_done_callback(recorder, 'thread', 3)
        _check_not_ready(obj, handle, recorder)

        greenlet, outcome = _spawn(wait, [proxy], timeout=timeout)
        try:
            proxy.wait_registered(1, timeout)
            scope._readied.add(id(obj))
            thread = run_in_native_thread(make_ready_from_thread, obj)
            done, pending = _wait_result(
                outcome, timeout + 1, 'a greenlet in wait() did not return after '
                'make_ready_from_thread(%r)' % (obj,))
            _wait_result(thread, timeout, 'make_ready_from_thread(%r) did not return'
                         % (obj,))
        finally:
            _kill(greenlet, timeout)
        if done != [proxy] or pending:
            _fail('a greenlet waiting in wait() on %r was not woken within %.3g seconds '
                  'when a native thread made it ready: got (%r, %r)'
                  % (obj, timeout, done, pending))
        recorder.wait(timeout, 'a callback registered on %r was not called after it '
                               'was made ready in a native thread' % (obj,))
        _let_hub_run()
        if recorder.calls != [('thread', 3)]:
            _fail("callback registered on %r, made ready in a native thread: expected "
                  "one call with ('thread', 3), got %r" % (obj, recorder.calls))
        _check_live([proxy], 'after wait() returned')


#: Every check but :func:`check_ready_from_thread`, in the order
#: :func:`check_waitable` runs them; each is called as ``check(make, make_ready, timeout=...)``.
CHECKS: tuple[Callable[..., None], ...] = (
    check_interface,
    check_callbacks_called_once,
    check_remove,
    check_already_ready,
    check_remove_after_ready,
    check_wait,
    check_as_completed,
)


def check_waitable(make: Callable[[], W], make_ready: Callable[[W], object],
                   make_ready_from_thread: Callable[[W], object] | None = None, *,
                   timeout: float = DEFAULT_TIMEOUT, require_declaration: bool = True) -> None:
    """Run the whole conformance kit on the waitables that *make* returns.

    *Switchpoint.* *make()* must return a new object that is not ready yet;
    *make_ready(obj)* makes it ready, or starts something that will (the kit
    waits up to *timeout* seconds for each expected callback or wake-up).
    *make_ready_from_thread(obj)*, if given, is called by the kit in a native
    thread of its own and must make *obj* ready from there; pass *make_ready*
    itself when it is thread-safe. Raises ``AssertionError`` on the first
    breach of the contract. *require_declaration*: see :func:`check_interface`.

    Each check makes fresh objects and leaves every one of them ready.
    """
    for check in CHECKS:
        if check is check_interface:
            check(make, make_ready, timeout=timeout, require_declaration=require_declaration)
        else:
            check(make, make_ready, timeout=timeout)
    if make_ready_from_thread is not None:
        check_ready_from_thread(make, make_ready_from_thread, timeout=timeout)


class WaitableConformance:
    """A base class of pytest tests: the conformance kit, one test per check.

    A subclass names its factory and gets the whole set of tests::

        class TestMyThing(WaitableConformance):
            def make(self):
                return MyThing()            # not ready yet

            def make_ready(self, thing):
                thing.finish()

            # optional: called by the kit in a native thread
            def make_ready_from_thread(self, thing):
                thing.finish()

    The base class itself is not collected (``__test__ = False``); subclasses
    are, unless they set ``__test__ = False`` themselves (an abstract
    intermediate class). Class attributes tune the kit: :attr:`timeout` and
    :attr:`require_declaration`. Without ``make_ready_from_thread`` the
    native-thread test is skipped.
    """

    __test__ = False

    #: Seconds to wait for each callback or wake-up the kit expects.
    timeout: float = DEFAULT_TIMEOUT
    #: Whether the object must provide IWaitable or adapt to it (False: duck typing is enough).
    require_declaration: bool = True
    #: Override with a method ``make_ready_from_thread(self, obj)`` to run the thread test.
    make_ready_from_thread: Callable[[Any], object] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if '__test__' not in cls.__dict__:
            cls.__test__ = True

    def make(self) -> Any:
        """Return a new object that is not ready yet."""
        raise NotImplementedError('a WaitableConformance subclass must define make()')

    def make_ready(self, obj: Any) -> object:
        """Make *obj* ready (or start something that soon will)."""
        raise NotImplementedError('a WaitableConformance subclass must define make_ready()')

    def _run(self, check: Callable[..., None]) -> None:
        check(self.make, self.make_ready, timeout=self.timeout)

    def test_interface(self) -> None:
        """The object provides IWaitable (or adapts to it) and refuses non-callables."""
        check_interface(self.make, self.make_ready, timeout=self.timeout,
                        require_declaration=self.require_declaration)

    def test_callbacks_called_once(self) -> None:
        """Every callback is called exactly once, with its ``*args``."""
        self._run(check_callbacks_called_once)

    def test_remove(self) -> None:
        """A removed callback is not called; removing twice or None is fine."""
        self._run(check_remove)

    def test_already_ready(self) -> None:
        """On a ready object a callback is called at once and the handle is None."""
        self._run(check_already_ready)

    def test_remove_after_ready(self) -> None:
        """Removing a callback that was already called is harmless."""
        self._run(check_remove_after_ready)

    def test_wait(self) -> None:
        """wait() works with the object and leaves nothing registered."""
        self._run(check_wait)

    def test_as_completed(self) -> None:
        """as_completed() works with the object and leaves nothing registered."""
        self._run(check_as_completed)

    def test_ready_from_thread(self) -> None:
        """Readiness brought about in a native thread wakes a waiting greenlet."""
        if type(self).make_ready_from_thread is None:
            import pytest
            pytest.skip('%s defines no make_ready_from_thread()' % type(self).__name__)
        check_ready_from_thread(self.make, self.make_ready_from_thread,  # type: ignore[arg-type]
                                timeout=self.timeout)
