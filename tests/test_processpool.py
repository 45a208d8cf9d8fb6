"""ProcessPool with real worker processes, forkserver and spawn, plain.

Jobs that must be caught running report their process id over a Unix socket
(a ``Gate``, from pool_helpers) and block until the test releases them, so a test waits on
the job itself, never on a sleep. Every pool is closed by the fixture, which
reaps its processes; the monkey-patched variants run in fresh interpreters
(``test_processpool_patched.py``).
"""

import functools
import os
import pickle
import signal
import threading
import time

import gevent
import pytest
from zope.interface.verify import verifyObject

from gruvi_gevent import Cancelled, Error, ProcessPool, Timeout, get_process_pool, wait
from gruvi_gevent.interfaces import IPool
from gruvi_gevent.processpool import RemoteTraceback, WorkerDied

from gruvi_gevent.testing import run_in_native_thread

from pool_helpers import TIMEOUT, check_backpressure_of, hold, wait_until

CONTEXTS = ['forkserver', 'spawn']


def square(x):
    return x * x


def boom(message):
    raise ValueError(message)


class Unpicklable(Exception):
    def __init__(self, a, b):       # pickling keeps only args: unpickling fails
        super().__init__(a)


def raise_unpicklable():
    raise Unpicklable('x', 'y')


def return_a_lock():
    return threading.Lock()


def echo_size(*blobs):
    return [bytearray(len(blob)) for blob in blobs]


@pytest.fixture
def make_pool(pool_factory):
    """``make(*args, **kwargs)``: a ProcessPool closed (its processes reaped) after the test."""
    return functools.partial(pool_factory, ProcessPool)


