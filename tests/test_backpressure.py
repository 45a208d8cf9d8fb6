"""Backpressure: a pool with ``max_queued`` holds at most ``maxsize + max_queued``
unfinished jobs; submitters beyond that wait, first come first served."""

import threading
import time

import gevent
import pytest

from gruvi_gevent import FiberPool, Timeout
from gruvi_gevent.testing import run_in_greenlet, run_in_native_thread

from pool_helpers import (
    KINDS, TIMEOUT, Tracker, assert_hub_ticks, wait_until)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def parked(pool):
    """How many submitters wait in the pool's line."""
    return len(pool._bound.line)


def full_pool(kind, pool_factory, **options):
    """A pool of one worker and one queue place, both taken by gated jobs.

    Returns (pool, gate, tracker, futures); the worker runs job 'running'.
    """
    pool = pool_factory(kind, 1, max_queued=1, **options)
    tracker = Tracker(kind)
    gate = kind.event()
    job = tracker.gated(gate)
    futures = [pool.submit(job, 'running')]
    assert tracker.wait_started(1)
    futures.append(pool.submit(job, 'queued'))
    stats = pool.stats()
    assert (stats.running, stats.queued) == (1, 1)
    return pool, gate, tracker, futures


def expect_full_with(pool, kind, count):
    """Check that *count* gated jobs fill *pool*: one more submit() times out
    (the pool has a queue_timeout). The jobs are then released and finish."""
    gate = kind.event()
    held = [pool.submit(gate.wait, TIMEOUT) for _ in range(count)]
    try:
        with pytest.raises(Timeout):
            pool.submit(abs, 1)
    finally:
        gate.set()
    assert all(future.result(TIMEOUT) for future in held)


def test_default_is_unbounded(kind, pool_factory):
    pool = pool_factory(kind, 1)
    assert pool.max_queued is None
    gate = kind.event()
    futures = [pool.submit(gate.wait, TIMEOUT) for _ in range(200)]
    assert pool.stats().queued + pool.stats().running == 200
    gate.set()
    assert all(future.result(TIMEOUT) for future in futures)


def test_greenlet_submitters_park_in_order(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory)
    assert pool.max_queued == 1
    order = []

    def submitter(key):
        future = pool.submit(order.append, key)
        return future

    greenlets = []
    for key in 'abc':
        greenlets.append(gevent.spawn(submitter, key))
        gevent.sleep(0)         # runs it until it parks
        assert parked(pool) == len(greenlets)
    # Only the submitters are parked: the hub serves everyone else.
    assert_hub_ticks()
    assert not any(g.ready() for g in greenlets)
    # The pool never held more than maxsize + max_queued jobs.
    assert pool.stats().queued + pool.stats().running == 2
    gate.set()
    gevent.joinall(greenlets, timeout=TIMEOUT, raise_error=True)
    for g in greenlets:
        g.value.result(TIMEOUT)
    assert order == ['a', 'b', 'c']
    assert [future.result(TIMEOUT) for future in futures] == ['running', 'queued']
    assert parked(pool) == 0


def test_native_thread_submitters_block_only_themselves(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory)
    order = []
    outcomes = []
    for key in 'xyz':
        outcomes.append(run_in_native_thread(pool.submit, order.append, key))
        assert wait_until(lambda: parked(pool) == len(outcomes))
    # The hub keeps serving greenlets while the threads are blocked.
    assert_hub_ticks()
    assert not any(outcome.done() for outcome in outcomes)
    gate.set()
    for outcome in outcomes:
        run_in_greenlet(outcome.result, TIMEOUT).result(TIMEOUT)
    # Let in first come first served (see test_greenlets_and_threads_share_one_line);
    # threads let in together then race each other to queue their jobs.
    assert sorted(order) == ['x', 'y', 'z']


def test_greenlets_and_threads_share_one_line(kind, pool_factory):
    # Each gated job frees one place when its gate opens, so the submitters
    # are let in one at a time, and the order can be seen.
    pool = pool_factory(kind, 1, max_queued=1)
    tracker = Tracker(kind)
    gates = [kind.event() for _ in range(4)]
    jobs = [tracker.gated(gate) for gate in gates]
    held = [pool.submit(jobs[0], 0)]
    assert tracker.wait_started(1)
    held.append(pool.submit(jobs[1], 1))
    try:
        first = run_in_native_thread(pool.submit, jobs[2], 2)
        assert wait_until(lambda: parked(pool) == 1)
        second = gevent.spawn(pool.submit, jobs[3], 3)
        assert wait_until(lambda: parked(pool) == 2)
        third = run_in_native_thread(pool.submit, abs, -4)
        assert wait_until(lambda: parked(pool) == 3)
        gates[0].set()      # one place: the first in line, a native thread
        held.append(run_in_greenlet(first.result, TIMEOUT))
        assert parked(pool) == 2 and not second.ready()
        gates[1].set()      # the next: the greenlet
        held.append(second.get(timeout=TIMEOUT))
        assert parked(pool) == 1 and not third.done()
        gates[2].set()      # and the last, a native thread again
        held.append(run_in_greenlet(third.result, TIMEOUT))
        assert parked(pool) == 0
    finally:
        for gate in gates:
            gate.set()
    assert [future.result(TIMEOUT) for future in held] == [0, 1, 2, 3, 4]


def test_queue_timeout_raises_timeout(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory, queue_timeout=0.05)
    try:
        start = time.monotonic()
        with pytest.raises(Timeout, match='no room'):
            pool.submit(abs, -1)
        assert time.monotonic() - start >= 0.04
        from_thread = run_in_native_thread(pool.submit, abs, -1)
        with pytest.raises(Timeout, match='no room'):
            run_in_greenlet(from_thread.result, TIMEOUT)
        assert parked(pool) == 0
        assert pool.stats().queued == 1
    finally:
        gate.set()
    # The timed-out calls took no place: the pool takes two jobs again.
    assert pool.join(TIMEOUT)
    assert [pool.submit(abs, -n).result(TIMEOUT) for n in range(3)] == [0, 1, 2]


