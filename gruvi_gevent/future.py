"""The Future: the state and the future result of an asynchronous function call.

A future is *pending*, then *running* (once a pool has capacity to run the
function), then *done*: with a result, with an exception, or cancelled.
Pools drive it through the producer side (:meth:`Future.set_running`,
:meth:`Future.set_result`, :meth:`Future.set_exception`); consumers wait on it
(:meth:`Future.result`) or ask to be called back (:meth:`Future.add_done_callback`).

Thread-safety: every method may be called from any native thread. State
changes happen under one module-wide *original* OS lock (never a
monkey-patched one; see :mod:`gruvi_gevent._wakeup`), shared by all futures so
that a future needs no lock object of its own; callbacks run after the lock
is released. A pending future with no callbacks is three slots, about 56 bytes.

References: a failed future keeps its exception and the traceback it was
stored with, and nothing of the callers of :meth:`Future.result`: each
re-raise starts again from the stored traceback and leaves the exception's
``__context__`` as it was, and no frame of this module (nor of the pools)
keeps the future alive through the traceback, as in ``concurrent.futures``.
"""

import logging
import os
from typing import Any, Callable, Generic, TypeVar

from gevent.hub import get_hub
from zope.interface import implementer

from .errors import Cancelled, Timeout
from .interfaces import IFuture
from ._logs import log
from ._wakeup import allocate_lock, check_timeout, hub_channel, new_waker, run_in_hub

__all__ = ['Future']

T = TypeVar('T')

# The states. _RUNNING's _result is the canceller (see Future._set_running).
# Their order carries meaning: every state >= _DONE is final (done() is
# ``state >= _DONE``), so new final states go after _DONE, others before it.
_PENDING, _RUNNING, _DONE, _FAILED, _CANCELLED = range(5)

# The canceller of a running future that can be cancelled but has no job of
# its own to interrupt (see Future._set_running): cancel() only settles it.
NOTHING_TO_INTERRUPT = True

_STATE_NAMES = {
    _PENDING: 'pending',
    _RUNNING: 'running',
    _DONE: 'done',
    _FAILED: 'failed',
    _CANCELLED: 'cancelled',
}

# One lock for the state of every future: held for a few bytecodes at a time,
# it costs less than a lock per future (~100 bytes each) and never nests.
_lock = allocate_lock()
# A thread that held the lock at fork time does not exist in the child.
os.register_at_fork(after_in_child=_lock._at_fork_reinit)


