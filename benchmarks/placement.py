"""Which CPUs the benchmark's threads run on, for the rows where that decides the figure.

A single blocking call's round trip wakes a pool thread and then the hub.
Where the two threads sit decides its time more than any code does: on the
2-CPU virtual machines this runs on, a thread on the hub's CPU answers in
about 10 us, one on the other CPU in about 70 us, because each wake-up of
an idle virtual CPU costs some 30 us. The OS keeps each thread where it
last ran, so which pool's thread happens to share the hub's CPU sticks for
a whole run, and a comparison of two pools measures that luck rather than
the pools (one run: 0.14, the next: 5.4).

So the serial rows place the threads themselves, the same way for both
sides: every thread on one CPU, or the main thread (the hub) on one CPU and
every other thread on another. A thread started inside a placed region
would inherit its starter's CPU: the region checks that none was.
"""

import os
import threading
from typing import Any

from .measure import BenchError

__all__ = ['Placement', 'cpus_to_place']


def cpus_to_place() -> list[int]:
    """Return the CPUs this process may run on, or [] where threads cannot be placed."""
    if not hasattr(os, 'sched_setaffinity') or not os.path.isdir('/proc/self/task'):
        return []
    return sorted(os.sched_getaffinity(0))


def _threads() -> set[int]:
    return {int(tid) for tid in os.listdir('/proc/self/task')}


class Placement:
    """Pin the main thread to *hub_cpu* and every other thread to *pool_cpu*.

    A context manager: on exit each thread gets back the CPUs it had, and
    :class:`~benchmarks.measure.BenchError` is raised if a thread started
    inside (it would sit wherever its starter was).
    """

    def __init__(self, hub_cpu: int, pool_cpu: int) -> None:
        self.hub_cpu = hub_cpu
        self.pool_cpu = pool_cpu
        self.saved: dict[int, set[int]] = {}

    def __enter__(self) -> 'Placement':
        main = threading.main_thread().native_id
        try:
            for tid in _threads():
                try:
                    cpus = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {self.hub_cpu if tid == main else self.pool_cpu})
                except ProcessLookupError:      # it exited meanwhile
                    continue
                self.saved[tid] = cpus
        except BaseException:
            self._restore(self.saved)
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        started = _threads() - set(self.saved)
        everywhere = set().union(*self.saved.values())   # what the threads had
        self._restore(self.saved)
        self._restore({tid: everywhere for tid in started})
        if started and exc_info[0] is None:
            raise BenchError('%d thread(s) started while threads were placed: their CPU '
                             'was not chosen' % len(started))

    @staticmethod
    def _restore(cpus_by_thread: dict[int, set[int]]) -> None:
        for tid, cpus in cpus_by_thread.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:     # gone, or refused: nothing more to put back
                pass
