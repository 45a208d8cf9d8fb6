"""A side-by-side benchmark of gruvi_gevent and the libraries it competes with.

Run it from the repository's root with ``python -m benchmarks.bench`` (or
``make bench``)::

    python -m benchmarks.bench            # the full run, a table on stdout
    python -m benchmarks.bench --json     # the same figures as JSON
    python -m benchmarks.bench --quick    # fewer jobs and rounds: under 30 seconds
    python -m benchmarks.bench fiberpool-vs-asyncio   # only the named cases

**Why side by side.** The machines this runs on are shared and noisy: an
absolute time means little and drifts from one minute to the next. So every
case measures our API and its *anchor* (what a user would use instead) in the
same process, in alternating rounds, and which side goes first alternates
too (ours, anchor; anchor, ours; ...), so that neither always inherits the
other's warm caches or leftover load. Whatever slows the machine down during
a run slows both sides down. Two figures count: the ratio of the best rounds
(ours/anchor), and the **median of the per-round ratios** -- round *i* of ours
over round *i* of the anchor -- which a single lucky round cannot move. Goals
are held against the median.

**Why every case checks its results.** A fast path that drops jobs or returns
wrong values must not win: each round checks what it got (the sum of the
returned values, the number of futures seen) and raises :class:`BenchError`
if it is wrong.

**What is timed.** Pools are created before the timed region and closed after
it, the same way for our pool and the anchor's; the timed region is the
submitting and the collecting. Per-job figures are the best round's time
divided by the number of jobs, so a ``--quick`` run (fewer jobs) reports
figures of the same scale as a full one.

The benchmark uses only gevent, the standard library and this package (and
dask.distributed, from the test extra, for the DaskPool row).
"""

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import gc
import json
import os
import platform
import statistics
import sys
import threading
import tracemalloc
from contextvars import copy_context
from time import perf_counter
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

import gevent
import gevent.monkey
import gevent.pool
import gevent.threadpool
import greenlet

from gruvi_gevent import FiberPool, Future, ThreadPool, as_completed, blocking, get_io_pool
from gruvi_gevent._locks import Lock

from . import scaling
from .placement import Placement, cpus_to_place
from .measure import Case, Outcome, Run, check, job, per_job, sum_of_range

__all__ = ['CASES', 'run_cases', 'main']

P = TypeVar('P')
# A blocking call of the concurrency rows: blocking(), or gevent's apply().
Call = Callable[..., int]


# The rounds: each creates its pool untimed, times the work, closes the pool
# untimed, checks the results, and returns the seconds of the timed region.

async def _async_job(i: int) -> int:
    return i


def _round(label: str, pool: P, work: Callable[[P], int], close: Callable[[P], object],
           n: int) -> float:
    """Time ``work(pool)``, which returns the sum of its results; close the
    pool untimed, check the sum, and return the seconds of the timed region."""
    try:
        start = perf_counter()
        total = work(pool)
        elapsed = perf_counter() - start
    finally:
        close(pool)
    check(label, total, sum_of_range(n))
    return elapsed


def _submit_collect(pool: Any, n: int) -> int:
    futures = [pool.submit(job, i) for i in range(n)]
    return sum([future.result() for future in futures])


def _spawn_get(pool: Any, n: int) -> int:
    results = [pool.spawn(job, i) for i in range(n)]
    return sum([result.get() for result in results])


def _fiberpool_submit_collect(n: int, size: int = 50) -> float:
    return _round('FiberPool results', FiberPool(size),
                  lambda pool: _submit_collect(pool, n), FiberPool.close, n)


def _gevent_pool_spawn_get(n: int, size: int = 50) -> float:
    return _round('gevent.pool.Pool results', gevent.pool.Pool(size),
                  lambda pool: _spawn_get(pool, n), gevent.pool.Pool.kill, n)


def _asyncio_round(label: str, n: int, collect: Callable[[list['asyncio.Task[int]']],
                                                          Awaitable[int]]) -> float:
    """Time creating *n* tasks and ``collect(tasks)`` in a fresh event loop,
    whose creation is not timed; check the sum it returns."""
    async def main() -> tuple[float, int]:
        start = perf_counter()
        tasks = [asyncio.create_task(_async_job(i)) for i in range(n)]
        total = await collect(tasks)
        return perf_counter() - start, total
    elapsed, total = asyncio.run(main())
    check(label, total, sum_of_range(n))
    return elapsed


async def _gather(tasks: list['asyncio.Task[int]']) -> int:
    return sum(await asyncio.gather(*tasks))


async def _await_each(tasks: list['asyncio.Task[int]']) -> int:
    total = 0
    for task in tasks:
        total += await task
    return total


def _asyncio_tasks_gather(n: int) -> float:
    return _asyncio_round('asyncio results', n, _gather)


def _asyncio_tasks_await_each(n: int) -> float:
    return _asyncio_round('asyncio results', n, _await_each)


def _fiberpool_map(n: int, size: int = 50) -> float:
    return _round('FiberPool.map results', FiberPool(size),
                  lambda pool: sum(pool.map(job, range(n))), FiberPool.close, n)