def gone(pid, timeout=TIMEOUT):
    """Wait until process *pid* no longer exists; return whether it went."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        gevent.sleep(0.01)
    return False


@pytest.mark.parametrize('context', CONTEXTS)
def test_submit_map_lambdas_and_workers_are_other_processes(make_pool, context):
    pool = make_pool(2, context=context)
    verifyObject(IPool, pool)
    assert pool.submit(square, 7).result(TIMEOUT) == 49
    assert list(pool.map(square, range(6), timeout=TIMEOUT)) == [0, 1, 4, 9, 16, 25]
    assert pool.submit(lambda x, y=1: x + y, 1, y=2).result(TIMEOUT) == 3
    pids = {pool.submit(os.getpid).result(TIMEOUT) for _ in range(4)}
    assert os.getpid() not in pids
    assert 1 <= len(pool) <= 2
    pool.close()
    assert len(pool) == 0
    assert all(gone(pid) for pid in pids)
    with pytest.raises(RuntimeError, match='closed'):
        pool.submit(square, 1)


@pytest.mark.parametrize('context', CONTEXTS)
def test_kill_9_fails_only_the_running_job_and_the_worker_is_replaced(make_pool, gate,
                                                                      context):
    pool = make_pool(2, context=context)
    doomed = pool.submit(hold, gate.address, 'doomed')
    survivor = pool.submit(hold, gate.address, 'survivor')
    queued = [pool.submit(square, n) for n in range(4)]
    pids = [gate.arrive(), gate.arrive()]
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    # The job on the killed worker is one of the two held ones.
    (failed,), (spared,) = wait([doomed, survivor], count=1, timeout=TIMEOUT)
    error = failed.exception(TIMEOUT)
    assert isinstance(error, WorkerDied) and isinstance(error, Error)
    assert str(victim) in str(error)
    if context == 'forkserver':
        # A spawn worker is this process's child: a gevent child watcher
        # elsewhere in this test process (gevent.subprocess) may reap it
        # first. test_processpool_patched.py checks its code in a fresh
        # interpreter.
        assert 'code -9' in str(error) and 'SIGKILL' in str(error)
    gate.release_all()
    assert spared.result(TIMEOUT) in ('doomed', 'survivor')
    assert [future.result(TIMEOUT) for future in queued] == [0, 1, 4, 9]
    assert victim not in {pool.submit(os.getpid).result(TIMEOUT) for _ in range(4)}
    assert len(pool) <= 2


def test_a_worker_that_dies_idle_costs_no_job(make_pool):
    pool = make_pool(1)
    pid = pool.submit(os.getpid).result(TIMEOUT)
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    assert pool.submit(square, 5).result(TIMEOUT) == 25
    assert pool.submit(os.getpid).result(TIMEOUT) != pid


@pytest.mark.parametrize('context', CONTEXTS)
def test_cancel_of_a_running_job_kills_and_replaces_its_worker(make_pool, gate, context):
    pool = make_pool(1, context=context)
    running = pool.submit(hold, gate.address)
    queued = pool.submit(square, 3)
    pid = gate.arrive()
    assert running.running()
    assert running.cancel() is True
    assert running.cancelled() and isinstance(running.exception(), Cancelled)
    assert gone(pid)
    assert queued.result(TIMEOUT) == 9
    assert pool.submit(os.getpid).result(TIMEOUT) != pid


def test_map_timeout_cancels_running_jobs_and_join_returns_at_once(make_pool, gate):
    pool = make_pool(2)
    results = pool.map(hold, [gate.address] * 3, timeout=0.5)
    with pytest.raises(Timeout):
        list(results)
    started = time.monotonic()
    pool.join()
    assert time.monotonic() - started < 2
    assert pool.submit(square, 2).result(TIMEOUT) == 4


def test_pickling_errors_reach_the_future_at_once_naming_what_failed(make_pool, gate):
    pool = make_pool(1)
    blocker = pool.submit(hold, gate.address)
    gate.arrive()
    # The only worker is busy: these fail at submit, without waiting for it.
    by_arg = pool.submit(square, threading.Lock())
    by_kwarg = pool.submit(square, x=threading.Lock())
    for future, what in [(by_arg, 'argument 0 (a lock)'), (by_kwarg, "keyword argument 'x'")]:
        assert future.done()
        error = future.exception()
        assert isinstance(error, pickle.PicklingError)
        assert what in str(error) and 'square' in str(error)
    gate.release_all()
    blocker.result(TIMEOUT)
    result_error = pool.submit(return_a_lock).exception(TIMEOUT)
    assert isinstance(result_error, pickle.PicklingError)
    assert 'result of return_a_lock' in str(result_error)


def test_job_exceptions_arrive_as_their_type_with_the_worker_traceback(make_pool):
    pool = make_pool(1)
    error = pool.submit(boom, 'went wrong').exception(TIMEOUT)
    assert type(error) is ValueError and str(error) == 'went wrong'
    assert isinstance(error.__cause__, RemoteTraceback)
    assert 'in boom' in str(error.__cause__) and 'went wrong' in str(error.__cause__)
    odd = pool.submit(raise_unpicklable).exception(TIMEOUT)
    assert isinstance(odd, Error) and 'Unpicklable' in str(odd)
    assert pool.submit(square, 4).result(TIMEOUT) == 16


def longest_pause(pool, job):
    """With both workers busy, submit three jobs with three 8 MiB arguments
    each (two of them ``bytearray``, one ``bytes``) and collect them; return
    the longest the hub went without running a ticker greenlet meanwhile."""
    blob = bytearray(8 << 20)
    gaps = []

    def ticker():
        last = time.monotonic()
        while True:
            gevent.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = gevent.spawn(ticker)
    try:
        gevent.sleep(0.01)
        busy = [pool.submit(time.sleep, 0.2) for _ in range(2)]
        futures = [pool.submit(job, blob, bytes(8 << 20), blob) for _ in range(3)]
        results = [future.result(TIMEOUT) for future in futures]
        assert [future.result(TIMEOUT) for future in busy] == [None, None]
        gevent.sleep(0.01)      # the ticker records a pause that ended just now
    finally:
        tick.kill()
    assert all([len(b) for b in result] == [8 << 20] * 3 for result in results)
    return max(gaps)


def test_big_arguments_and_results_do_not_freeze_the_hub(make_pool):
    pool = make_pool(2)
    pool.submit(square, 1).result(TIMEOUT)     # workers started
    # The best of three tries: on a shared machine the operating system may
    # itself stop this process for a while, which is no pause of ours.
    pauses = []
    while len(pauses) < 3 and min(pauses, default=1) >= 0.1:
        pauses.append(longest_pause(pool, echo_size))
    assert min(pauses) < 0.1, 'the hub paused for %s s' % pauses


def test_submit_from_a_plain_thread(make_pool):
    pool = make_pool(2)
    results = []
    done = run_in_native_thread(lambda: results.append(pool.submit(square, 6).result(TIMEOUT)))
    done.result(TIMEOUT)    # parks this greenlet: the pool's greenlets run in this hub
    assert results == [36]


def set_env(key, value):
    os.environ[key] = value


def get_env(key):
    return os.environ.get(key)


def test_initializer_and_max_tasks_per_child(make_pool):
    pool = make_pool(1, initializer=set_env, initargs=('GRUVI_TEST_INIT', 'yes'),
                     max_tasks_per_child=2)
    pids = [pool.submit(os.getpid).result(TIMEOUT) for _ in range(4)]
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert pool.submit(get_env, 'GRUVI_TEST_INIT').result(TIMEOUT) == 'yes'
    assert 'GRUVI_TEST_INIT' not in os.environ


def fail_to_initialize():
    raise OSError('no such resource')


def test_a_failing_initializer_fails_the_jobs(make_pool):
    pool = make_pool(1, initializer=fail_to_initialize)
    error = pool.submit(square, 1).exception(TIMEOUT)
    assert isinstance(error, Error) and 'initializer' in str(error)
    assert 'no such resource' in str(error)


@pytest.mark.parametrize('kwargs, exc, words', [
    ({'context': 'fork'}, ValueError, ['fork', 'greenlets']),
    ({'context': 'bogus'}, ValueError, ['context', 'bogus']),
    ({'context': 3}, TypeError, ['context']),
    ({'initializer': 3}, TypeError, ['initializer']),
    ({'initargs': 3}, TypeError, ['initargs']),
    ({'max_tasks_per_child': 0}, ValueError, ['max_tasks_per_child', '0']),
    ({'max_tasks_per_child': 'x'}, TypeError, ['max_tasks_per_child']),
    ({'initializer': print, 'initargs': (threading.Lock(),)}, TypeError, ['initargs']),
    ({'maxsize': 0}, ValueError, ['maxsize']),
])
def test_bad_arguments_are_refused_at_the_call(kwargs, exc, words):
    with pytest.raises(exc) as info:
        ProcessPool(**kwargs)
    assert all(word in str(info.value) for word in words)


def test_get_process_pool_is_one_pool():
    pool = get_process_pool()
    assert pool is get_process_pool()
    assert pool.name == 'Process' and pool.maxsize == (os.cpu_count() or 1)
    assert pool.submit(square, 9).result(TIMEOUT) == 81


def test_max_queued_holds_submitters_back(make_pool, gate):
    check_backpressure_of(make_pool(1, max_queued=1, queue_timeout=0.2), gate)


def test_a_worker_killed_while_its_process_starts_leaves_no_process(make_pool):
    # gevent.killall() on the pool's workers as they wait for the spawner.
    import psutil
    me = psutil.Process()

    def processes():
        # Not multiprocessing's resource tracker: one per process, for its life.
        pids = set()
        for process in me.children(recursive=True):
            try:
                if 'resource_tracker' not in ' '.join(process.cmdline()):
                    pids.add(process.pid)
            except psutil.NoSuchProcess:     # gone meanwhile
                pass
        return pids

    before = processes()
    pool = make_pool(1, context='spawn')    # a child of ours, not of a forkserver
    pool.submit(abs, -1)
    gevent.sleep(0)         # the worker greenlet asks the spawner for a process
    workers = list(pool._group)
    assert workers
    gevent.killall(workers, timeout=TIMEOUT)
    pool.close(TIMEOUT)
    assert wait_until(lambda: not (processes() - before)), processes() - before
