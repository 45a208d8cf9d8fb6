"""ExecutorPool over the standard library's real executors."""

import concurrent.futures
import functools
import multiprocessing
import os
import signal
import threading

import gevent
import pytest
from zope.interface.verify import verifyObject

from gruvi_gevent import Cancelled, ExecutorPool, wait
from gruvi_gevent.interfaces import IPool

from gruvi_gevent.testing import run_in_native_thread

from pool_helpers import TIMEOUT, check_backpressure_of


def square(x):
    return x * x


def die():
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def make_pool(pool_factory):
    """``make(*args, **kwargs)``: an ExecutorPool closed after the test."""
    return functools.partial(pool_factory, ExecutorPool)


def test_results_map_and_wait_with_a_greenlet(make_pool):
    pool = make_pool(concurrent.futures.ThreadPoolExecutor(2))
    verifyObject(IPool, pool)
    assert pool.submit(square, 5).result(TIMEOUT) == 25
    assert list(pool.map(square, range(4), timeout=TIMEOUT)) == [0, 1, 4, 9]
    future = pool.submit(square, 3)
    greenlet = gevent.spawn(square, 4)
    done, pending = wait([future, greenlet], timeout=TIMEOUT)
    assert len(done) == 2 and not pending
    assert isinstance(pool.submit(int, 'x').exception(TIMEOUT), ValueError)


def test_cancel_is_certain_while_queued_and_asks_the_engine_after(make_pool):
    gate = threading.Event()
    pool = make_pool(concurrent.futures.ThreadPoolExecutor(1), maxsize=1)
    try:
        running = pool.submit(gate.wait, TIMEOUT)
        queued = pool.submit(square, 2)
        assert len(pool) == 1
        assert queued.cancel() is True
        assert isinstance(queued.exception(), Cancelled)
        # Handed over and started: the standard executor cannot stop it.
        assert running.cancel() is False
    finally:
        gate.set()
    assert running.result(TIMEOUT) is True


def test_cancel_of_a_job_the_engine_still_queues(make_pool):
    gate = threading.Event()
    pool = make_pool(concurrent.futures.ThreadPoolExecutor(1))
    try:
        first = pool.submit(gate.wait, TIMEOUT)
        second = pool.submit(square, 2)     # waits inside the engine
        assert second.cancel() is True and second.cancelled()
    finally:
        gate.set()
    assert first.result(TIMEOUT) is True


def test_a_broken_executor_is_replaced_by_the_factory(make_pool):
    context = multiprocessing.get_context('forkserver')
    made = []

    def factory():
        made.append(concurrent.futures.ProcessPoolExecutor(1, mp_context=context))
        return made[-1]

    pool = make_pool(factory)
    assert pool.submit(square, 3).result(TIMEOUT) == 9
    error = pool.submit(die).exception(TIMEOUT)
    assert isinstance(error, concurrent.futures.BrokenExecutor)
    assert pool.submit(square, 4).result(TIMEOUT) == 16
    assert len(made) == 2


def test_close_waits_without_blocking_the_hub_and_shuts_the_executor_down(make_pool):
    gate = threading.Event()
    executor = concurrent.futures.ThreadPoolExecutor(1)
    pool = make_pool(executor)
    job = pool.submit(gate.wait, TIMEOUT)
    ticks = []

    def ticker():
        while len(ticks) < 20:
            gevent.sleep(0.001)
            ticks.append(None)
        gate.set()

    tick = gevent.spawn(ticker)
    pool.close()
    assert len(ticks) == 20 and job.result() is True
    assert getattr(executor, '_shutdown') is True
    tick.join(TIMEOUT)
    with pytest.raises(RuntimeError, match='closed'):
        pool.submit(square, 1)


def test_submit_from_a_plain_thread(make_pool):
    pool = make_pool(concurrent.futures.ThreadPoolExecutor(1))
    results = []
    done = run_in_native_thread(lambda: results.append(pool.submit(square, 6).result(TIMEOUT)))
    done.result(TIMEOUT)    # parks this greenlet: the hand-over happens in this hub
    assert results == [36]


@pytest.mark.parametrize('arg', [None, 3, 'executor'])
def test_bad_executor_is_refused(arg):
    with pytest.raises(TypeError, match='executor_or_factory'):
        ExecutorPool(arg)


def test_a_factory_returning_no_executor_fails_the_job(make_pool):
    pool = make_pool(lambda: 'not an executor')
    error = pool.submit(square, 1).exception(TIMEOUT)
    assert isinstance(error, TypeError) and 'factory' in str(error)


def test_max_queued_holds_submitters_back(make_pool, gate):
    check_backpressure_of(make_pool(concurrent.futures.ThreadPoolExecutor(4), 1, max_queued=1,
                                    queue_timeout=0.2), gate)


def test_stats_count_outcomes_by_how_the_future_ended(make_pool):
    pool = make_pool(concurrent.futures.ThreadPoolExecutor(2))
    pool.submit(square, 3)
    pool.submit(divmod, 1, 0)
    pool.join()
    stats = pool.stats()
    assert (stats.queued, stats.running, stats.completed, stats.failed) == (0, 0, 1, 1), stats


def test_submit_from_a_plain_thread_to_a_pool_whose_hub_never_waited():
    # A fresh hub in a thread of its own: nothing there has waited yet.
    results = []

    def other_thread(pool):
        results.append(pool.submit(square, 3))

    def hub_thread():
        try:
            with ExecutorPool(concurrent.futures.ThreadPoolExecutor(1), 1) as pool:
                submitter = threading.Thread(target=other_thread, args=(pool,))
                submitter.start()
                submitter.join(TIMEOUT)
                results.append(results[0].result(TIMEOUT))
        finally:
            gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=hub_thread)
    thread.start()
    thread.join(TIMEOUT)
    assert results[1:] == [9]


def interrupt():
    raise KeyboardInterrupt


def test_a_done_callback_raising_keyboardinterrupt_still_counts_the_job(make_pool):
    # It is raised in the executor's thread, out of our bridge; the job must
    # still count as finished, or join() and close() would wait for ever.
    pool = make_pool(concurrent.futures.ThreadPoolExecutor(1))
    gate = threading.Event()
    future = pool.submit(gate.wait, TIMEOUT)
    future.add_done_callback(interrupt)
    gate.set()
    assert future.result(TIMEOUT) is True
    assert pool.join(TIMEOUT)
    assert pool.stats().completed == 1