def _gevent_pool_imap(n: int, size: int = 50) -> float:
    return _round('gevent.pool.Pool.imap results', gevent.pool.Pool(size),
                  lambda pool: sum(pool.imap(job, range(n))), gevent.pool.Pool.kill, n)


def _threadpool_submit_collect(n: int, size: int = 5) -> float:
    return _round('ThreadPool results', ThreadPool(size),
                  lambda pool: _submit_collect(pool, n), ThreadPool.close, n)


def _gevent_threadpool_spawn_get(n: int, size: int = 5) -> float:
    return _round('gevent.threadpool.ThreadPool results', gevent.threadpool.ThreadPool(size),
                  lambda pool: _spawn_get(pool, n), gevent.threadpool.ThreadPool.kill, n)


def _executor_submit_collect(n: int, size: int = 5) -> float:
    return _round('ThreadPoolExecutor results', concurrent.futures.ThreadPoolExecutor(size),
                  lambda pool: _submit_collect(pool, n),
                  concurrent.futures.ThreadPoolExecutor.shutdown, n)


def _submit_collect_windowed(pool: ThreadPool, n: int, window: int) -> int:
    """Submit *n* jobs with at most *window* in flight, collecting the oldest first."""
    futures: collections.deque[Future[int]] = collections.deque()
    total = 0
    for i in range(n):
        if len(futures) == window:
            total += futures.popleft().result()
        futures.append(pool.submit(job, i))
    return total + sum([future.result() for future in futures])


def _threadpool_windowed(n: int, size: int = 5) -> float:
    # gevent's spawn() blocks its caller once maxsize + 1 tasks are in flight.
    return _round('ThreadPool results', ThreadPool(size),
                  lambda pool: _submit_collect_windowed(pool, n, size + 1), ThreadPool.close, n)


# The per-job comparisons of two round functions: one per_job() each.

fiberpool_vs_gevent_pool = per_job(
    _fiberpool_submit_collect, _gevent_pool_spawn_get, 50_000, 20_000,
    """50,000 trivial jobs: FiberPool(50) submit, then collect every result.

    The plain-gevent way to do the same is a bounded Pool that spawns one
    greenlet per job. Much of the anchor's cost is the greenlet's stack: a
    new greenlet's first switch maps a fresh stack region (about 16 KiB used
    here) and its death unmaps it, some 16 us on this class of machine; our
    long-lived workers pay that once. The ratio depends on how expensive
    mapping memory is on the machine.""", note='anchor pays a new greenlet stack per job')

fiberpool_vs_asyncio = per_job(
    _fiberpool_submit_collect, _asyncio_tasks_gather, 50_000, 20_000,
    """The same 50,000 jobs, against asyncio tasks gathered with asyncio.gather.

    asyncio is what a user would pick instead of gevent altogether. It runs
    in this process through ``asyncio.run`` (nothing is monkey-patched); the
    loop's creation is outside the timed region, as our pool's is.
    ``gather`` over this many tasks costs more than awaiting each (next row).""")

fiberpool_vs_asyncio_await_each = per_job(
    _fiberpool_submit_collect, _asyncio_tasks_await_each, 50_000, 20_000,
    """The same 50,000 jobs, against asyncio tasks awaited one by one (no gather).""")

fiberpool_map_vs_imap = per_job(
    _fiberpool_map, _gevent_pool_imap, 50_000, 20_000,
    """FiberPool(50).map over 50,000 items, consuming every result.

    ``map`` is the bulk path: it may submit in one batch and so should beat
    submit-one-by-one, and gevent's imap by a wide margin.""")

threadpool_vs_gevent_threadpool = per_job(
    _threadpool_submit_collect, _gevent_threadpool_spawn_get, 10_000, 4_000,
    """10,000 trivial jobs: ThreadPool(5) submits all, then collects (not like for like).

    gevent's spawn() blocks once maxsize + 1 tasks are in flight, so the
    anchor pays a cross-thread wake-up per job while ours queues all 10,000
    and collects futures that are mostly done by then. The next row holds
    ours to the anchor's window.""", note='ours queues all, anchor 6 in flight')

threadpool_windowed_vs_gevent_threadpool = per_job(
    _threadpool_windowed, _gevent_threadpool_spawn_get, 10_000, 4_000,
    """The same 10,000 jobs with at most 6 in flight on both sides (like for like).

    Ours submits and collects the oldest future whenever 6 are in flight,
    which is where gevent's spawn() blocks its caller.""", note='6 in flight on both sides')

threadpool_vs_executor = per_job(
    _threadpool_submit_collect, _executor_submit_collect, 10_000, 4_000,
    """The same 10,000 jobs, against the standard library's executor.

    The executor has no hub at all: its waiter blocks the thread. Ours wakes
    a greenlet through the hub, and may cost somewhat more for it.""")


