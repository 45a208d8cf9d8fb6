"""What is particular to ThreadPool: OS threads, no cancelling running jobs, waking threads."""

import os
import sys
import threading

import gevent
import pytest
from gevent import GreenletExit

from gruvi_gevent import Cancelled, FiberPool, Future, ThreadPool, blocking
from gruvi_gevent._wakeup import get_ident

from pool_helpers import (  # noqa: F401  (fixtures)
    THREAD, TIMEOUT, Tracker, hub_errors, ticker, wait_until)

MAIN_IDENT = get_ident()


def add(a, b):
    return a + b


def test_running_job_cannot_be_cancelled(pool_factory):
    pool = pool_factory(ThreadPool, 1)
    tracker = Tracker(THREAD)
    gate = threading.Event()
    future = pool.submit(tracker.gated(gate), 'ran', 'result')
    try:
        assert tracker.wait_started(1)
        assert future.running()
        assert future.cancel() is False
        assert future.running() and not future.cancelled()
    finally:
        gate.set()
    assert future.result(timeout=TIMEOUT) == 'result'
    assert not future.cancelled()
    assert tracker.finished == ['ran']


def test_pending_job_can_be_cancelled_and_never_runs(pool_factory):
    pool = pool_factory(ThreadPool, 1)
    tracker = Tracker(THREAD)
    gate = threading.Event()
    first = pool.submit(tracker.gated(gate), 'first')
    second = pool.submit(tracker.gated(gate), 'second')
    third = pool.submit(tracker.gated(gate), 'third')
    try:
        assert tracker.wait_started(1)
        assert not second.running()
        assert second.cancel() is True
        assert second.cancelled()
    finally:
        gate.set()
    assert first.result(timeout=TIMEOUT) == 'first'
    assert third.result(timeout=TIMEOUT) == 'third'
    with pytest.raises(Cancelled):
        second.result()
    pool.join()
    assert tracker.started == ['first', 'third']


def test_jobs_run_on_os_threads_other_than_the_hubs(pool_factory):
    pool = pool_factory(ThreadPool, 3)
    tracker = Tracker(THREAD)
    gate = threading.Event()

    def job(i):
        tracker.gated(gate)(i)
        return get_ident(), threading.get_ident()

    futures = [pool.submit(job, i) for i in range(3)]
    try:
        assert tracker.wait_started(3)      # three at once: three threads
    finally:
        gate.set()
    idents = [future.result(timeout=TIMEOUT) for future in futures]
    assert all(original == plain for original, plain in idents)
    idents = {original for original, _ in idents}
    assert len(idents) == 3
    assert MAIN_IDENT not in idents
    assert gevent.get_hub().thread_ident not in idents


def test_a_waiting_greenlet_does_not_block_the_hub(pool_factory):
    pool = pool_factory(ThreadPool, 1)
    ticks, enough = [], threading.Event()
    tick = gevent.spawn(ticker, ticks, enough)
    try:
        # The job blocks its thread until the hub has ticked: if result()
        # blocked the hub, the job would wait in vain.
        future = pool.submit(enough.wait, TIMEOUT)
        assert future.result(timeout=TIMEOUT) is True
    finally:
        tick.kill()
    assert len(ticks) >= 5


def test_results_wake_every_waiter_in_any_thread(pool_factory):
    pool = pool_factory(ThreadPool, 1)
    tracker = Tracker(THREAD)
    gate = threading.Event()
    future = pool.submit(tracker.gated(gate), 'job', 'value')
    waiting = threading.Semaphore(0)
    outcomes = [Future() for _ in range(3)]

    def native(outcome):
        try:
            waiting.release()
            outcome.set_result((future.result(timeout=TIMEOUT), get_ident()))
        except BaseException as exc:
            outcome.set_exception(exc)

    threads = [threading.Thread(target=native, args=(outcome,)) for outcome in outcomes]
    greenlets = [gevent.spawn(future.result, timeout=TIMEOUT) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for _ in threads:
            assert waiting.acquire(timeout=TIMEOUT)
        assert tracker.wait_started(1)
        gevent.sleep(0)     # let the greenlets start waiting
    finally:
        gate.set()
    results = [outcome.result(timeout=TIMEOUT) for outcome in outcomes]
    assert [value for value, _ in results] == ['value'] * 3
    assert len({ident for _, ident in results}) == 3
    for thread in threads:
        thread.join(TIMEOUT)
    assert [g.get(timeout=TIMEOUT) for g in greenlets] == ['value', 'value']
    assert future.result() == 'value'


def test_unbounded_pool_grows_on_demand(pool_factory):
    pool = pool_factory(ThreadPool)
    assert pool.maxsize is None
    tracker = Tracker(THREAD)
    with tracker.all_running(pool, 12, 'an unbounded pool did not run every job at once') \
            as results:
        assert len(pool) == 12
    assert results == list(range(12))
    assert tracker.peak == 12


def test_minsize_threads_start_at_once_and_serve_jobs(pool_factory):
    pool = pool_factory(ThreadPool, None, minsize=3)
    assert len(pool) == 3
    with Tracker(THREAD).all_running(pool, 3) as results:
        assert len(pool) == 3       # no new threads were needed
    assert results == [0, 1, 2]


@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit, GreenletExit, Cancelled])
def test_base_exceptions_go_to_the_future_and_the_worker_survives(pool_factory, hub_errors,
                                                                  capfd, exc_type):
    pool = pool_factory(ThreadPool, 1)

    def job():
        raise exc_type('from the job')

    future = pool.submit(job)
    exc = future.exception(timeout=TIMEOUT)
    assert type(exc) is exc_type and exc.args == ('from the job',)
    assert not future.cancelled()
    with pytest.raises(exc_type):
        future.result()
    # The same thread serves the next job.
    first = pool.submit(get_ident).result(timeout=TIMEOUT)
    second = pool.submit(get_ident).result(timeout=TIMEOUT)
    assert first == second
    assert len(pool) == 1
    assert hub_errors == []
    assert 'Traceback' not in capfd.readouterr().err


