"""The machinery the conformance checks share (internal).

A failing check raises ``AssertionError`` through :func:`fail`; it waits for
what it expects through a :class:`Recorder` (a callback that counts its
calls) or :func:`wait_result`, never by sleeping; and it makes its objects in
a :class:`Scope`, which leaves every one of them ready when the check ends,
whether it passed or failed.
"""

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import gevent

from ..errors import Timeout
from ..future import Future
from ..waiting import wait
from .._wakeup import allocate_lock
from .recording import CountingProxy, waitable_of

T = TypeVar('T')

#: Seconds the kit gives a ``wait()`` or ``as_completed()`` that it *expects*
#: to time out (nothing is made ready meanwhile).
SHORT_TIMEOUT = 0.01


def fail(message: str) -> NoReturn:
    """Fail the check: raise ``AssertionError(message)``."""
    # Not `assert`: the checks must also hold under python -O.
    raise AssertionError(message)


def wait_result(future: Future[T], timeout: float, what: str) -> T:
    """Return ``future.result(timeout)``; fail the check if *timeout* passes first.

    *Switchpoint.* The failure reads ``<what> within <timeout> seconds``.
    """
    try:
        return future.result(timeout)
    except Timeout:
        if future.done():
            raise
        fail('%s within %.3g seconds' % (what, timeout))


def let_hub_run(rounds: int = 3) -> None:
    """Yield to the hub a few times, so that callbacks it has queued run.

    *Switchpoint.* Gevent objects deliver their callbacks in a loop callback;
    a duplicate call, or one for a removed registration, would be queued
    behind the first. Each round lets everything queued so far run; nothing
    waits for time to pass.
    """
    for _ in range(rounds):
        gevent.sleep(0)


class Recorder:
    """A callback that records the arguments of each call, from any thread."""

    def __init__(self, expected: int = 1) -> None:
        self._lock = allocate_lock()
        self.calls: list[tuple[Any, ...]] = []
        self.expected = expected
        self.arrived: Future[None] = Future()     # done once `expected` calls have arrived

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.calls.append(args)
            arrived = len(self.calls) >= self.expected
        if arrived:
            self.arrived.set_result(None)

    def expect(self, count: int) -> None:
        """Set the number of calls that :meth:`wait` waits for."""
        with self._lock:
            self.expected = count
            arrived = len(self.calls) >= count
        if arrived:
            self.arrived.set_result(None)

    def wait(self, timeout: float, what: str) -> None:
        """*Switchpoint.* Wait for the expected calls; fail with *what* if they do not come."""
        wait_result(self.arrived, timeout, what)


class Scope:
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

    def __enter__(self) -> 'Scope':
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
            fail(str(exc))
        return obj, waitable

    def ready(self, obj: Any) -> None:
        """Make *obj* ready (and remember that it was)."""
        self._readied.add(id(obj))
        self._make_ready(obj)

    def mark_ready(self, obj: Any) -> None:
        """Remember that *obj* was made ready some other way (from a thread)."""
        self._readied.add(id(obj))

    def proxy(self) -> tuple[Any, CountingProxy]:
        """Make an object; return it and a CountingProxy for it."""
        obj, _ = self.new()
        return obj, CountingProxy(obj)

    def ready_and_wait(self, obj: Any, waitable: Any) -> None:
        """Make *obj* ready and wait until it is, through a callback registered before."""
        recorder = Recorder()
        handle = waitable.add_done_callback(recorder)
        expect_not_ready(obj, handle, recorder)
        try:
            self.ready(obj)
            recorder.wait(self.timeout, 'a callback registered on %r was not called '
                                        'after make_ready()' % (obj,))
        finally:
            waitable.remove_done_callback(handle)
        let_hub_run()


def expect_not_ready(obj: object, handle: object, recorder: Recorder) -> None:
    """Fail unless a callback just added to *obj* got a handle and no call."""
    if recorder.calls:
        fail('%r called back at once from add_done_callback(): make() must return '
             'an object that is not ready yet' % (obj,))
    if handle is None:
        fail('add_done_callback() on %r, which is not ready, returned None instead '
             'of a handle' % (obj,))


def expect_nothing_live(proxies: Iterable[CountingProxy], when: str) -> None:
    """Fail if a registration made through *proxies* is still live, or was called astray."""
    for proxy in proxies:
        if proxy.live_count:
            fail('%s, %d callback(s) are still registered on %r'
                 % (when, proxy.live_count, proxy.obj))
        if proxy.stray_calls:
            fail('%s, %r made %d call(s) of callbacks already called or removed'
                 % (when, proxy.obj, proxy.stray_calls))


def expect_registered(proxy: CountingProxy, outcome: Future[Any], timeout: float,
                      who: str) -> None:
    """*Switchpoint.* Wait until *who* (a greenlet with *outcome*) has registered on *proxy*.

    Fails, rather than timing out, when the registration does not come: if
    the greenlet returned already, the object called its callback before it
    was made ready.
    """
    try:
        proxy.wait_registered(1, timeout)
    except Timeout:
        if outcome.done():
            fail('%s on %r returned before anything was made ready, with %s: the '
                 'object called back before it was ready (a callback may only be '
                 'called once the object is ready)'
                 % (who, proxy.obj, _describe(outcome)))
        fail('%s registered no callback on %r within %.3g seconds'
             % (who, proxy.obj, timeout))


def _describe(outcome: Future[Any]) -> str:
    exc = outcome.exception(0)
    return 'exception %r' % (exc,) if exc is not None else 'result %r' % (outcome.result(0),)
