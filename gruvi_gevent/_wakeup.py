"""Crossing from any thread into a hub, and parking the caller until woken.

**The hub's channel.** Each hub has one :class:`HubChannel`, created on the
hub's own thread the first time something there may later be woken from
another thread. Other threads append a call to its deque and ``send()`` its
async watcher -- the one libev call that is safe from a foreign thread -- and
the hub runs the calls. The library never uses ``loop.run_callback_threadsafe``
from another thread: it does libev's ``ev_ref()`` in the calling thread while
the hub thread updates the same counter without the GIL, and lost updates
leave the loop's reference count wrong for good (see the *gevent issues*
guide in the docs). The channel also counts the greenlets that wait for a
native thread, and keeps the loop alive for them.

**Wakers.** Every wait in the library (``Future.result()``, ``wait()``,
``as_completed()``, ``join()``) parks its caller through a *waker* made by
:func:`new_waker`:

* In a thread that has a gevent hub, the waker parks only the calling greenlet:
  it switches to the hub, which keeps serving everyone else, and is switched
  back through the hub's channel.
* In a native thread without a hub, the waker blocks only that thread on an
  original (never monkey-patched) OS lock.

A waker is a binary semaphore: calling it (from any thread, any number of
times) makes the next or current ``wait()`` return. Waits may wake spuriously,
so callers re-check their condition in a loop.
"""

import collections
import math
import os
import sys
from time import monotonic
from typing import Any, Callable, Protocol, Union

from gevent import monkey
from gevent._hub_local import get_hub_if_exists
from gevent._waiter import Waiter
from greenlet import getcurrent

__all__ = ['allocate_lock', 'get_ident', 'new_waker', 'check_timeout', 'run_in_hub',
           'HubChannel', 'hub_channel']


class OSLock(Protocol):
    """The interpreter's own lock, ``_thread.LockType``, with the fork hook that
    typeshed leaves out: ``os.register_at_fork(after_in_child=lock._at_fork_reinit)``
    frees, in the child, a lock that a thread which does not exist there held."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def _at_fork_reinit(self) -> None: ...


# Under monkey.patch_all() the threading primitives become greenlet primitives;
# state shared with native threads needs the real ones.
allocate_lock: Callable[[], OSLock] = monkey.get_original('_thread', 'allocate_lock')
get_ident: Callable[[], int] = monkey.get_original('_thread', 'get_ident')
# The longest timeout a lock accepts; longer timeouts are cut down to it.
_TIMEOUT_MAX: float = monkey.get_original('_thread', 'TIMEOUT_MAX')

_TIMED_OUT = object()
_WOKEN = object()

# A drain of the channel runs at most this many calls, and for at most the
# interpreter's switch interval, before it lets the loop serve timers and IO:
# each call may resume a greenlet that runs until its next switchpoint.
DRAIN_SLICE = 256


def check_timeout(timeout: float | None, name: str = 'timeout') -> float | None:
    """Return *timeout* as a float or None; raise for anything that is not >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError('%s must be None or a number, got %r' % (name, timeout))
    if math.isnan(timeout) or timeout < 0:
        raise ValueError('%s must be None or >= 0, got %r' % (name, timeout))
    return float(timeout)


class HubChannel:
    """One hub's door for calls from other threads, and its keep-alive.

    **Thread-safety:** :meth:`call` may be used from any thread; everything
    else only on the hub's thread, which is where the channel is created.

    The async watcher is started once, unref'd, and never stopped, so that no
    ``send()`` is ever lost. While greenlets of the hub wait for a native
    thread (``count > 0``) the watcher holds a reference on the loop, so that
    they do not get ``LoopExit`` when the loop has nothing else to do. The
    reference is dropped lazily, once a drain ends with nobody waiting (or at
    once when the last waiter leaves outside a drain): a greenlet that the
    drain wakes and that waits again at once toggles nothing.
    """

    __slots__ = ('hub',        # the hub whose thread runs the calls
                 'watcher',    # the loop's async watcher; send() is the cross-thread door
                 'pending',    # (func, args) to run in the hub; appended by any thread
                 'count',      # greenlets of the hub waiting for a native thread; hub thread only
                 'reffed',     # the watcher holds a reference on the loop; hub thread only
                 'draining',   # a drain is under way; hub thread only
                 'holders')    # who holds it (a dict used as a set): woken after a fork

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.pending: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = \
            collections.deque()
        self.count = 0
        self.reffed = False
        self.draining = False
        self.holders: dict[Any, None] = {}
        self.watcher = hub.loop.async_(ref=False)
        self.watcher.start(self._drain)

    def call(self, func: Callable[..., object], *args: object) -> None:
        """Have the hub run ``func(*args)`` soon; callable from any thread.

        A destroyed hub has nobody left to call: the call is dropped.
        """
        self.post((func, args))

    def post(self, call: tuple[Callable[..., object], tuple[Any, ...]]) -> None:
        """:meth:`call` with the call made already: ``(func, args)``."""
        self.pending.append(call)
        try:
            self.watcher.send()
        except ValueError:      # 'operation on destroyed loop'
            pass

    def _drain(self) -> None:
        """Run the pending calls in bounded slices (in the hub)."""
        pending = self.pending
        self.draining = True
        deadline = None     # taken after the first call: most drains run one
        budget = DRAIN_SLICE
        try:
            while pending:
                func, args = pending.popleft()
                try:
                    func(*args)
                except:  # noqa: E722  # as the loop does for its callbacks
                    self.hub.handle_error(func, *sys.exc_info())
                budget -= 1
                if deadline is None:
                    if not pending:
                        break       # a call posted from now on sends its own wake-up
                    deadline = monotonic() + sys.getswitchinterval()
                elif not budget or monotonic() >= deadline:
                    break
            if pending:
                # The rest in the next loop pass, after timers and IO.
                self.watcher.send()
        finally:
            self.draining = False
            if self.reffed and not self.count:
                self._unref()

    def hold(self, holder: Any = None) -> None:
        """Count one more greenlet waiting for a native thread (hub thread only).

        A *holder* (with a ``wake_after_fork()`` method) is woken in a forked child.
        """
        if holder is not None:
            self.holders[holder] = None
        self.count += 1
        if not self.reffed and self.hub.loop is not None:
            self.watcher.ref = True
            self.reffed = True

    def release(self, holder: Any = None) -> None:
        """Count one greenlet less (hub thread only)."""
        if holder is not None:
            del self.holders[holder]
        self.count -= 1
        if not self.count and self.reffed and not self.draining:
            self._unref()

    def _unref(self) -> None:
        if self.hub.loop is not None:
            self.watcher.ref = False
        self.reffed = False

    def wake_after_fork(self) -> None:
        """In a forked child: a wake-up owed by a thread that is not there
        (one inside a future's done callbacks at the fork) will never come.
        Wake every holder; each re-checks what it waits for."""
        for holder in list(self.holders):
            holder.wake_after_fork()


