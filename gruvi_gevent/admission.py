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
"""

import collections
from typing import Any, Callable

__all__ = ['Admission', 'admission_of']


class Admission:
    """The blocking() calls of one hub: admitted up to a bound, the rest queued in order."""

    __slots__ = ('hub',        # the hub whose greenlets call
                 'free',       # places left in the pool; 0 while jobs wait in overflow
                 'overflow')   # jobs beyond the bound, first come first

    def __init__(self, hub: Any, limit: int) -> None:
        self.hub = hub
        self.free = limit
        self.overflow: collections.deque[tuple[Any, ...]] = collections.deque()

    def admit(self, job: tuple[Any, ...], enqueue: Callable[[tuple[Any, ...]], object]) -> None:
        """Queue *job* with *enqueue* if there is a place, else in the overflow."""
        if self.free:
            self.free -= 1
            enqueue(job)
        else:
            self.overflow.append(job)

    def leave(self, job: tuple[Any, ...], enqueue: Callable[[tuple[Any, ...]], object],
              fail: Callable[[tuple[Any, ...], BaseException], object],
              returned: bool) -> None:
        """The caller of *job* is leaving: pass its place on to the first job waiting.

        A caller leaving with an exception (its job's, or a kill or timeout)
        whose job is still in the overflow takes it out: that job never runs,
        and held no place. A job the pool refuses (it is closed) is failed
        with *fail*, and its place goes to the next.
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
                fail(waiting, exc)
        self.free += 1

    def _withdraw(self, job: tuple[Any, ...]) -> bool:
        for index, queued in enumerate(self.overflow):
            if queued is job:
                del self.overflow[index]
                return True
        return False


def admission_of(hub: Any, limit: int) -> Admission:
    """Return the :class:`Admission` of blocking() calls on *hub* (its thread only)."""
    try:
        return hub._gruvi_gevent_admission
    except AttributeError:
        admission = hub._gruvi_gevent_admission = Admission(hub, limit)
        return admission