def test_close_wakes_parked_submitters_with_runtime_error(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory)
    in_greenlet = gevent.spawn(pool.submit, abs, -1)
    gevent.sleep(0)
    in_thread = run_in_native_thread(pool.submit, abs, -2)
    assert wait_until(lambda: parked(pool) == 2)
    closer = gevent.spawn(pool.close)
    try:
        with pytest.raises(RuntimeError, match='closed'):
            in_greenlet.get(timeout=TIMEOUT)
        with pytest.raises(RuntimeError, match='closed'):
            run_in_greenlet(in_thread.result, TIMEOUT)
        # Woken at once, while close() still waits for the running job.
        assert not closer.ready()
    finally:
        gate.set()
    closer.get(timeout=TIMEOUT)
    assert closer.value is True
    assert [future.result(TIMEOUT) for future in futures] == ['running', 'queued']


def test_cancelled_queued_job_makes_room(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory)
    try:
        waiting = gevent.spawn(pool.submit, abs, -5)
        gevent.sleep(0)
        assert parked(pool) == 1
        assert futures[1].cancel()
        assert waiting.get(timeout=TIMEOUT) is not None
    finally:
        gate.set()
    assert waiting.value.result(TIMEOUT) == 5


def test_killed_submitter_leaves_the_line(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory, queue_timeout=0.2)
    try:
        waiting = gevent.spawn(pool.submit, abs, -1)
        gevent.sleep(0)
        assert parked(pool) == 1
        waiting.kill(timeout=TIMEOUT)
        assert waiting.dead and parked(pool) == 0
    finally:
        gate.set()
    assert pool.join(TIMEOUT)
    # Every place came back: two gated jobs fill the pool again, a third times out.
    expect_full_with(pool, kind, 2)


def test_max_queued_zero_waits_for_a_free_worker(kind, pool_factory):
    pool = pool_factory(kind, 2, max_queued=0, queue_timeout=0.05)
    expect_full_with(pool, kind, 2)
    assert pool.submit(abs, -3).result(TIMEOUT) == 3


def test_map_feeds_calls_as_room_appears(kind, pool_factory):
    pool = pool_factory(kind, 2, max_queued=3)
    peak = []
    lock = threading.Lock()

    def job(i):
        stats = pool.stats()
        with lock:
            peak.append(stats.queued + stats.running)
        if kind.name == 'fiber':
            gevent.sleep(0.001)
        else:
            time.sleep(0.001)
        return i * i

    results = pool.map(job, range(40))
    # Primed: the pool holds no more than it has room for.
    assert pool.stats().queued + pool.stats().running <= 5
    assert list(results) == [i * i for i in range(40)]
    assert max(peak) <= 5
    assert pool.stats().completed == 40


def test_map_from_a_native_thread(kind, pool_factory):
    pool = pool_factory(kind, 2, max_queued=1)
    outcome = run_in_native_thread(lambda: list(pool.map(abs, range(-30, 0))))
    assert run_in_greenlet(outcome.result, TIMEOUT) == list(range(30, 0, -1))


def test_map_timeout_while_waiting_for_room(kind, pool_factory):
    pool, gate, tracker, futures = full_pool(kind, pool_factory)
    try:
        start = time.monotonic()
        results = pool.map(abs, [1, 2, 3], timeout=0.05)
        with pytest.raises(Timeout):
            next(results)
        assert time.monotonic() - start >= 0.04
        assert parked(pool) == 0
    finally:
        gate.set()
    assert pool.join(TIMEOUT)
    assert pool.stats().completed == 2


def test_map_closed_early_cancels_what_it_submitted(kind, pool_factory):
    pool = pool_factory(kind, 1, max_queued=2)
    gate = kind.event()
    results = pool.map(lambda i: gate.wait(TIMEOUT) and i, range(10))
    assert pool.stats().queued + pool.stats().running == 3
    results.close()
    gate.set()
    assert pool.join(TIMEOUT)
    stats = pool.stats()
    assert stats.completed + stats.cancelled == 3 and stats.cancelled >= 2


def test_map_in_a_pool_closed_while_it_feeds(kind, pool_factory):
    pool = pool_factory(kind, 1, max_queued=0)
    gate = kind.event()
    results = pool.map(lambda i: gate.wait(TIMEOUT) and i, range(3))
    closer = gevent.spawn(pool.close)
    gevent.sleep(0)
    gate.set()
    assert next(results) == 0
    with pytest.raises(RuntimeError, match='closed'):
        next(results)
    assert closer.get(timeout=TIMEOUT) is True


def test_a_million_submits_hold_a_bounded_queue():
    # The burst: 1,000,000 submit() calls from one greenlet. The
    # producer is slowed to the workers' pace and the pool never holds more
    # than maxsize + max_queued jobs.
    n = 1_000_000
    pool = FiberPool(8, max_queued=64)
    done = [0]
    peak = [0]

    def job(i):
        if not i % 1000:
            stats = pool.stats()
            peak[0] = max(peak[0], stats.queued + stats.running)
        return i

    def count(future):
        done[0] += 1

    try:
        for i in range(n):
            pool.submit(job, i).add_done_callback(count, None)
        assert pool.join(TIMEOUT)
    finally:
        pool.close()
    assert done[0] == n
    assert 0 < peak[0] <= 8 + 64
    assert pool.stats().completed == n
