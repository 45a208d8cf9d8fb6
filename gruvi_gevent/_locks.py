"""Locks that are correct for greenlets and native threads alike.

Under ``gevent.monkey.patch_all()`` the ``threading`` locks are gevent
semaphores, which lose wake-ups once native threads share them (see the
monkey patching guide in the documentation). :mod:`gruvi_gevent.monkey`
installs these instead, wherever patched ``threading`` and ``_thread`` hand
out locks.

A :class:`Lock` is an original OS lock (it *is* the lock: held while the lock
is held) plus a FIFO of parked acquirers. An uncontended ``acquire()`` is one
non-blocking try of the OS lock; a contended one parks its caller through a
waker of :mod:`gruvi_gevent._wakeup`: a greenlet parks only itself and its hub
keeps serving, a native thread (or the hub itself, which cannot park) blocks
only itself. Every ``release()`` that finds parked acquirers wakes the first;
a woken acquirer queues itself again *before* it retries, so a release can
never slip in between unseen, and one that gives up (timeout, kill) hands an
owed wake-up on. Acquirers may barge (as with CPython's own locks): the lock
is not fair, but nobody sleeps while it is free.

:class:`RLock` is owned by the current greenlet, which in a native thread
without a hub is that thread's own greenlet: per greenlet and per thread, as
patched ``threading`` expects. ``threading.Condition``, ``Semaphore``,
``Event``, ``Barrier`` and ``queue.Queue`` (the standard library's classes)
work on top of both, between greenlets and native threads.
"""

import collections
from time import monotonic
from typing import Any

from gevent._hub_local import get_hub_if_exists
from greenlet import getcurrent

from ._wakeup import GreenletWaker, ThreadWaker, Waker, _TIMEOUT_MAX, allocate_lock

__all__ = ['Lock', 'RLock']


def _parking_waker() -> Waker:
    """Return a waker that parks the caller: its greenlet, or else its thread.

    In the hub itself nothing can park, so a hub that must wait for a lock
    blocks its thread, as an unpatched program would.
    """
    hub = get_hub_if_exists()
    if hub is None or getcurrent() is hub:
        return ThreadWaker()
    return GreenletWaker(hub)


def _check_acquire_args(blocking: bool, timeout: float) -> None:
    # The checks and messages of CPython's own lock.
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError('timeout value must be a non-negative number')
    if timeout > _TIMEOUT_MAX:
        raise OverflowError('timeout value is too large')


class Lock:
    """A mutual exclusion lock for greenlets and native threads (``threading.Lock``'s API)."""

    __slots__ = ('_block',     # original OS lock: held exactly while this lock is held
                 '_waiters',   # wakers of parked acquirers, FIFO; any thread appends and pops
                 '__weakref__')

    def __init__(self) -> None:
        self._block = allocate_lock()
        self._waiters: collections.deque[Waker] = collections.deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock; return whether it was acquired.

        *Switchpoint* when the lock is held: a greenlet parks until it is
        released (or *timeout* seconds pass), a native thread blocks.
        """
        if timeout == -1:
            if self._block.acquire(False):
                return True
            return self._park(None) if blocking else False
        _check_acquire_args(blocking, timeout)
        if self._block.acquire(False):
            return True
        return self._park(monotonic() + timeout)

    def _park(self, deadline: float | None) -> bool:
        """Wait for the lock until *deadline* (None: for ever); see the module docstring."""
        waker = _parking_waker()
        waiters = self._waiters
        waiters.append(waker)
        acquired = False
        try:
            while not self._block.acquire(False):
                if deadline is None:
                    woken = waker.wait()
                else:
                    remaining = deadline - monotonic()
                    if remaining <= 0:
                        return False
                    woken = waker.wait(remaining)
                if woken:
                    # The releaser that woke us took us off the queue: queue
                    # again before retrying, or its successor could miss us.
                    waiters.append(waker)
            acquired = True
            return True
        finally:
            try:
                waiters.remove(waker)
            except ValueError:
                # A releaser popped us after our last wake-up; it is owed to
                # someone else if we leave without the lock.
                if not acquired:
                    self._wake_one()

    def release(self) -> None:
        """Release the lock (from any greenlet or thread); wake one parked acquirer.

        Raises ``RuntimeError`` if the lock is not held.
        """
        self._block.release()
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        try:
            waker = self._waiters.popleft()
        except IndexError:      # the last waiter left meanwhile
            return
        waker()

    def locked(self) -> bool:
        """Return whether the lock is held."""
        return self._block.locked()

    def _at_fork_reinit(self) -> None:
        # In a forked child: unlocked, and nobody waiting (they were in the parent).
        self._block = allocate_lock()
        self._waiters = collections.deque()

    __enter__ = acquire

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return '<%s %s.%s object at %#x>' % (
            'locked' if self.locked() else 'unlocked',
            type(self).__module__, type(self).__qualname__, id(self))


class RLock:
    """A reentrant lock, owned per greenlet and per thread (``threading.RLock``'s API)."""

    __slots__ = ('_lock',     # the Lock held while anyone owns this one
                 '_owner',    # the owning greenlet (a thread's own greenlet), or None
                 '_count',    # how many times the owner acquired it
                 '__weakref__')

    def __init__(self) -> None:
        self._lock = Lock()
        self._owner: Any = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, again if the caller owns it; return whether it was acquired.

        *Switchpoint* when another greenlet or thread owns it (see :meth:`Lock.acquire`).
        """
        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        """Release the lock once; raise ``RuntimeError`` unless the caller owns it."""
        if self._owner is not getcurrent():
            raise RuntimeError('cannot release un-acquired lock')
        self._count -= 1
        if not self._count:
            self._owner = None
            self._lock.release()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def locked(self) -> bool:
        """Return whether anyone owns the lock."""
        return self._lock.locked()

    # What threading.Condition uses.

    def _is_owned(self) -> bool:
        return self._owner is getcurrent()

    def _release_save(self) -> tuple[int, Any]:
        if self._owner is not getcurrent():
            raise RuntimeError('cannot release un-acquired lock')
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._lock.release()
        return state

    def _acquire_restore(self, state: tuple[int, Any]) -> None:
        self._lock.acquire()
        self._count, self._owner = state

    def _recursion_count(self) -> int:
        return self._count if self._owner is getcurrent() else 0

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._owner = None
        self._count = 0

    def __repr__(self) -> str:
        return '<%s %s.%s object owner=%r count=%d at %#x>' % (
            'locked' if self.locked() else 'unlocked',
            type(self).__module__, type(self).__qualname__,
            self._owner, self._count, id(self))