class _Callback:
    """A done callback and its arguments; also the handle returned for it."""

    __slots__ = ('func', 'args')

    def __init__(self, func: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args

    def __call__(self) -> None:
        self.func(*self.args)

    def __repr__(self) -> str:
        return '<done callback %r%r>' % (self.func, self.args)


class _HubLink:
    """A gevent ``rawlink`` callback: delivered as ``callback(future)`` in the hub.

    While linked it holds the keep-alive of the hub's channel, so that
    ``gevent.wait()`` on a future that a native thread completes does not end
    in ``LoopExit``.
    """

    __slots__ = ('future',     # the linked future, passed to callback
                 'callback',   # gevent's callback, e.g. iwait's switch
                 'hub',        # the hub of the thread that linked
                 'active')     # still owed a call; only touched in the hub's thread

    def __init__(self, future: 'Future[Any]', callback: Callable[[Any], object],
                 hub: Any) -> None:
        self.future = future
        self.callback = callback
        self.hub = hub
        self.active = True
        hub_channel(hub).hold(self)

    def __call__(self) -> None:
        run_in_hub(self.hub, self.fire)

    def wake_after_fork(self) -> None:
        # Its call may have been owed by a thread that the fork left behind.
        if self.future._state >= _DONE:
            self()

    def fire(self) -> None:
        if self.deactivate():
            self.callback(self.future)

    def deactivate(self) -> bool:
        """Release the keep-alive once; return whether the link was active."""
        if not self.active:
            return False
        self.active = False
        hub_channel(self.hub).release(self)
        return True


def _run_callbacks(callbacks: Any) -> None:
    """Call each callback; log those that fail, and let none stop the others.

    A callback that raises a BaseException that is not an Exception (say
    ``KeyboardInterrupt``) is logged too, and the first such exception is
    re-raised once every callback has run.
    """
    if type(callbacks) is not dict:
        callbacks = (callbacks,)
    escaped: BaseException | None = None
    for callback in callbacks:
        try:
            callback()
        except BaseException as exc:
            log(logging.ERROR, 'done callback %r raised %r', callback, exc, exc_info=exc)
            if escaped is None and not isinstance(exc, Exception):
                escaped = exc
    if escaped is not None:
        raise escaped


@implementer(IFuture)
class Future(Generic[T]):
    """The state of an asynchronous function call.

    A future captures the state and the future result of an asynchronous
    function call. Futures are normally not instantiated directly but are
    created by a pool: its ``submit()`` method returns a future representing
    the state and the result of the function that will be executed
    asynchronously in the pool. Producers of other kinds (and test harnesses)
    may create one with ``Future()`` and complete it with :meth:`set_result`,
    :meth:`set_exception` or :meth:`cancel`.

    A future progresses through different states during its lifecycle:

    * Initially the future is in the pending state.
    * Once the pool has capacity to run the function, it moves to the running
      state. In this state, :meth:`running` will return True.
    * Once the function completes or raises an exception, the future moves to
      the done state. In this state, :meth:`done` will return True.

    **Thread-safety:** every method may be called from any native thread. A
    future completed in one thread wakes the greenlets and the plain threads
    waiting for it anywhere, without polling.

    A future is also a gevent waitable: ``gevent.wait()`` and
    ``gevent.iwait()`` accept it (through :meth:`rawlink` and :meth:`unlink`).

    For type checkers a future is generic in its result: ``Future[int]`` is
    a future whose :meth:`result` is an ``int``, and ``pool.submit(func)``
    returns a ``Future`` of *func*'s return type.
    """

    __slots__ = ('_state',       # one of _PENDING .. _CANCELLED
                 '_result',      # the value; (exception, its traceback as stored) once
                                 # failed; Cancelled(); the canceller while running; or
                                 # the pool that will run it (if any) while pending
                 '_callbacks')   # None, one callback, or a dict used as an ordered set

    def __init__(self) -> None:
        self._state: int = _PENDING
        self._result: Any = None
        self._callbacks: Any = None

    def __repr__(self) -> str:
        state = self._state
        text = _STATE_NAMES[state]
        if state == _DONE:
            text += ' result=%s' % type(self._result).__name__
        elif state == _FAILED:
            text += ' exception=%r' % (self._result[0],)
        return '<%s at 0x%x %s>' % (type(self).__name__, id(self), text)

    # The consumer side.

    def running(self) -> bool:
        """Return whether this future is running."""
        return self._state == _RUNNING

    def cancelled(self) -> bool:
        """Return whether this future was successfully cancelled."""
        return self._state == _CANCELLED

    def done(self) -> bool:
        """Return whether this future is done."""
        return self._state >= _DONE

    def cancel(self) -> bool:
        """Cancel the execution of the async function, if possible.

        This method marks the future as done and sets the :class:`Cancelled`
        exception; the done callbacks run as for any completion.

        A future that is not running can always be cancelled. However when a
        future is running, the ability to cancel it depends on the pool
        implementation. For example, a fiber pool can cancel running fibers
        (``Cancelled`` is raised inside the fiber at its current switchpoint)
        but a thread pool cannot.

        Return True if the future could be cancelled, False otherwise.
        """
        with _lock:
            state = self._state
            if state >= _DONE:
                return False
            canceller = self._result if state == _RUNNING else None
            if state == _RUNNING and not canceller:
                return False
            self._result = Cancelled()
            self._state = _CANCELLED
            callbacks = self._callbacks
            self._callbacks = None
        try:
            if canceller is not None and canceller is not NOTHING_TO_INTERRUPT:
                canceller(self)
        finally:
            if callbacks is not None:
                _run_callbacks(callbacks)
        return True

    def result(self, timeout: float | None = None) -> T:
        """Wait for the future to complete and return its result.

        *Switchpoint.* If the function returned normally, its return value is
        returned here. If the function raised an exception, the exception is
        re-raised here; if the future was cancelled, :class:`Cancelled` is.

        If *timeout* (seconds) passes first, raise :class:`Timeout`. In a
        greenlet this parks only that greenlet while the hub serves the rest;
        in a native thread that runs no hub it blocks only that thread. Called
        in the hub itself (a loop callback) on a future that is not done, it
        raises ``RuntimeError`` instead of deadlocking.

        Every call raises the stored exception object with the traceback it
        had when it was stored (the caller's frames are added as it passes
        through them, as for any exception); the exception the caller was
        handling, if any, does not stay behind as its ``__context__``.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        if self._state < _DONE:
            self._wait(timeout)
        if self._state == _DONE:
            return self._result
        exc, traceback = self._stored_exception()
        context = exc.__context__
        try:
            raise exc.with_traceback(traceback)
        finally:
            # Raising in an except block sets the caller's exception as the
            # context of this shared one: put back the job's own. And break
            # the cycle exception -> traceback -> this frame -> self.
            exc.__context__ = context
            del self, exc, traceback, context

    def _stored_exception(self) -> tuple[BaseException, Any]:
        """(exception, traceback as it was stored) of a failed or cancelled future."""
        if self._state == _FAILED:
            return self._result
        return self._result, None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the async function to complete and return its exception.

        *Switchpoint.* If the function did not raise an exception this returns
        None; if the future was cancelled it returns a :class:`Cancelled`
        instance. Raises :class:`Timeout` if *timeout* passes first.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        if self._state < _DONE:
            self._wait(timeout)
        if self._state == _DONE:
            return None
        # As it was stored: not with the frames of the last result() caller.
        exc, traceback = self._stored_exception()
        return exc.with_traceback(traceback)

    def add_done_callback(self, callback: Callable[..., object], *args: Any) -> object | None:
        """Add a callback that gets called when the future completes.

        The callback will be called in the context of the fiber or thread that
        sets the future's result. The callback is called with the positional
        arguments *args* provided to this method. A callback that raises is
        logged (logger ``gruvi_gevent``) and does not stop the other callbacks.

        The return value is an opaque handle that can be used with
        :meth:`remove_done_callback` to remove the callback.

        If the future has already completed, then the callback is called
        immediately from this method and the return value will be None.
        """
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        entry = _Callback(callback, args)
        if self._add(entry):
            return entry
        _run_callbacks(entry)
        return None

    def remove_done_callback(self, handle: object | None) -> None:
        """Remove a callback that was added by :meth:`add_done_callback`.

        It is not an error to remove a callback that was already removed, nor
        to pass None (the handle of a callback that was called at once).
        """
        if handle is None:
            return
        if not isinstance(handle, _Callback):
            raise TypeError('handle must be a handle returned by add_done_callback, '
                            'got %r' % (handle,))
        self._remove(handle)

    # gevent's wait protocol.

    def rawlink(self, callback: 'Callable[[Future[T]], object]') -> None:
        """Call ``callback(self)`` in the calling thread's hub once the future is done.

        This is gevent's waiting protocol, used by ``gevent.wait()`` and
        ``gevent.iwait()``.
        """
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        link = _HubLink(self, callback, get_hub())
        if not self._add(link):
            link()

    def unlink(self, callback: 'Callable[[Future[T]], object]') -> None:
        """Remove every ``rawlink`` of *callback*; unknown callbacks are ignored."""
        removed: list[_HubLink] = []
        with _lock:
            callbacks = self._callbacks
            if type(callbacks) is dict:
                for entry in list(callbacks):
                    if type(entry) is _HubLink and entry.callback == callback:
                        del callbacks[entry]
                        removed.append(entry)
            elif type(callbacks) is _HubLink and callbacks.callback == callback:
                self._callbacks = None
                removed.append(callbacks)
        for link in removed:
            link.deactivate()

    # The producer side.

    def set_running(self, can_cancel: bool = False) -> bool:
        """Move a pending future to the running state.

        *can_cancel* says whether :meth:`cancel` may still cancel it while it
        runs. A no-op in any state but pending. Return whether the future
        moved, so that a producer knows to skip work cancelled before it began.
        """
        return self._set_running(NOTHING_TO_INTERRUPT if can_cancel else None)

    def _set_running(self, canceller: 'Callable[[Future[Any]], object] | bool | None') -> bool:
        """Like :meth:`set_running`: *canceller* None (not cancellable),
        ``NOTHING_TO_INTERRUPT`` (cancellable, nothing to interrupt) or
        ``canceller(future)``, called after a running future was cancelled to
        interrupt its job."""
        with _lock:
            if self._state != _PENDING:
                return False
            self._result = canceller
            self._state = _RUNNING
        return True

    def set_result(self, result: T) -> None:
        """Complete the future with *result*. A no-op if it is already done."""
        self._complete(_DONE, result)

    def set_exception(self, exception: BaseException) -> None:
        """Complete the future with *exception*. A no-op if it is already done."""
        if not isinstance(exception, BaseException):
            raise TypeError('exception must be an exception instance, got %r' % (exception,))
        self._complete(_FAILED, exception)

    def _complete(self, state: int, result: Any) -> None:
        callbacks = self._settle(state, result)
        if callbacks:
            _run_callbacks(callbacks)

    def _settle(self, state: int, result: Any) -> Any:
        """Set the outcome; return the callbacks to run (None if there are none
        or the future was done already). Lets a pool thread finish its own
        bookkeeping before it runs them (see ``_job.run_job``)."""
        with _lock:
            if self._state >= _DONE:
                return None
            # A failed future keeps the traceback as stored, beside the
            # exception: every re-raise starts from it (see result()).
            self._result = (result, result.__traceback__) if state == _FAILED else result
            self._state = state
            callbacks = self._callbacks
            self._callbacks = None
        return callbacks

    # Callback bookkeeping.

    def _add(self, entry: Callable[[], object]) -> bool:
        """Register *entry* to be called on completion; False if already done."""
        with _lock:
            if self._state >= _DONE:
                return False
            callbacks = self._callbacks
            if callbacks is None:
                self._callbacks = entry
            elif type(callbacks) is dict:
                callbacks[entry] = None
            else:
                self._callbacks = {callbacks: None, entry: None}
        return True

    def _remove(self, entry: Callable[[], object]) -> None:
        with _lock:
            callbacks = self._callbacks
            if callbacks is entry:
                self._callbacks = None
            elif type(callbacks) is dict:
                callbacks.pop(entry, None)

    def _wait(self, timeout: float | None) -> None:
        """Park the caller until the future is done; raise Timeout after *timeout*."""
        with _lock:
            owner = self._result if self._state == _PENDING else None
        if owner is not None and owner._wait_in_own_job(self, timeout):
            return
        self._park(timeout)

    def _park(self, timeout: float | None) -> None:
        """The waiting part of :meth:`_wait`; for a pool's own waits as well."""
        waker = new_waker()
        if not self._add(waker):
            return
        try:
            if not waker.wait_for(self.done, timeout):
                raise Timeout('future not done after %.3g seconds' % (timeout or 0.0))
        finally:
            # Completion took every callback off already; only a timeout or a
            # kill leaves the waker registered.
            if self._state < _DONE:
                self._remove(waker)

    def _callback_count(self) -> int:
        """Return how many callbacks are registered (for tests and leak checks)."""
        callbacks = self._callbacks
        if callbacks is None:
            return 0
        return len(callbacks) if type(callbacks) is dict else 1