class _ApplyPool:
    """gevent's ThreadPool(20) for the blocking() rows: made, warmed, and killed once.

    *batch*: its thread runs under SCHED_BATCH, as ours do by default.
    """

    def __init__(self, batch: bool = False) -> None:
        self.batch = batch

    def __enter__(self) -> '_ApplyPool':
        get_io_pool()
        self.pool = gevent.threadpool.ThreadPool(20)
        check('blocking() warm-up', blocking(job, 7), 7)
        check('apply() warm-up', self.pool.apply(job, (7,)), 7)
        if self.batch:
            self.pool.apply(os.sched_setscheduler, (0, os.SCHED_BATCH, os.sched_param(0)))
            # One thread serves one caller; a thread started later would not be batch.
            check('apply() threads', self.pool.size, 1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.kill()

    def apply(self, func: Callable[..., int], *args: Any) -> int:
        return self.pool.apply(func, args)


def _calls_round(call: Call, greenlets: int, per_greenlet: int) -> float:
    """Time *greenlets* greenlets making *per_greenlet* calls each; check the results."""
    def caller() -> int:
        total = 0
        for i in range(per_greenlet):
            total += call(job, i)
        return total

    start = perf_counter()
    callers = [gevent.spawn(caller) for _ in range(greenlets)]
    gevent.joinall(callers, raise_error=True)
    elapsed = perf_counter() - start
    check('call results', sum(c.value for c in callers), greenlets * sum_of_range(per_greenlet))
    return elapsed


def _blocking_rows(run: Run, greenlets: int, full: int, quick: int,
                   cpus: tuple[int, int] | None = None, batch_anchor: bool = False) -> Outcome:
    """Alternating rounds of *greenlets* greenlets calling blocking() vs apply().

    *cpus* places the threads (see :mod:`benchmarks.placement`): the hub's
    CPU and the pool threads' CPU, the same for both sides. None leaves them
    where the OS puts them. *batch_anchor* runs gevent's pool thread under
    SCHED_BATCH, as ours are.
    """
    per_greenlet = run.size(full, quick)
    n = greenlets * per_greenlet
    with _ApplyPool(batch_anchor) as anchor:
        placed = contextlib.nullcontext() if cpus is None else Placement(*cpus)
        with placed:
            ours, theirs = run.alternate(
                lambda: _calls_round(blocking, greenlets, per_greenlet),
                lambda: _calls_round(anchor.apply, greenlets, per_greenlet))
    return Outcome.from_rounds(ours, theirs, 'us/call', 1e6 / n,
                               details={'calls': n, 'greenlets': greenlets, 'cpus': cpus})


def _serial_row(run: Run, cpus_needed: int, place: Callable[[list[int]], tuple[int, int]],
                note: str, batch_anchor: bool = False) -> Outcome:
    cpus = cpus_to_place()
    if len(cpus) < cpus_needed or batch_anchor and not hasattr(os, 'SCHED_BATCH'):
        return Outcome(0.0, None, 'us/call', measured=False,
                       note='not measurable here: needs %d CPU(s) to place threads on%s'
                       % (cpus_needed, ' and SCHED_BATCH' if batch_anchor else ''))
    outcome = _blocking_rows(run, 1, 3_000, 1_000, place(cpus), batch_anchor)
    outcome.note = note
    return outcome


def blocking_vs_apply(run: Run) -> Outcome:
    """3,000 blocking() calls, one after another (one greenlet), every thread on one CPU.

    This is the latency of a single round trip to a pool thread and back,
    not throughput. Both pools hold 20 threads, are created once for the
    whole case and warmed with one call before the first round. The hub and
    both pools' threads are pinned to one CPU, so that the OS's placement
    (see :mod:`benchmarks.placement`) is the same for both sides.
    """
    return _serial_row(run, 1, lambda cpus: (cpus[0], cpus[0]), 'hub and pool threads on one CPU')


def blocking_vs_apply_batch_anchor(run: Run) -> Outcome:
    """The same serial calls on one CPU, gevent's pool thread under SCHED_BATCH too.

    Our pool threads run under SCHED_BATCH by default, and gevent's do not:
    the row above compares the two pools as shipped. Here both sides run
    under the same policy, so the ratio is what the two pools' code costs.
    """
    return _serial_row(run, 1, lambda cpus: (cpus[0], cpus[0]),
                       'one CPU, both pools under SCHED_BATCH', batch_anchor=True)


def blocking_vs_apply_two_cpus(run: Run) -> Outcome:
    """The same serial calls with the hub on one CPU and every pool thread on another.

    Each call wakes the other CPU and then the hub's: what that costs the
    machine (some 30 us a wake-up on a virtual machine whose idle CPUs halt)
    is the same for both sides, and most of the round trip. A bare floor
    with no pool at all measures 0.87-0.93 of apply here, so the goal is
    parity within the noise: no slower than apply by more than a tenth.
    """
    return _serial_row(run, 2, lambda cpus: (cpus[0], cpus[1]), 'hub on one CPU, pool threads on another')


def blocking_vs_apply_unplaced(run: Run) -> Outcome:
    """The same serial calls, each thread where the OS puts it (no goal: see the docs).

    The OS keeps a thread on the CPU it last ran on; whichever pool's thread
    shares the hub's CPU answers several times faster, and that sticks for
    a whole run. This row shows that luck, not the pools.
    """
    outcome = _blocking_rows(run, 1, 3_000, 1_000)
    outcome.note = 'placement decides; see the placed rows'
    return outcome


def blocking_100_greenlets_vs_apply(run: Run) -> Outcome:
    """100 greenlets making 100 blocking() calls each; time per call.

    Throughput under concurrency: ours keeps up to 80 calls in flight per
    hub, gevent's apply() holds callers back at 21.
    """
    return _blocking_rows(run, 100, 100, 40)


def _ticker_round(call: Call, greenlets: int, seconds: float,
                  load: Callable[[int], int] = job) -> tuple[list[float], list[float], int]:
    """*greenlets* greenlets call ``call(load, i)`` in a loop for *seconds* beside a
    greenlet that sleeps 1 ms at a time; return the ticker's lateness (seconds,
    sorted), each call's latency (seconds, sorted) and the calls made."""
    lateness: list[float] = []
    latencies: list[float] = []
    stop: list[bool] = []

    def ticker() -> None:
        while not stop:
            start = perf_counter()
            gevent.sleep(0.001)
            lateness.append(perf_counter() - start - 0.001)

    def caller() -> None:
        i = 0
        while not stop:
            start = perf_counter()
            check('call result', call(load, i), i)
            latencies.append(perf_counter() - start)
            i += 1

    tick = gevent.spawn(ticker)
    callers = [gevent.spawn(caller) for _ in range(greenlets)]
    gevent.sleep(seconds)
    stop.append(True)
    gevent.joinall(callers + [tick], raise_error=True)
    lateness.sort()
    latencies.sort()
    return lateness, latencies, len(latencies)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float('nan')
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def blocking_1000_greenlets_ticker_vs_apply(run: Run) -> Outcome:
    """p99 lateness of a 1 ms ticker while 1,000 greenlets call blocking() in a loop.

    What the rest of a busy server feels: a greenlet sleeping 1 ms at a time
    beside 1,000 greenlets that keep calling. Each round runs both loads for
    the same wall time. The note gives the calls per second of each side.
    """
    seconds = run.size(1.5, 0.5)
    calls: dict[str, list[float]] = {'ours': [], 'anchor': []}

    def side(label: str, call: Call) -> Callable[[], float]:
        def one_round() -> float:
            lateness, _, made = _ticker_round(call, 1000, seconds)
            calls[label].append(made / seconds)
            return _percentile(lateness, 0.99)
        return one_round

    with _ApplyPool() as anchor:
        ours, theirs = run.alternate(side('ours', blocking), side('anchor', anchor.apply))
    note = 'calls/s %.0f vs %.0f' % (statistics.median(calls['ours']),
                                     statistics.median(calls['anchor']))
    return Outcome.from_rounds(ours, theirs, 'ms p99', 1e3, note=note,
                               details={'calls_per_second': calls, 'seconds': seconds})


def _context_round(n: int, copy: bool) -> float:
    start = perf_counter()
    total = 0
    if copy:
        for i in range(n):
            total += copy_context().run(job, i)
    else:
        for i in range(n):
            total += job(i)
    elapsed = perf_counter() - start
    check('context results', total, sum_of_range(n))
    return elapsed


def blocking_context_copy(run: Run) -> Outcome:
    """What running blocking()'s function in a copy of the caller's context adds.

    ``copy_context().run(job, i)`` against ``job(i)``, 200,000 times: the
    difference is what each blocking() call pays for its context.
    """
    n = run.size(200_000, 50_000)
    ours, theirs = run.alternate(lambda: _context_round(n, True),
                                 lambda: _context_round(n, False))
    return Outcome.from_rounds(ours, theirs, 'ns/call', 1e9 / n, details={'calls': n})


def _queued_job_bytes(pool_class: Callable[[int], Any], count: int) -> float:
    """Bytes per job queued, not yet running, on a one-thread pool whose thread is busy."""
    gate = threading.Event()
    pool = pool_class(1)
    try:
        busy = pool.submit(gate.wait)
        futures: list[Any] = [None] * count
        arguments = list(range(count))      # the caller's, not the job's
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in arguments:
                futures[i] = pool.submit(job, i)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    finally:
        gate.set()
    check('queued jobs results', sum(f.result() for f in futures), sum_of_range(count))
    busy.result()
    if pool_class is ThreadPool:
        pool.close()
    else:
        pool.shutdown()
    return (after - before) / count


def threadpool_queued_job_memory(run: Run) -> Outcome:
    """Bytes per queued submit() job: its Future, job tuple and argument tuple.

    20,000 ``submit(job, i)`` calls queue behind a busy one-thread pool,
    measured with tracemalloc and divided (the list holding the futures and
    the argument values exist before). A burst of queued jobs should cost
    little memory.
    """
    run.progress('measuring')
    count = 20_000
    return Outcome(_queued_job_bytes(ThreadPool, count),
                   _queued_job_bytes(concurrent.futures.ThreadPoolExecutor, count),
                   'B/job', details={'jobs': count})


def _done_futures(n: int) -> list[Future[int]]:
    futures: list[Future[int]] = [Future() for _ in range(n)]
    for i, future in enumerate(futures):
        future.set_result(i)
    return futures


def _as_completed_round(futures: list[Future[int]]) -> Callable[[], float]:
    def one_round() -> float:
        n = len(futures)
        total = count = 0
        start = perf_counter()
        for future in as_completed(futures):
            total += future.result()
            count += 1
        elapsed = perf_counter() - start
        check('as_completed count', count, n)
        check('as_completed results', total, sum_of_range(n))
        return elapsed
    return one_round


def as_completed_scaling(run: Run) -> Outcome:
    """as_completed over 100,000 done futures, against itself over 10,000.

    The figures are total times and the ratio is time(100k) / time(10k):
    with ten times the futures, a linear as_completed takes ten times as long.
    Rounds are short, so this case runs twice as many to ride out noise.
    """
    big = run.size(100_000, 30_000)
    small = big // 10
    big_futures, small_futures = _done_futures(big), _done_futures(small)
    ours, anchor = run.alternate(_as_completed_round(big_futures),
                                 _as_completed_round(small_futures), rounds=2 * run.rounds)
    return Outcome.from_rounds(ours, anchor, 'ms total', 1e3,
                               note='%d vs %d futures' % (big, small),
                               details={'futures': big, 'anchor_futures': small})


def _bytes_each(factory: Callable[[], object], count: int) -> float:
    """Return the bytes tracemalloc sees allocated per object made by *factory*.

    The list that keeps the objects alive exists before the measurement, so
    only the objects themselves are counted.
    """
    objects: list[object] = [None] * count
    gc.collect()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            objects[i] = factory()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not tracing:
            tracemalloc.stop()
    check('objects made', sum(1 for obj in objects if obj is not None), count)
    return (after - before) / count


def _future_memory(anchor_factory: Callable[[], object], count: int = 20_000) -> Outcome:
    """Bytes per pending Future of ours, and per object made by *anchor_factory*."""
    ours = _bytes_each(Future, count)
    anchor = _bytes_each(anchor_factory, count)
    return Outcome(ours, anchor, 'B/future', details={'futures': count})


def future_memory_vs_concurrent(run: Run) -> Outcome:
    """Bytes of one pending Future with no callbacks, against the stdlib's.

    Measured with tracemalloc over 20,000 futures, divided. A program with
    100,000 jobs in flight holds 100,000 futures: they should be small.
    concurrent.futures.Future carries a Condition and a list (~1,600 B).
    """
    run.progress('measuring')
    return _future_memory(concurrent.futures.Future)


def future_memory_vs_asyncio(run: Run) -> Outcome:
    """Bytes of one pending Future with no callbacks, against asyncio's C future.

    asyncio's future (~145 B) is the one to beat: the issue aims below it.
    """
    run.progress('measuring')
    loop = asyncio.new_event_loop()
    try:
        return _future_memory(lambda: asyncio.Future(loop=loop))
    finally:
        loop.close()


def _sleeper(i: int) -> int:
    gevent.sleep(0.1)
    return i


def _run_sleepers(n: int) -> float:
    """Run *n* jobs that each sleep 0.1 s on an unbounded FiberPool; return the seconds."""
    pool = FiberPool()
    try:
        start = perf_counter()
        futures = [pool.submit(_sleeper, i) for i in range(n)]
        total = sum([future.result() for future in futures])
        elapsed = perf_counter() - start
        del futures
    finally:
        pool.close()
    check('sleeping jobs results', total, sum_of_range(n))
    return elapsed


def fiberpool_sleepers(run: Run) -> Outcome:
    """FiberPool() running 100,000 jobs that each sleep 0.1 s, all at once.

    It must finish; the figure is the peak memory per job (tracemalloc's
    peak over the run, divided by the jobs), measured in a second run, since
    tracing slows the first. The note gives the wall time of the first run.
    """
    n = run.size(100_000, 10_000)
    run.progress('timing %d jobs' % n)
    gc.collect()
    wall = _run_sleepers(n)
    run.progress('tracing memory of %d jobs' % n)
    gc.collect()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        _run_sleepers(n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    return Outcome((peak - base) / n, None, 'B/job',
                   note='%d jobs, wall %.2f s' % (n, wall),
                   details={'jobs': n, 'wall_seconds': wall, 'peak_bytes': peak - base})


def lock_vs_gevent_lock(run: Run) -> Outcome:
    """200,000 uncontended acquire/release pairs of the lock installed under monkey patching.

    ``gruvi_gevent.monkey`` replaces gevent's patched ``threading.Lock`` with
    one that greenlets and native threads can share; the common, uncontended
    case must stay about as cheap as gevent's.
    """
    from gevent.thread import LockType
    n = run.size(200_000, 50_000)

    def pairs(lock: Any) -> Callable[[], float]:
        def timed() -> float:
            count = 0
            start = perf_counter()
            for _ in range(n):
                with lock:
                    count += 1
            elapsed = perf_counter() - start
            check('acquisitions', count, n)
            return elapsed
        return timed

    ours, anchor = run.alternate(pairs(Lock()), pairs(LockType()))
    return Outcome.from_rounds(ours, anchor, 'ns/pair', 1e9 / n, details={'pairs': n})


# The concurrency table: blocking() and apply() under 1 to 1,000 callers.

def _sleep_job(i: int) -> int:
    _native_sleep(0.001)
    return i


_native_sleep = gevent.monkey.get_original('time', 'sleep')

CONCURRENCY = (1, 10, 100, 1000)
JOBS: tuple[tuple[str, Callable[[int], int]], ...] = (('tiny', job), ('sleep 1 ms', _sleep_job))


def concurrency_table(run: Run) -> list[dict[str, Any]]:
    """Return the rows of the concurrency table.

    For each number of greenlets and each job, blocking() and gevent's
    ``ThreadPool(20).apply`` each run the load for the same wall time beside a
    1 ms ticker greenlet, in alternating rounds (3 a side, 1 with --quick;
    which side goes first alternates). Each row is a side's median round by
    calls per second: calls per second, each call's latency (p50/p99) and
    the ticker's lateness (p50/p99). The blocking job sleeps in C (the
    original ``time.sleep``).
    """
    seconds = run.size(0.5, 0.25)
    rounds = run.size(3, 1)
    rows = []
    with _ApplyPool() as anchor:
        sides: list[tuple[str, Call]] = [('blocking()', blocking), ('apply()', anchor.apply)]
        for greenlets in CONCURRENCY:
            for job_name, load in JOBS:
                measured: dict[str, list[dict[str, Any]]] = {'blocking()': [], 'apply()': []}
                for number in range(rounds):
                    for side, call in (sides if number % 2 == 0 else sides[::-1]):
                        run.progress('%d greenlets, %s, %s, round %d/%d'
                                     % (greenlets, job_name, side, number + 1, rounds))
                        gc.collect()
                        measured[side].append(_concurrency_cell(call, greenlets, seconds, load))
                for side, _ in sides:
                    cells = sorted(measured[side], key=lambda cell: cell['calls_per_second'])
                    rows.append(dict(cells[len(cells) // 2], greenlets=greenlets,
                                     job=job_name, side=side, rounds=rounds))
    return rows


def _concurrency_cell(call: Call, greenlets: int, seconds: float,
                      load: Callable[[int], int]) -> dict[str, float]:
    lateness, latencies, calls = _ticker_round(call, greenlets, seconds, load)
    return {
        'calls_per_second': calls / seconds,
        'call_p50_ms': _percentile(latencies, 0.5) * 1e3,
        'call_p99_ms': _percentile(latencies, 0.99) * 1e3,
        'ticker_p50_ms': _percentile(lateness, 0.5) * 1e3,
        'ticker_p99_ms': _percentile(lateness, 0.99) * 1e3,
    }


def format_concurrency(rows: list[dict[str, Any]]) -> str:
    """Return the concurrency rows as a plain-text table."""
    header = ('greenlets', 'job', 'side', 'calls/s', 'call p50 ms', 'call p99 ms',
              'ticker p50 ms', 'ticker p99 ms')
    lines = [header] + [(
        str(row['greenlets']), row['job'], row['side'], '%.0f' % row['calls_per_second'],
        '%.3f' % row['call_p50_ms'], '%.3f' % row['call_p99_ms'],
        '%.3f' % row['ticker_p50_ms'], '%.3f' % row['ticker_p99_ms']) for row in rows]
    widths = [max(len(line[col]) for line in lines) for col in range(len(header))]
    out = ['Concurrency: greenlets calling in a loop beside a 1 ms ticker greenlet '
           '(ThreadPool(20) on both sides; each row the median of %d rounds by calls/s)'
           % (rows[0]['rounds'] if rows else 0), '']
    for index, line in enumerate(lines):
        out.append('  '.join(cell.rjust(widths[col]) if col not in (1, 2)
                             else cell.ljust(widths[col]) for col, cell in enumerate(line)))
        if index == 0:
            out.append('  '.join('-' * width for width in widths))
    return '\n'.join(out)


_request_id: 'contextvars.ContextVar[str | None]' = contextvars.ContextVar('bench_request_id',
                                                                           default=None)


def context_per_job(run: Run) -> Outcome:
    """50,000 FiberPool(50) jobs that read a ContextVar their submitter set.

    Every job runs in a copy of its submitter's context. With a variable set,
    each queued job keeps a snapshot of its own; the anchor is the same pool
    running the same number of jobs for a submitter that set nothing. The
    note gives the difference per job.
    """
    n = run.size(50_000, 20_000)

    def reads_the_context(i: int) -> int:
        return i if _request_id.get() == 'request-1' else -1   # a wrong sum if lost

    def with_context() -> float:
        def submit_collect() -> float:
            _request_id.set('request-1')
            return _round('FiberPool results with a context', FiberPool(50),
                          lambda pool: sum([future.result() for future in
                                            [pool.submit(reads_the_context, i)
                                             for i in range(n)]]),
                          FiberPool.close, n)
        return contextvars.Context().run(submit_collect)

    def without_context() -> float:
        return contextvars.Context().run(_fiberpool_submit_collect, n)

    ours, anchor = run.alternate(with_context, without_context)
    note = '%+.0f ns/job' % ((min(ours) - min(anchor)) * 1e9 / n)
    return Outcome.from_rounds(ours, anchor, 'us/job', 1e6 / n, note=note)


# The cases, in table order: name, anchor (what a user would use instead),
# measure, and goal -- the median ratio ours/anchor at most that, or with
# 'ours', our own figure at most that; None: correct results are enough.
CASES: list[Case] = [
    Case('fiberpool-vs-gevent-pool', 'gevent.pool.Pool(50): spawn, then get()',
         fiberpool_vs_gevent_pool, 0.15),
    Case('fiberpool-vs-asyncio', 'asyncio: create_task each, then gather',
         fiberpool_vs_asyncio, 0.4),
    Case('fiberpool-vs-asyncio-await-each', 'asyncio: create_task each, then await each',
         fiberpool_vs_asyncio_await_each, 0.5),
    Case('fiberpool-map-vs-imap', 'gevent.pool.Pool(50).imap', fiberpool_map_vs_imap, 0.2),
    Case('threadpool-vs-gevent-threadpool', 'gevent.threadpool.ThreadPool(5): spawn, then get()',
         threadpool_vs_gevent_threadpool, 1.0),
    Case('threadpool-windowed-vs-gevent-threadpool',
         'gevent.threadpool.ThreadPool(5): spawn, then get()',
         threadpool_windowed_vs_gevent_threadpool, 1.0),
    Case('threadpool-vs-executor', 'concurrent.futures.ThreadPoolExecutor(5)',
         threadpool_vs_executor, 1.5),
    Case('blocking-vs-apply', 'gevent.threadpool.ThreadPool(20).apply, one after another',
         blocking_vs_apply, 0.6),
    Case('blocking-vs-apply-batch-anchor', 'the same apply() calls, its thread under SCHED_BATCH',
         blocking_vs_apply_batch_anchor),
    Case('blocking-vs-apply-two-cpus', 'the same apply() calls, threads placed the same way',
         blocking_vs_apply_two_cpus, 1.1),
    Case('blocking-vs-apply-unplaced', 'the same apply() calls, threads where the OS puts them',
         blocking_vs_apply_unplaced),
    Case('blocking-100-greenlets-vs-apply', '100 greenlets calling ThreadPool(20).apply',
         blocking_100_greenlets_vs_apply, 0.2),
    Case('blocking-1000-greenlets-ticker-vs-apply',
         '1,000 greenlets calling ThreadPool(20).apply, beside the ticker',
         blocking_1000_greenlets_ticker_vs_apply, 1.5),
    Case('blocking-context-copy', 'the same call made directly', blocking_context_copy),
    Case('threadpool-queued-job-memory', 'concurrent.futures.ThreadPoolExecutor(1)',
         threadpool_queued_job_memory, 200, 'ours'),
    Case('as-completed-scaling', 'as_completed over 10x fewer done futures',
         as_completed_scaling, 12),
    Case('future-memory-vs-concurrent', 'concurrent.futures.Future()',
         future_memory_vs_concurrent, 200, 'ours'),
    Case('future-memory-vs-asyncio', 'asyncio.Future(loop=...)',
         future_memory_vs_asyncio, 200, 'ours'),
    Case('fiberpool-100k-sleepers', '--', fiberpool_sleepers),
    Case('processpool-vs-executor', 'concurrent.futures.ProcessPoolExecutor(2), forkserver',
         scaling.processpool_vs_executor, 0.8),
    Case('processpool-speedup', 'the same CPU-bound jobs one by one in this process',
         scaling.processpool_speedup, 0.65),
    Case('daskpool-vs-dask', 'client.submit(pure=False), then result() each',
         scaling.daskpool_vs_dask, 1.0),
    Case('lock-vs-gevent-lock', "gevent's patched threading.Lock (gevent.thread.LockType)",
         lock_vs_gevent_lock, 1.5),
    Case('context-per-job', 'the same jobs, no context variable set', context_per_job, 1.5),
]


# Running and reporting.

class Progress:
    """One line on stderr saying which case runs; rewritten in place on a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.prefix = ''

    def case(self, number: int, total: int, name: str) -> None:
        self.prefix = '[%d/%d] %s' % (number, total, name)
        if not self.tty:
            self.stream.write(self.prefix + '\n')
            self.stream.flush()
        else:
            self.update('')

    def update(self, text: str) -> None:
        if self.tty:
            line = self.prefix + (': ' + text if text else '')
            self.stream.write('\r\x1b[K' + line)
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write('\r\x1b[K')
            self.stream.flush()


def run_cases(cases: list[Case], quick: bool = False, rounds: int | None = None,
              progress: 'Progress | None' = None) -> list[dict[str, Any]]:
    """Run *cases* (a list of :class:`Case`) and return their rows."""
    progress = progress or Progress()
    run = Run(quick=quick, rounds=rounds, progress=progress.update)
    rows = []
    try:
        for number, bench_case in enumerate(cases, 1):
            progress.case(number, len(cases), bench_case.name)
            rows.append(bench_case.run(run))
    finally:
        progress.done()
    return rows


def environment(quick: bool, rounds: int) -> dict[str, Any]:
    """Describe where and how the benchmark ran."""
    return {
        'python': platform.python_implementation() + ' ' + platform.python_version(),
        'gevent': gevent.__version__,
        'greenlet': greenlet.__version__,
        'platform': platform.platform(),
        'machine': platform.machine(),
        'cpus': os.cpu_count(),
        'quick': quick,
        'rounds': rounds,
    }


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return '--'
    if unit.startswith('B'):
        return '%.0f' % value
    return '%.2f' % value if value < 100 else '%.1f' % value


def format_table(rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """Return the rows as a plain-text table, with the legend of the cases."""
    header = ('case', 'ours', 'anchor', 'unit', 'best', 'median', 'goal', 'ok', 'note')
    lines = [header]
    for row in rows:
        lines.append((
            row['case'],
            _figure(row['ours'] if row['measured'] else None, row['unit']),
            _figure(row['anchor'], row['unit']),
            row['unit'],
            '--' if row['ratio'] is None else '%.3f' % row['ratio'],
            '--' if row['median_ratio'] is None else '%.3f' % row['median_ratio'],
            row['goal_text'],
            ('PASS' if row['passed'] else 'FAIL') if row['measured'] else '--',
            row['note'],
        ))
    widths = [max(len(line[col]) for line in lines) for col in range(len(header))]
    numeric = {1, 2, 4, 5}
    out = ['gruvi_gevent benchmark: %(python)s, gevent %(gevent)s, greenlet %(greenlet)s, '
           '%(cpus)s CPUs, %(platform)s' % env,
           '%s run, %d alternating rounds a side (ours first in odd rounds, the anchor in '
           'even ones)' % ('quick' if env['quick'] else 'full', env['rounds']),
           'best = best round of ours / best round of the anchor; median = median of the '
           'per-round ratios, which the goal holds',
           '']
    for index, line in enumerate(lines):
        cells = [cell.rjust(widths[col]) if col in numeric else cell.ljust(widths[col])
                 for col, cell in enumerate(line)]
        out.append('  '.join(cells).rstrip())
        if index == 0:
            out.append('  '.join('-' * width for width in widths))
    out.append('')
    for row in rows:
        anchor = 'no anchor' if row['anchor_is'] == '--' else 'anchor: ' + row['anchor_is']
        out.append('%s: %s (%s)' % (row['case'], row['what'], anchor))
    return '\n'.join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.bench',
        description='Measure gruvi_gevent against gevent, asyncio and the standard '
                    'library, side by side in one process.')
    parser.add_argument('--quick', action='store_true',
                        help='fewer jobs and rounds: the whole run takes under 30 seconds')
    parser.add_argument('--json', action='store_true', help='print the results as JSON')
    parser.add_argument('--rounds', type=int, default=None,
                        help='rounds per side (default: 5, or 3 with --quick)')
    parser.add_argument('--no-concurrency', action='store_true',
                        help='skip the concurrency table')
    parser.add_argument('cases', nargs='*', metavar='CASE',
                        help='run only these cases (default: all): %s'
                             % ', '.join(c.name for c in CASES))
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error('--rounds must be >= 1')
    by_name = {c.name: c for c in CASES}
    unknown = [name for name in args.cases if name not in by_name]
    if unknown:
        parser.error('unknown case(s): %s' % ', '.join(unknown))
    cases = [by_name[name] for name in args.cases] or list(CASES)

    gevent.get_hub()    # the hub exists before any pool binds to it
    rounds = args.rounds or (3 if args.quick else 5)
    rows = run_cases(cases, quick=args.quick, rounds=rounds)
    concurrency = []
    if not args.no_concurrency and not args.cases:
        progress = Progress()
        progress.case(len(cases) + 1, len(cases) + 1, 'concurrency')
        try:
            concurrency = concurrency_table(Run(quick=args.quick, progress=progress.update))
        finally:
            progress.done()
    env = environment(args.quick, rounds)
    if args.json:
        json.dump({'environment': env, 'cases': rows, 'concurrency': concurrency},
                  sys.stdout, indent=2)
        sys.stdout.write('\n')
    else:
        print(format_table(rows, env))
        if concurrency:
            print()
            print(format_concurrency(concurrency))
    return 0


if __name__ == '__main__':
    sys.exit(main())