def test_a_thread_job_can_wait_on_a_fiber_job(pool_factory):
    threads = pool_factory(ThreadPool, 2)
    fibers = pool_factory(FiberPool, 2)

    def job(x):
        # A pool thread submits to the hub's fiber pool and waits for it.
        return fibers.submit(lambda: (x * 2, get_ident())).result(timeout=TIMEOUT)

    results = list(threads.map(job, range(6), timeout=TIMEOUT))
    assert [value for value, _ in results] == [0, 2, 4, 6, 8, 10]
    assert {ident for _, ident in results} == {MAIN_IDENT}


def test_minsize_threads_stay_when_idle_threads_retire_together(pool_factory):
    # White-box: the exit bookkeeping of each retiring thread is held up, so
    # that every idle thread times out while the others are still leaving.
    arrived = []
    everyone = threading.Event()

    class SlowToLeave(THREAD.quick_class(0.2)):
        def _worker_exited(self, *args):
            arrived.append(None)
            if len(arrived) == 3:
                everyone.set()
            everyone.wait(0.5)
            super()._worker_exited(*args)

    pool = pool_factory(SlowToLeave, 3, minsize=1)
    with Tracker(THREAD).all_running(pool, 3):
        pass
    assert wait_until(lambda: len(arrived) >= 2)
    assert not everyone.wait(0.5), 'the minsize thread left as well'
    assert len(pool) == 1
    assert pool.submit(add, 1, 2).result(timeout=TIMEOUT) == 3


def _policy():
    return os.sched_getscheduler(0)


@pytest.mark.skipif(not hasattr(os, 'SCHED_BATCH'), reason='SCHED_BATCH is a Linux policy')
def test_workers_run_under_sched_batch_unless_told_not_to(pool_factory):
    # A worker woken for a job must not preempt the hub that queued it.
    own = _policy()     # the process's: SCHED_OTHER unless it runs under chrt
    batch = os.SCHED_BATCH if own == os.SCHED_OTHER else own
    assert pool_factory(ThreadPool, 1).submit(_policy).result(TIMEOUT) == batch
    assert blocking(_policy) == batch
    assert pool_factory(ThreadPool, 1, sched_batch=False).submit(_policy).result(TIMEOUT) \
        == own
    assert _policy() == own     # the caller's own policy is left alone


@pytest.mark.skipif(not hasattr(os, 'SCHED_IDLE'), reason='SCHED_IDLE is a Linux policy')
def test_a_thread_under_another_policy_keeps_it():
    # A real-time or idle policy is the process's choice: a worker keeps it.
    from gruvi_gevent.threadpool import _use_batch_policy
    seen = []

    def thread():
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        _use_batch_policy()
        seen.append(_policy())

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(TIMEOUT)
    assert seen == [os.SCHED_IDLE]


@pytest.mark.skipif(not hasattr(os, 'SCHED_BATCH'), reason='SCHED_BATCH is a Linux policy')
def test_a_child_process_inherits_the_policy_unless_it_resets_it(pool_factory):
    # What the production guide tells a job that starts a process.
    import subprocess
    show = [sys.executable, '-c', 'import os; print(os.sched_getscheduler(0))']

    def child_policy(**popen_kwargs):
        return int(subprocess.run(show, capture_output=True, text=True, check=True,
                                  timeout=TIMEOUT, **popen_kwargs).stdout)

    def reset():
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    pool = pool_factory(ThreadPool, 1)
    assert pool.submit(child_policy).result(TIMEOUT) == os.SCHED_BATCH
    assert pool.submit(child_policy, preexec_fn=reset).result(TIMEOUT) == os.SCHED_OTHER