def hub_channel(hub: Any) -> HubChannel:
    """Return the :class:`HubChannel` of *hub*.

    It is created on first use, which must be on the hub's own thread (libev
    watchers are made there). Code that may later be woken from another
    thread therefore takes the channel when it sets up, in the hub's thread.
    """
    try:
        return hub._gruvi_gevent_channel
    except AttributeError:
        pass
    if get_ident() != hub.thread_ident:
        raise RuntimeError('the wake-up channel of %r must be created on its own thread'
                           % (hub,))
    channel = hub._gruvi_gevent_channel = HubChannel(hub)
    return channel


def run_in_hub(hub: Any, func: Callable[..., object], *args: object) -> None:
    """Schedule ``func(*args)`` in *hub*, from any thread.

    On the hub's own thread this is the cheap ``run_callback``; from another
    thread it goes through the hub's channel, which must exist already (see
    :func:`hub_channel`). A destroyed hub has nobody left to call: the call
    is dropped.
    """
    loop = hub.loop
    if loop is None:
        return
    if get_ident() == hub.thread_ident:
        loop.run_callback(func, *args)
    else:
        hub_channel(hub).call(func, *args)


class _Parking:
    """What both kinds of waker share: the one park loop."""

    __slots__ = ()

    def wait(self, timeout: float | None = None) -> bool:
        raise NotImplementedError

    def wait_for(self, predicate: Callable[[], object], timeout: float | None = None) -> bool:
        """Park until ``predicate()`` is true, at most *timeout* seconds (None:
        no limit), as ``threading.Condition.wait_for`` does; return whether it
        became true. *Switchpoint.*

        The caller makes sure it will be woken whenever the predicate may
        have changed. Wake-ups that leave it false (spurious, or stale) are
        waited out; the deadline stays the one set on entry.
        """
        if predicate():
            return True
        if timeout is None:
            while True:
                self.wait()
                if predicate():
                    return True
        deadline = monotonic() + timeout
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0 or not self.wait(remaining):
                return bool(predicate())
            if predicate():
                return True


class GreenletWaker(_Parking):
    """Parks one greenlet in a hub thread; may be woken from any thread."""

    __slots__ = ('hub',      # the hub of the waiting greenlet's thread
                 'channel',  # that hub's channel, for wake-ups from other threads
                 'waiter')   # gevent Waiter the greenlet parks in

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.channel = hub_channel(hub)
        self.waiter = Waiter(hub)

    def __call__(self, *ignored: object) -> None:
        """Wake the parked greenlet (or make its next wait return at once)."""
        hub = self.hub
        if get_ident() != hub.thread_ident:
            self.channel.call(self.waiter.switch, _WOKEN)
        elif hub.loop is not None:      # None: the hub was destroyed
            hub.loop.run_callback(self.waiter.switch, _WOKEN)

    def wake_after_fork(self) -> None:
        """A wake-up that may be spurious; the waiter re-checks its condition."""
        self()

    def wait(self, timeout: float | None = None) -> bool:
        """Park until woken or until *timeout* passes. Return False on timeout.

        *Switchpoint.*
        """
        waiter = self.waiter
        if timeout is None:
            channel = self.channel
            channel.hold(self)
            try:
                waiter.get()
            finally:
                channel.release(self)
                waiter.clear()
            return True
        timer = self.hub.loop.timer(timeout)
        timer.start(waiter.switch, _TIMED_OUT, update=True)
        try:
            return waiter.get() is not _TIMED_OUT
        finally:
            timer.close()
            waiter.clear()


class ThreadWaker(_Parking):
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

    def wait(self, timeout: float | None = None) -> bool:
        """Block until woken or until *timeout* passes. Return False on timeout.

        A *timeout* beyond the longest a lock accepts (``TIMEOUT_MAX``, some
        292 years) is cut down to that.
        """
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
        channel = getattr(hub, '_gruvi_gevent_channel', None)
        if channel is not None:
            channel.wake_after_fork()


os.register_at_fork(after_in_child=_reinit_loop_after_fork)
