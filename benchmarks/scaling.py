"""The benchmark cases of the pools past one core: ProcessPool and DaskPool.

Each function takes the benchmark's ``Run`` and returns its ``Outcome`` (see
:mod:`benchmarks.measure`); :mod:`benchmarks.bench` holds them in its table.
Pools and clusters are made and warmed up outside the timed rounds; the
rounds time submitting and collecting, and check every result.
"""

import concurrent.futures
import multiprocessing
from time import perf_counter
from typing import Any

from gruvi_gevent.blocking import blocking
from gruvi_gevent.processpool import ProcessPool

from .measure import Outcome, Run, check, job, sum_of_range

# The CPU-bound job: a pure-Python loop of about a tenth of a second.
_SPIN = 2_000_000
_WORKERS = 2


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def _timed_collect(submit: Any, result: Any, n: int) -> float:
    start = perf_counter()
    futures = [submit(job, i) for i in range(n)]
    total = sum(result(future) for future in futures)
    elapsed = perf_counter() - start
    check('results', total, sum_of_range(n))
    return elapsed


def processpool_vs_executor(run: Run) -> Outcome:
    """Trivial jobs, submitted then collected: ProcessPool(2) against the executor.

    Both use forkserver workers, started before the timed rounds.
    """
    n = run.size(3_000, 1_000)
    context = multiprocessing.get_context('forkserver')
    with ProcessPool(_WORKERS) as pool, \
            concurrent.futures.ProcessPoolExecutor(_WORKERS, mp_context=context) as executor:
        list(pool.map(job, range(_WORKERS * 2)))
        list(executor.map(job, range(_WORKERS * 2)))
        ours, anchor = run.alternate(
            lambda: _timed_collect(pool.submit, lambda f: f.result(), n),
            lambda: _timed_collect(executor.submit, lambda f: f.result(), n))
    return Outcome.from_rounds(ours, anchor, 'us/job', 1e6 / n, details={'jobs': n})


def processpool_speedup(run: Run) -> Outcome:
    """Pure-Python CPU-bound jobs: ProcessPool(2) against running them one by one here.

    The ratio is the inverse of the speed-up (0.5 would be two cores fully
    used); the note gives the speed-up, and the executor's for comparison.
    """
    jobs = _WORKERS * run.size(3, 2)
    expected = _spin(_SPIN) * jobs
    context = multiprocessing.get_context('forkserver')

    def serial() -> float:
        start = perf_counter()
        total = sum(_spin(_SPIN) for _ in range(jobs))
        elapsed = perf_counter() - start
        check('serial', total, expected)
        return elapsed

    def spread(submit: Any) -> float:
        start = perf_counter()
        total = sum(future.result() for future in [submit(_spin, _SPIN) for _ in range(jobs)])
        elapsed = perf_counter() - start
        check('spread', total, expected)
        return elapsed

    with ProcessPool(_WORKERS) as pool, \
            concurrent.futures.ProcessPoolExecutor(_WORKERS, mp_context=context) as executor:
        list(pool.map(job, range(_WORKERS * 2)))
        list(executor.map(job, range(_WORKERS * 2)))
        ours, anchor = run.alternate(lambda: spread(pool.submit), serial)
        theirs = min(spread(executor.submit) for _ in range(2))
    note = 'speed-up %.2fx (executor %.2fx)' % (min(anchor) / min(ours), min(anchor) / theirs)
    return Outcome.from_rounds(ours, anchor, 'ms total', 1e3, note=note,
                               details={'jobs': jobs, 'executor_seconds': theirs})


def daskpool_vs_dask(run: Run) -> Outcome:
    """Trivial tasks on a LocalCluster(2 processes): DaskPool against dask's submit/result.

    The anchor submits with ``client.submit(pure=False)`` and collects with
    each future's ``result()``, in this greenlet (nothing else runs).
    """
    import distributed
    from gruvi_gevent.dask import DaskPool
    n = run.size(500, 200)
    cluster = blocking(distributed.LocalCluster, n_workers=2, threads_per_worker=1,
                       processes=True, host='127.0.0.1', dashboard_address=None,
                       # its HTTP server, on 8787 unless told otherwise
                       scheduler_kwargs={'dashboard_address': '127.0.0.1:0'})
    try:
        client = blocking(distributed.Client, cluster)
        try:
            with DaskPool(client) as pool:
                list(pool.map(job, range(4)))
                ours, anchor = run.alternate(
                    lambda: _timed_collect(pool.submit, lambda f: f.result(), n),
                    lambda: _timed_collect(
                        lambda func, i: client.submit(func, i, pure=False),
                        lambda f: f.result(), n))
        finally:
            blocking(client.close)
    finally:
        blocking(cluster.close)
    return Outcome.from_rounds(ours, anchor, 'us/job', 1e6 / n, details={'jobs': n})
