"""Waitables that count: :class:`RecordingWaitable` and :class:`CountingProxy`.

Both count every ``add_done_callback`` and ``remove_done_callback`` and know
how many registrations are live (neither called nor removed), which is how a
test proves that code that waits leaves nothing behind.
:class:`RecordingWaitable` is a waitable of its own that becomes ready when
told to; :class:`CountingProxy` stands in for a waitable you already have.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, overload

from zope.interface import implementer

from ..errors import Timeout
from ..future import Future
from ..interfaces import IWaitable
from .._wakeup import allocate_lock
from .running import DEFAULT_TIMEOUT, run_in_native_thread

__all__ = ['RecordingWaitable', 'CountingProxy', 'waitable_of']


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



# Counting registrations: the shared machinery of RecordingWaitable and CountingProxy.

_LIVE, _CALLED, _REMOVED = range(3)


class _Registration:
    """One registration: the callback, its arguments and its state; also its handle."""

    __slots__ = ('owner',        # the _Counting that issued this handle
                 'callback',     # called once with args, unless removed first
                 'args',         # the positional arguments of the callback
                 'state',        # _LIVE, _CALLED or _REMOVED, changed under owner's lock
                 'inner',        # the handle the wrapped waitable returned (proxies only)
                 'calls',        # how often the object tried to call it (proxies count strays)
                 '__weakref__')

    def __init__(self, owner: '_Counting', callback: Callable[..., object],
                 args: tuple[Any, ...]) -> None:
        self.owner = owner
        self.callback = callback
        self.args = args
        self.state = _LIVE
        self.inner: Any = None
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
        registration = _Registration(self, callback, args)
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
        """Count a remove call; return whether *registration* was live here.

        A handle that another object issued is ignored: handles are private
        to the object that issued them.
        """
        with self._lock:
            self.remove_count += 1
            if registration is None or registration.owner is not self or \
                    registration.state != _LIVE:
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
            # Only a number of seconds times out, so timeout is not None here.
            raise Timeout('%r: %d live registrations expected, %d after %.3g seconds'
                          % (self, count, len(self._live), timeout)  # type: ignore[str-format]
                          ) from None
        finally:
            # Also when the waiter is killed: nobody waits on this future now.
            with self._lock:
                self._watchers = [(c, f) for c, f in self._watchers if f is not future]


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
        if handle is not None and handle.owner is self and handle.inner is not None:
            self._waitable.remove_done_callback(handle.inner)

    def _fire(self, registration: _Registration) -> None:
        if self._take_for_call(registration):
            registration.callback(*registration.args)
        else:
            with self._lock:
                self.stray_calls += 1
