"""Parking the caller until something happens, in a greenlet or a native thread.

Every wait in the library (``Future.result()``, ``wait()``, ``as_completed()``,
``blocking()``) parks its caller through a *waker* made by :func:`new_waker`:

* In a thread that has a gevent hub, the waker parks only the calling greenlet:
  it switches to the hub, which keeps serving everyone else, and is switched
  back by a loop callback. A wake-up sent from another native thread goes
  through ``loop.run_callback_threadsafe``, the one loop call that is safe
  from a foreign thread.
* In a native thread without a hub, the waker blocks only that thread on an
  original (never monkey-patched) OS lock.

A waker is a binary semaphore: calling it (from any thread, any number of
times) makes the next or current ``wait()`` return. Waits may wake spuriously,
so callers re-check their condition in a loop.
"""

import _thread
import math
import os
from typing import Any, Callable, Union

from gevent import monkey
from gevent._hub_local import get_hub_if_exists
from gevent._waiter import Waiter
from greenlet import getcurrent

__all__ = ['allocate_lock', 'get_ident', 'new_waker', 'check_timeout', 'run_in_hub']

# Under monkey.patch_all() the threading primitives become greenlet primitives;
# state shared with native threads needs the real ones.
allocate_lock: Callable[[], _thread.LockType] = monkey.get_original('_thread', 'allocate_lock')
get_ident: Callable[[], int] = monkey.get_original('_thread', 'get_ident')
# The longest timeout a lock accepts; longer timeouts are cut down to it.
_TIMEOUT_MAX: float = monkey.get_original('_thread', 'TIMEOUT_MAX')

_TIMED_OUT = object()
_WOKEN = object()


def check_timeout(timeout: float | None, name: str = 'timeout') -> float | None:
    """Return *timeout* as a float or None; raise for anything that is not >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError('%s must be None or a number, got %r' % (name, timeout))
    if math.isnan(timeout) or timeout < 0:
        raise ValueError('%s must be None or >= 0, got %r' % (name, timeout))
    return float(timeout)


class _KeepAlive:
    """A ref'd async watcher that keeps a hub's loop running while greenlets wait.

    Without it a greenlet waiting (with no timeout) for something only a native
    thread will finish gets ``LoopExit`` when the loop has nothing else to do.
    Only touched on the hub's own thread.
    """

    __slots__ = ('watcher',   # the hub loop's async watcher, started while count > 0
                 'count')     # greenlets of this hub parked without a timer

    def __init__(self, hub: Any) -> None:
        self.watcher = hub.loop.async_()
        self.count = 0

    def hold(self) -> None:
        self.count += 1
        if self.count == 1:
            self.watcher.start(_noop)

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.watcher.stop()


def _noop() -> None:
    pass


def keepalive(hub: Any) -> _KeepAlive:
    """Return the :class:`_KeepAlive` of *hub*, creating it on first use."""
    try:
        return hub._gruvi_gevent_keepalive
    except AttributeError:
        ka = hub._gruvi_gevent_keepalive = _KeepAlive(hub)
        return ka


def run_in_hub(hub: Any, func: Callable[..., object], *args: object) -> None:
    """Schedule ``func(*args)`` as a callback of *hub*'s loop, from any thread.

    On the hub's own thread this is the cheap ``run_callback``; from another
    thread ``run_callback_threadsafe``, which also wakes the loop. A destroyed
    hub has nobody left to call: the call is dropped.
    """
    loop = hub.loop
    if loop is None:
        return
    if get_ident() == hub.thread_ident:
        loop.run_callback(func, *args)
    else:
        loop.run_callback_threadsafe(func, *args)


class GreenletWaker:
    """Parks one greenlet in a hub thread; may be woken from any thread."""

    __slots__ = ('hub',      # the hub of the waiting greenlet's thread
                 'waiter')   # gevent Waiter the greenlet parks in

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.waiter = Waiter(hub)

    def __call__(self, *ignored: object) -> None:
        """Wake the parked greenlet (or make its next wait return at once)."""
        run_in_hub(self.hub, self.waiter.switch, _WOKEN)

    def wait(self, timeout: float | None = None,
             before: Callable[[], object] | None = None) -> bool:
        """Park until woken or until *timeout* passes. Return False on timeout.

        *Switchpoint.* *before*, if given, is called just before parking, with
        everything else ready: whatever it starts finds the caller's hub about
        to hand the GIL to other threads, not busy preparing to wait.
        """
        hub = self.hub
        waiter = self.waiter
        if timeout is None:
            ka = keepalive(hub)
            ka.hold()
            try:
                if before is not None:
                    before()
                waiter.get()
            finally:
                ka.release()
                waiter.clear()
            return True
        timer = hub.loop.timer(timeout)
        timer.start(waiter.switch, _TIMED_OUT, update=True)
        try:
            return waiter.get() is not _TIMED_OUT
        finally:
            timer.close()
            waiter.clear()


class ThreadWaker:
    """Blocks one native thread that runs no hub; may be woken from any thread."""

    __slots__ = ('lock',)   # an original OS lock, held while nobody has woken us

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.lock.acquire()

    def __call__(self, *ignored: object) -> None:
        """Wake the blocked thread (or make its next wait return at once)."""
        try:
            self.lock.release()
        except RuntimeError:    # already released: a wake-up is pending
            pass

    def wait(self, timeout: float | None = None,
             before: Callable[[], object] | None = None) -> bool:
        """Block until woken or until *timeout* passes. Return False on timeout.

        *before*, if given, is called just before blocking. A *timeout* beyond
        the longest a lock accepts (``TIMEOUT_MAX``, some 292 years) is cut
        down to that.
        """
        if before is not None:
            before()
        if timeout is None:
            return self.lock.acquire()
        return self.lock.acquire(True, min(timeout, _TIMEOUT_MAX))


#: What :func:`new_waker` returns.
Waker = Union[GreenletWaker, ThreadWaker]


def new_waker() -> Waker:
    """Return a waker that parks the caller: its greenlet, or its native thread.

    Raises ``RuntimeError`` when called in the hub itself (a loop callback),
    where parking would deadlock the loop.
    """
    hub = get_hub_if_exists()
    if hub is None:
        return ThreadWaker()
    if getcurrent() is hub:
        raise RuntimeError('cannot wait inside the gevent hub (a loop callback '
                           'or a watcher): the hub would have to wait for itself')
    return GreenletWaker(hub)


def _reinit_loop_after_fork() -> None:
    # os.fork() called by a greenlet that the hub resumed from its callbacks,
    # that is in the middle of a loop iteration: in the child the hub finishes
    # that iteration, and libev's own fork check comes only at the start of
    # the next one, so it would poll the epoll set it shares with the parent
    # and could drain the parent's wake-up eventfd, leaving the parent deaf to
    # wake-ups from other threads. gevent's own fork() does this too.
    hub = get_hub_if_exists()
    if hub is not None and hub.loop is not None:
        hub.loop.reinit()


os.register_at_fork(after_in_child=_reinit_loop_after_fork)
