"""What is particular to FiberPool: killing running jobs, threads, BaseExceptions."""

import threading

import gevent
import gevent.pool
import pytest
from gevent import GreenletExit, monkey
from gevent.event import Event

from gruvi_gevent import Cancelled, FiberPool, Future
from gruvi_gevent._wakeup import get_ident

from pool_helpers import (  # noqa: F401  (fixtures)
    FIBER, TIMEOUT, Tracker, hub_errors, run_python, wait_until)

MAIN_IDENT = get_ident()
original_sleep = monkey.get_original('time', 'sleep')


def add(a, b):
    return a + b


def stall_hub(seconds):
    """Keep the hub from running for *seconds*, so that timers pile up."""
    original_sleep(seconds)


# Cancellation.

def cancellable_job(started, gate, seen, after):
    def job():
        started.set()
        try:
            gate.wait(TIMEOUT)
        except Cancelled as exc:
            seen.append(exc)
            raise
        after.append('code after the switchpoint ran')
        return 'not cancelled'
    return job


@pytest.mark.parametrize('where', ['greenlet', 'native-thread'])
def test_cancel_of_a_running_job_raises_cancelled_inside_it(pool_factory, hub_errors, capfd,
                                                             where):
    pool = pool_factory(FiberPool, 1)
    started, gate = Event(), Event()
    seen, after = [], []
    future = pool.submit(cancellable_job(started, gate, seen, after))
    assert started.wait(TIMEOUT)
    assert future.running()
    if where == 'greenlet':
        assert future.cancel() is True
    else:
        outcome = Future()
        thread = threading.Thread(target=lambda: outcome.set_result(future.cancel()))
        thread.start()
        assert outcome.result(timeout=TIMEOUT) is True
        thread.join(TIMEOUT)
    assert future.cancelled() and future.done()
    with pytest.raises(Cancelled):
        future.result(timeout=TIMEOUT)
    assert isinstance(future.exception(), Cancelled)
    pool.join()
    assert len(seen) == 1 and isinstance(seen[0], Cancelled)
    # The job stays dead, even once what it waited for happens.
    gate.set()
    # The pool keeps its capacity: its one slot runs the next job.
    assert pool.submit(add, 20, 22).result(timeout=TIMEOUT) == 42
    pool.join()
    assert after == []
    assert len(pool) == 1
    assert future.cancel() is False
    assert hub_errors == []
    assert 'Traceback' not in capfd.readouterr().err


def test_cancelled_running_jobs_free_their_slots(pool_factory):
    pool = pool_factory(FiberPool, 2)
    tracker = Tracker(FIBER)
    gate = Event()
    running = [pool.submit(tracker.gated(gate), i) for i in range(2)]
    assert tracker.wait_started(2)
    for future in running:
        assert future.cancel() is True
    pool.join()
    assert sorted(tracker.cancelled) == [0, 1]
    with Tracker(FIBER).all_running(pool, 2, 'the pool lost capacity to the cancelled '
                                             'jobs') as results:
        pass
    assert results == [0, 1]
    assert len(pool) <= 2


def test_cancelled_pending_job_never_starts(pool_factory):
    pool = pool_factory(FiberPool, 1)
    tracker = Tracker(FIBER)
    gate = Event()
    first = pool.submit(tracker.gated(gate), 'first')
    pending = [pool.submit(tracker.gated(gate), i) for i in range(3)]
    try:
        assert tracker.wait_started(1)
        assert not pending[1].running()
        assert pending[1].cancel() is True
    finally:
        gate.set()
    assert first.result(timeout=TIMEOUT) == 'first'
    assert pending[0].result(timeout=TIMEOUT) == 0
    assert pending[2].result(timeout=TIMEOUT) == 2
    with pytest.raises(Cancelled):
        pending[1].result()
    pool.join()
    assert 1 not in tracker.started


def test_a_job_that_catches_cancelled_stays_cancelled(pool_factory):
    pool = pool_factory(FiberPool, 1)
    started, gate = Event(), Event()

    def stubborn():
        started.set()
        try:
            gate.wait(TIMEOUT)
        except Cancelled:
            return 'swallowed'

    future = pool.submit(stubborn)
    assert started.wait(TIMEOUT)
    assert future.cancel() is True
    pool.join()
    assert future.cancelled()
    assert pool.submit(add, 1, 1).result(timeout=TIMEOUT) == 2


