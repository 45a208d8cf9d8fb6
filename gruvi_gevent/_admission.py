"""First come, first served admission of one hub's blocking() calls, up to a bound.

``blocking()`` lets at most a few times the IO pool's size of one hub's
calls into the pool at once. Without a bound, 1,000 greenlets calling at once
put 1,000 jobs in flight, and their completions flood the hub in bursts that
stall every other greenlet (a 1 ms ticker ran 5x later at the 99th percentile
than with gevent's own pool, which holds callers back at ``maxsize + 1``). A
gevent ``Semaphore`` bounds them but lets late callers overtake early ones.

Here a call beyond the bound waits in the hub's *overflow*, a FIFO of jobs,
and its greenlet parks exactly as if its job were in the pool: when an
admitted call finishes, its greenlet moves the next job from the overflow to
the pool on its way out. No greenlet is switched to just to be admitted.

Everything here runs on the hub's own thread: no lock is needed.

:meth:`Admission.call` is blocking()'s whole caller side, in one frame:
every Python call between a caller waking up and its next job reaching the
pool delays the round trip (see the *performance* guide).
"""

import collections
from contextvars import Context
from typing import Any, Callable

from gevent._waiter import Waiter

from ._wakeup import hub_channel

__all__ = ['Admission', 'admission_of']

Enqueue = Callable[[tuple[Any, ...]], object]
Fail = Callable[[tuple[Any, ...], BaseException], object]


class Admission:
    """The blocking() calls of one hub: admitted up to a bound, the rest queued in order."""

    __slots__ = ('hub',        # the hub whose greenlets call
                 'channel',    # that hub's channel: outcomes come back through it
                 'fail',       # fails a job the pool refused
                 'free',       # places left in the pool; 0 while jobs wait in overflow
                 'overflow')   # jobs beyond the bound, first come first

    def __init__(self, hub: Any, limit: int, fail: Fail) -> None:
        self.hub = hub
        self.channel = hub_channel(hub)
        self.fail = fail
        self.free = limit
        self.overflow: collections.deque[tuple[Any, ...]] = collections.deque()

    def call(self, enqueue: Enqueue, context: Context, func: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        """Run ``func(*args, **kwargs)`` in the pool, in *context*, and wait: blocking()'s core.

        *Switchpoint.* For a greenlet of this hub (not the hub itself). The
        job is a plain tuple ``(channel, context, func, args, kwargs,
        waiter)`` -- no Future, no waker, no closure -- put into the pool
        by *enqueue* (the IO pool's: it may have been replaced since the
        last call), whose worker switches or throws the outcome straight
        into the caller's gevent ``Waiter`` through the hub's channel. It is
        queued with as little Python before it as can be: waking a worker
        thread takes longer than anything the caller does between queueing
        and parking. Killed or timed out while it waits, the caller leaves: a job still held in the overflow
        never runs; one in the pool runs on (a thread cannot be interrupted)
        and its outcome is dropped.
        """
        channel = self.channel
        waiter = Waiter(self.hub)
        job = (channel, context, func, args, kwargs, waiter)
        if self.free:
            self.free -= 1
            try:
                enqueue(job)
            except BaseException:
                self.leave(job, enqueue, False)
                raise
        else:
            self.overflow.append(job)
        # After the job is queued, overlapping the worker's wake-up. The
        # outcome cannot overtake it: the hub runs only once we park.
        channel.hold()
        try:
            result = waiter.get()
        except BaseException:
            channel.release()
            self.leave(job, enqueue, False)
            # The exception's traceback holds this frame, and a killed
            # greenlet keeps its exception: keep nothing of the job.
            del job, waiter, func, args, kwargs, context
            raise
        channel.release()
        if self.overflow:
            self.leave(job, enqueue, True)
        else:
            self.free += 1
        return result

    def leave(self, job: tuple[Any, ...], enqueue: Enqueue, returned: bool) -> None:
        """The caller of *job* is leaving: pass its place on to the first job waiting.

        A caller leaving with an exception (its job's, or a kill or timeout)
        whose job is still in the overflow takes it out: that job never runs,
        and held no place. The next job goes to the pool by *enqueue*; one
        the pool refuses (it is closed) is failed, and its place goes on.
        """
        if not returned and self._withdraw(job):
            return
        overflow = self.overflow
        while overflow:
            waiting = overflow.popleft()
            try:
                enqueue(waiting)
                return
            except BaseException as exc:
                self.fail(waiting, exc)
        self.free += 1

    def _withdraw(self, job: tuple[Any, ...]) -> bool:
        for index, queued in enumerate(self.overflow):
            if queued is job:
                del self.overflow[index]
                return True
        return False


def admission_of(hub: Any, limit: int, fail: Fail) -> Admission:
    """Return the :class:`Admission` of blocking() calls on *hub* (its thread only).

    Made on first use, with the hub's channel: on the hub's own thread.
    A job the pool refuses goes to *fail*.
    """
    try:
        return hub._gruvi_gevent_admission
    except AttributeError:
        admission = hub._gruvi_gevent_admission = Admission(hub, limit, fail)
        return admission
