"""Load: a million fiber jobs, a hundred thousand thread jobs, submitters racing.

Every future must resolve exactly once: each job returns its number, a done
callback adds it (and its square) up and counts itself, and the totals must
come out exact. Memory is traced (tracemalloc) across the whole run; after
close() what is still allocated must be back near where it started, so a
leak of even a few bytes a job shows.

These tests make up the ``stress`` group (``-m stress`` runs just them,
``-m "not stress"`` skips them); ``make test`` runs them with the rest.
"""

import gc
import threading
import time
import tracemalloc

import gevent
import pytest

from gruvi_gevent import FiberPool, Future, ThreadPool, as_completed, wait

pytestmark = pytest.mark.stress

TIMEOUT = 60
# What may stay allocated after a run and close(): the library's lazily made
# per-hub structures and interpreter caches, never anything per job.
MEMORY_SLACK = 512 * 1024
# Only memory allocated through the pools, gevent or this file counts: other
# tests' background threads (a dask cluster's profiler, say) allocate too.
OUR_FRAMES = ('*/gruvi_gevent/*', '*/gevent/*', '*/greenlet/*', __file__)
OUR_FRAMES_DEPTH = 4


def _ours(snapshot):
    return snapshot.filter_traces([tracemalloc.Filter(True, pattern, all_frames=True)
                                   for pattern in OUR_FRAMES])


def job(number):
    return number


class Tally:
    """Counts done callbacks and sums results; callbacks may run in any thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = 0
        self.total = 0
        self.squares = 0

    def __call__(self, future):
        number = future.result(timeout=0)
        with self.lock:
            self.calls += 1
            self.total += number
            self.squares += number * number

    def check(self, count):
        assert self.calls == count, 'done callbacks: %d of %d' % (self.calls, count)
        assert self.total == count * (count - 1) // 2
        assert self.squares == (count - 1) * count * (2 * count - 1) // 6


def run_jobs(pool, count, batch):
    """Submit *count* jobs in batches, joining after each; return the Tally."""
    tally = Tally()
    submit = pool.submit
    for base in range(0, count, batch):
        for number in range(base, min(base + batch, count)):
            future = submit(job, number)
            future.add_done_callback(tally, future)
        del future
        pool.join()
    return tally


@pytest.mark.timeout(180)
@pytest.mark.parametrize('pool_class, count, maxsize', [
    pytest.param(FiberPool, 1_000_000, 16, id='fiber-1M'),
    pytest.param(ThreadPool, 100_000, 8, id='thread-100k'),
])
def test_many_jobs_resolve_once_and_leave_no_memory(pool_class, count, maxsize):
    gc.collect()
    tracemalloc.start(OUR_FRAMES_DEPTH)
    try:
        before = _ours(tracemalloc.take_snapshot())
        pool = pool_class(maxsize)
        tally = run_jobs(pool, count, batch=10_000)
        pool.close()
        assert len(pool) == 0
        tally.check(count)
        del pool, tally
        gc.collect()
        growth = _ours(tracemalloc.take_snapshot()).compare_to(before, 'traceback')
    finally:
        tracemalloc.stop()
    left = sum(stat.size_diff for stat in growth)
    assert left < MEMORY_SLACK, '%d bytes still allocated after close(); most at:\n%s' % (
        left, '\n'.join('%s\n%s' % (stat, '\n'.join(stat.traceback.format()))
                         for stat in growth[:5]))


# Submitters racing each other: 4 greenlets and 2 native threads at once.

def submitter(pool, ident, count, yield_every, results):
    """Submit *count* jobs, then collect the results here, in this greenlet or thread.

    Half are collected one by one with result(), half with as_completed().
    """
    futures = []
    for number in range(count):
        futures.append(pool.submit(job, ident * count + number))
        if yield_every and not number % yield_every:
            gevent.sleep(0)    # let the other greenlets submit too
    total = sum(future.result(timeout=TIMEOUT) for future in futures[::2])
    total += sum(future.result(timeout=0) for future in as_completed(futures[1::2],
                                                                     timeout=TIMEOUT))
    done, pending = wait(futures, timeout=0)
    assert not pending
    results.append(total)
    return futures


@pytest.mark.timeout(120)
@pytest.mark.parametrize('pool_class, count', [
    pytest.param(FiberPool, 100_000, id='fiber'),
    pytest.param(ThreadPool, 25_000, id='thread'),
])
def test_greenlets_and_threads_submit_at_once(pool_class, count):
    pool = pool_class(8)
    results = []
    go = threading.Event()
    finished = [Future(), Future()]

    def in_thread(ident, finished):
        try:
            assert go.wait(TIMEOUT)
            finished.set_result(submitter(pool, ident, count, 0, results))
        except BaseException as exc:
            finished.set_exception(exc)

    threads = [threading.Thread(target=in_thread, args=(ident, finished[ident]), daemon=True)
               for ident in range(2)]
    for thread in threads:
        thread.start()
    greenlets = [gevent.spawn(submitter, pool, ident, count, every, results)
                 for ident, every in zip(range(2, 6), (1, 7, 50, 500))]
    go.set()
    started = time.monotonic()
    gevent.joinall(greenlets, timeout=TIMEOUT, raise_error=True)
    thread_futures = [outcome.result(timeout=TIMEOUT) for outcome in finished]
    for thread in threads:
        thread.join(TIMEOUT)
    elapsed = time.monotonic() - started

    total = 6 * count
    assert sorted(results) == sorted(
        sum(range(ident * count, (ident + 1) * count)) for ident in range(6))
    futures = [future for greenlet in greenlets for future in greenlet.value]
    futures += [future for batch in thread_futures for future in batch]
    assert len(futures) == total and len(set(map(id, futures))) == total
    assert all(future.done() and future._callback_count() == 0 for future in futures)
    pool.close()
    assert len(pool) == 0
    assert elapsed < TIMEOUT