# Threads.

def test_submit_from_a_native_thread_runs_jobs_on_the_hub_thread(pool_factory):
    pool = pool_factory(FiberPool, 4)
    outcome = Future()

    def where(i):
        gevent.sleep(0)     # a real switchpoint: this is a greenlet of the hub
        return i, get_ident(), gevent.getcurrent()

    def native():
        try:
            futures = [pool.submit(where, i) for i in range(10)]
            outcome.set_result([future.result(timeout=TIMEOUT) for future in futures])
        except BaseException as exc:
            outcome.set_exception(exc)

    thread = threading.Thread(target=native)
    thread.start()
    results = outcome.result(timeout=TIMEOUT)
    thread.join(TIMEOUT)
    assert [i for i, _, _ in results] == list(range(10))
    assert {ident for _, ident, _ in results} == {MAIN_IDENT}
    assert all(isinstance(worker, gevent.Greenlet) for _, _, worker in results)


def test_submit_from_many_native_threads_at_once(pool_factory):
    pool = pool_factory(FiberPool, 3)
    outcomes = [Future() for _ in range(4)]

    def native(n):
        try:
            futures = [pool.submit(add, n, i) for i in range(50)]
            outcomes[n].set_result([future.result(timeout=TIMEOUT) for future in futures])
        except BaseException as exc:
            outcomes[n].set_exception(exc)

    threads = [threading.Thread(target=native, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for n, outcome in enumerate(outcomes):
        assert outcome.result(timeout=TIMEOUT) == [n + i for i in range(50)]
    for thread in threads:
        thread.join(TIMEOUT)
    pool.join()


def test_workers_are_greenlets_of_a_gevent_group(pool_factory):
    pool = pool_factory(FiberPool, 3, minsize=2)
    group = pool._group
    assert isinstance(group, gevent.pool.Group)
    assert len(group) == len(pool) == 2
    tracker = Tracker(FIBER)
    gate = Event()
    futures = [pool.submit(lambda: (tracker.start(0), gate.wait(TIMEOUT), gevent.getcurrent()))
               for _ in range(3)]
    try:
        assert tracker.wait_started(3)
        assert len(group) == len(pool) == 3
    finally:
        gate.set()
    workers = {future.result(timeout=TIMEOUT)[2] for future in futures}
    assert len(workers) == 3
    assert all(worker in group for worker in workers)


# BaseExceptions inside jobs.

def test_greenlet_exit_inside_a_job_goes_to_the_future(pool_factory, hub_errors, capfd):
    pool = pool_factory(FiberPool, 1)

    def job():
        raise GreenletExit('from the job')

    future = pool.submit(job)
    exc = future.exception(timeout=TIMEOUT)
    assert type(exc) is GreenletExit and str(exc) == 'from the job'
    with pytest.raises(GreenletExit):
        future.result()
    # The worker left; the pool starts another on demand.
    assert pool.submit(add, 1, 2).result(timeout=TIMEOUT) == 3
    assert len(pool) == 1
    assert hub_errors == []
    assert 'Traceback' not in capfd.readouterr().err


def test_killing_a_busy_worker_gives_greenlet_exit_to_its_future(pool_factory, hub_errors):
    pool = pool_factory(FiberPool, 2)
    tracker = Tracker(FIBER)
    gate = Event()
    futures = [pool.submit(tracker.gated(gate), i) for i in range(3)]
    try:
        assert tracker.wait_started(2)
        gevent.killall(list(pool._group), timeout=TIMEOUT)
    finally:
        gate.set()
    for future in futures[:2]:
        assert isinstance(future.exception(timeout=TIMEOUT), GreenletExit)
    # The queued job still runs: dead workers are replaced.
    assert futures[2].result(timeout=TIMEOUT) == 2
    assert pool.submit(add, 1, 2).result(timeout=TIMEOUT) == 3
    assert len(pool) <= 2
    assert hub_errors == []


def test_killing_idle_workers_does_not_break_the_pool(pool_factory):
    pool = pool_factory(FiberPool, 2, minsize=2)
    gevent.sleep(0)     # let the workers park
    gevent.killall(list(pool._group), timeout=TIMEOUT)
    assert len(pool) == 2   # minsize workers are replaced
    assert pool.submit(add, 1, 2).result(timeout=TIMEOUT) == 3


@pytest.mark.parametrize('exc_name, code', [
    ('KeyboardInterrupt', None),
    ('SystemExit', 3),
])
def test_keyboard_interrupt_and_system_exit_reach_the_future_and_the_main_greenlet(exc_name,
                                                                                   code):
    # Run in a child: the exception is meant to reach the main greenlet.
    result = run_python('''
        import gevent, gevent.event
        from gruvi_gevent import FiberPool

        pool = FiberPool(2, name='bx')
        def job():
            raise %(exc)s(%(arg)r)
        future = pool.submit(job)
        try:
            gevent.event.Event().wait(10)
            print('main: not interrupted')
        except %(exc)s as exc:
            print('main:', type(exc).__name__)
        exc = future.exception(timeout=10)
        print('future:', type(exc).__name__, exc.args)
        print('pool:', pool.submit(lambda: 42).result(timeout=10))
        # Unhandled, it stops the process.
        future = pool.submit(job)
        gevent.event.Event().wait(10)
        print('still running')
    ''' % {'exc': exc_name, 'arg': code})
    lines = result.stdout.splitlines()
    assert lines == ['main: %s' % exc_name,
                     'future: %s %r' % (exc_name, (code,)),
                     'pool: 42'], result.stderr
    if exc_name == 'SystemExit':
        assert result.returncode == code, result.stderr
    else:
        assert result.returncode != 0 and 'KeyboardInterrupt' in result.stderr


# Idle workers.

def busy_workers(pool, count):
    """Run *count* jobs at once in *pool*; return the worker greenlets that ran them."""
    tracker = Tracker(FIBER)
    gate = Event()

    def job(i):
        tracker.gated(gate)(i)
        return gevent.getcurrent()

    futures = [pool.submit(job, i) for i in range(count)]
    try:
        assert tracker.wait_started(count)
    finally:
        gate.set()
    return {future.result(timeout=TIMEOUT) for future in futures}


def test_minsize_workers_stay_the_same_greenlets(pool_factory):
    pool = pool_factory(FIBER.quick_class(0.2), 3, minsize=1)
    workers = busy_workers(pool, 3)
    assert wait_until(lambda: len(pool) <= 1)
    assert len(pool) == 1
    # The worker that stayed is one of the three, not a replacement.
    assert pool.submit(gevent.getcurrent).result(timeout=TIMEOUT) in workers
    assert set(pool._group) <= workers


def test_work_arriving_as_idle_workers_retire_starts_no_worker(pool_factory):
    # Two of three workers retire and the third takes a new job in the same
    # turn of the loop, before the hub has reaped the two: nothing is
    # missing, so no worker may be started in their place.
    pool = pool_factory(FIBER.quick_class(0.05), 3, minsize=1)
    workers = busy_workers(pool, 3)
    pool.join()
    gevent.sleep(0)     # the workers park, their idle timers armed
    outcome = []
    submitter = gevent.spawn_later(0.1, lambda: outcome.append(pool.submit(gevent.getcurrent)))
    # Every timer expires in the same turn of the loop, the idle ones first.
    stall_hub(0.2)
    submitter.join(TIMEOUT)
    assert outcome[0].result(timeout=TIMEOUT) in workers
    assert len(pool) == 1
    assert set(pool._group) <= workers


@pytest.mark.parametrize('action', ['submit', 'close'])
def test_work_arriving_as_the_idle_timer_fires(pool_factory, hub_errors, capfd, action):
    pool = pool_factory(FIBER.quick_class(0.05), 1)
    assert pool.submit(add, 1, 1).result(timeout=TIMEOUT) == 2
    pool.join()
    gevent.sleep(0)     # the worker parks, its idle timer armed
    outcome = []
    if action == 'submit':
        claimer = gevent.spawn_later(0.01, lambda: outcome.append(pool.submit(add, 2, 2)))
    else:
        claimer = gevent.spawn_later(0.01, pool.close)
    # Both timers expire in the same turn of the loop: the claim comes first.
    stall_hub(0.1)
    claimer.join(TIMEOUT)
    assert claimer.successful()
    if action == 'submit':
        assert outcome[0].result(timeout=TIMEOUT) == 4
        pool.join()
        assert len(pool) <= 1
    else:
        assert len(pool) == 0
    assert hub_errors == []
    assert 'Traceback' not in capfd.readouterr().err
