"""stats(): a read-only snapshot of a pool's numbers, for health checks."""

import gevent
import pytest

from gruvi_gevent import FiberPool, Future, PoolStats
from gruvi_gevent.testing import run_in_greenlet, run_in_native_thread

from pool_helpers import (
    KINDS, TIMEOUT, Tracker, wait_until)

FIELDS = ('workers', 'idle', 'queued', 'running', 'completed', 'failed', 'cancelled')


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def fail():
    raise ValueError('boom')


def test_a_new_pool_has_zeros(kind, pool_factory):
    stats = pool_factory(kind, 3).stats()
    assert isinstance(stats, PoolStats)
    assert stats._fields == FIELDS
    assert tuple(stats) == (0,) * 7


def test_idle_workers_of_minsize(kind, pool_factory):
    pool = pool_factory(kind, 4, minsize=2)
    # Threads start asynchronously: wait until both wait for work.
    assert wait_until(lambda: pool.stats().idle == 2)
    assert pool.stats() == PoolStats(2, 2, 0, 0, 0, 0, 0)


def test_running_queued_and_totals(kind, pool_factory):
    pool = pool_factory(kind, 2)
    tracker = Tracker(kind)
    gate = kind.event()
    job = tracker.gated(gate)
    futures = [pool.submit(job, i) for i in range(5)]
    try:
        assert tracker.wait_started(2)
        stats = pool.stats()
        assert (stats.workers, stats.idle, stats.running, stats.queued) == (2, 0, 2, 3)
        assert futures[4].cancel()
    finally:
        gate.set()
    failing = pool.submit(fail)
    assert pool.join(TIMEOUT)
    with pytest.raises(ValueError):
        failing.result()
    assert [future.result() for future in futures[:4]] == [0, 1, 2, 3]
    stats = pool.stats()
    assert (stats.running, stats.queued) == (0, 0)
    assert (stats.completed, stats.failed, stats.cancelled) == (4, 1, 1)
    assert stats.idle == stats.workers


def test_a_running_job_cancelled_counts_as_cancelled(pool_factory):
    pool = pool_factory(FiberPool, 1)
    started = Future()
    future = pool.submit(lambda: (started.set_result(None), gevent.sleep(TIMEOUT)))
    started.result(TIMEOUT)
    assert future.cancel()
    assert pool.join(TIMEOUT)
    stats = pool.stats()
    assert (stats.completed, stats.failed, stats.cancelled) == (0, 0, 1)


def test_stats_from_a_native_thread_and_the_hub(kind, pool_factory):
    pool = pool_factory(kind, 2)
    assert pool.submit(int, 7).result(TIMEOUT) == 7
    assert pool.join(TIMEOUT)
    from_thread = run_in_native_thread(pool.stats)
    assert run_in_greenlet(from_thread.result, TIMEOUT).completed == 1
    # Never switches: it may even be read in a loop callback of the hub.
    in_hub = Future()
    gevent.get_hub().loop.run_callback(lambda: in_hub.set_result(pool.stats()))
    assert in_hub.result(TIMEOUT).completed == 1


def test_stats_count_map_and_many_jobs(kind, pool_factory):
    pool = pool_factory(kind, 4)
    assert sum(pool.map(abs, range(-500, 500))) == 250000
    assert pool.join(TIMEOUT)
    stats = pool.stats()
    assert stats.completed == 1000 and stats.failed == stats.cancelled == 0
    assert stats._asdict()['completed'] == 1000
