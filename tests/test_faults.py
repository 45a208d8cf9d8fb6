"""Faults: jobs that raise anything, workers killed from outside, exit without close().

What the pools promise (see the FiberPool and ThreadPool docstrings):

* An ``Exception`` (and a ``Cancelled`` the job raises itself) goes to the
  job's future and nowhere else; the worker goes on.
* FiberPool: ``GreenletExit`` goes to the future; the worker exits and is
  replaced. ``KeyboardInterrupt`` and ``SystemExit`` go to the future and are
  re-raised in the worker, so that gevent's hub passes them on to the main
  greenlet: the process can still stop. Those run in a subprocess here, where
  they cannot reach pytest's main greenlet.
* ThreadPool: everything goes to the future; the worker thread stays.

In every case where the pool survives it keeps its capacity: *maxsize* jobs
that only finish when all of them run at once still finish.
"""

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import gevent
import gevent.event
import pytest
from gevent import GreenletExit

from gruvi_gevent import Cancelled, FiberPool, ThreadPool
from gruvi_gevent.testing import DEFAULT_TIMEOUT as TIMEOUT

SCRIPT_TIMEOUT = 60
MAXSIZE = 3

POOLS = [pytest.param(FiberPool, id='fiber'), pytest.param(ThreadPool, id='thread')]


class Fault(Exception):
    pass


def raiser(exc_type):
    def job():
        raise exc_type('raised by the job')
    return job


def rendezvous(pool, count):
    """Run *count* jobs that can only finish when all of them run at once."""
    if isinstance(pool, FiberPool):
        arrived = []
        everyone = gevent.event.Event()

        def meet():
            arrived.append(None)
            if len(arrived) == count:
                everyone.set()
            return everyone.wait(TIMEOUT)
    else:
        barrier = threading.Barrier(count, timeout=TIMEOUT)

        def meet():
            barrier.wait()
            return True
    futures = [pool.submit(meet) for _ in range(count)]
    return [future.result(timeout=TIMEOUT * 2) for future in futures]


def check_capacity(pool):
    assert rendezvous(pool, pool.maxsize) == [True] * pool.maxsize
    assert len(pool) <= pool.maxsize


# Jobs that raise: the cases pytest's own process can take.

@pytest.mark.parametrize('exc_type', [Fault, ValueError, Cancelled],
                         ids=['Exception', 'ValueError', 'Cancelled'])
@pytest.mark.parametrize('pool_class', POOLS)
def test_job_raising_keeps_worker_and_capacity(pool_class, exc_type, capfd):
    pool = pool_class(MAXSIZE, minsize=MAXSIZE)
    workers = set(pool._group) if pool_class is FiberPool else None
    futures = [pool.submit(raiser(exc_type)) for _ in range(MAXSIZE * 4)]
    for future in futures:
        exc = future.exception(timeout=TIMEOUT)
        assert type(exc) is exc_type
        assert not future.cancelled()
        with pytest.raises(exc_type):
            future.result(timeout=0)
    assert len(pool) == MAXSIZE
    if pool_class is FiberPool:
        assert set(pool._group) == workers, 'a worker was replaced'
    check_capacity(pool)
    pool.close()
    assert len(pool) == 0
    assert 'Traceback' not in capfd.readouterr().err, 'an error a future delivered was printed'


@pytest.mark.parametrize('pool_class', POOLS)
def test_job_raising_greenlet_exit(pool_class, capfd):
    pool = pool_class(MAXSIZE, minsize=MAXSIZE)
    workers = set(pool._group) if pool_class is FiberPool else None
    futures = [pool.submit(raiser(GreenletExit)) for _ in range(MAXSIZE * 2)]
    for future in futures:
        assert type(future.exception(timeout=TIMEOUT)) is GreenletExit
    check_capacity(pool)
    assert len(pool) == MAXSIZE
    if pool_class is FiberPool:
        # The workers that ran them exited and were replaced.
        assert not set(pool._group) & workers
    pool.close()
    assert 'Traceback' not in capfd.readouterr().err


@pytest.mark.parametrize('exc_type', [KeyboardInterrupt, SystemExit])
def test_thread_job_raising_base_exception_goes_to_future(exc_type, capfd):
    pool = ThreadPool(MAXSIZE, minsize=MAXSIZE)
    futures = [pool.submit(raiser(exc_type)) for _ in range(MAXSIZE * 3)]
    for future in futures:
        assert type(future.exception(timeout=TIMEOUT)) is exc_type
    with pytest.raises(exc_type):
        futures[0].result()
    assert len(pool) == MAXSIZE
    check_capacity(pool)
    pool.close()
    assert 'Traceback' not in capfd.readouterr().err


# KeyboardInterrupt and SystemExit in fiber jobs: in a subprocess.

def run_script(source, *args, timeout=SCRIPT_TIMEOUT):
    """Run *source* in a fresh interpreter; return the CompletedProcess."""
    prologue = 'import faulthandler; faulthandler.dump_traceback_later(%d, exit=True)\n' % (
        timeout - 10)
    return subprocess.run([sys.executable, '-c', prologue + textwrap.dedent(source)] +
                          list(args), capture_output=True, text=True, timeout=timeout)


FIBER_BASE_EXCEPTION = '''
    import json, sys
    import gevent, gevent.event
    from gruvi_gevent import FiberPool

    exc_type = {'KeyboardInterrupt': KeyboardInterrupt, 'SystemExit': SystemExit}[sys.argv[1]]
    MAXSIZE = 3
    pool = FiberPool(MAXSIZE, minsize=MAXSIZE)
    workers = set(pool._group)

    def boom():
        raise exc_type(7)

    future = pool.submit(boom)
    if sys.argv[2] == 'uncaught':
        future.result()
        raise AssertionError('not reached')

    # The future gets the exception; the hub also throws it into this, the
    # main greenlet, at its next switch. Count those throws.
    throws = []

    def settle(func, *args):
        while True:
            try:
                return func(*args)
            except exc_type as exc:
                throws.append(repr(exc))

    delivered = settle(future.exception, 10)

    arrived = []
    everyone = gevent.event.Event()

    def meet():
        arrived.append(None)
        if len(arrived) == MAXSIZE:
            everyone.set()
        return everyone.wait(10)

    met = settle(lambda: [f.result(20) for f in [pool.submit(meet) for _ in range(MAXSIZE)]])
    size = len(pool)
    survivors = len(set(pool._group) & workers)
    settle(pool.close)
    print(json.dumps({
        'delivered': repr(delivered),
        'throws': throws,
        'met': met,
        'size': size,
        'survivors': survivors,
        'len_after_close': len(pool),
    }))
'''


@pytest.mark.parametrize('exc_name', ['KeyboardInterrupt', 'SystemExit'])
def test_fiber_job_base_exception_caught_by_program(exc_name):
    proc = run_script(FIBER_BASE_EXCEPTION, exc_name, 'caught')
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report['delivered'] == '%s(7)' % exc_name, 'the future did not get it'
    assert report['throws'] == ['%s(7)' % exc_name], 'the hub did not pass it on exactly once'
    assert report['met'] == [True] * 3, 'the pool lost capacity'
    assert report['size'] == 3 and report['survivors'] == 2, 'the worker was not replaced'
    assert report['len_after_close'] == 0


def test_fiber_job_keyboard_interrupt_stops_the_process():
    proc = run_script(FIBER_BASE_EXCEPTION, 'KeyboardInterrupt', 'uncaught')
    # An unhandled KeyboardInterrupt ends the process as SIGINT does.
    assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT, 1), proc.stderr
    assert 'KeyboardInterrupt' in proc.stderr
    assert 'not reached' not in proc.stderr


def test_fiber_job_system_exit_stops_the_process():
    proc = run_script(FIBER_BASE_EXCEPTION, 'SystemExit', 'uncaught')
    assert proc.returncode == 7, proc.stderr


# A FiberPool worker killed from outside.

def test_killed_running_workers_fail_their_jobs_and_are_replaced(capfd):
    pool = FiberPool(2)
    gate = gevent.event.Event()
    started = []
    both_started = gevent.event.Event()

    def hold(number):
        started.append(number)
        if len(started) == 2:
            both_started.set()
        gate.wait()
        return number

    running = [pool.submit(hold, number) for number in range(2)]
    queued = [pool.submit(pow, 2, number) for number in range(6)]
    assert both_started.wait(TIMEOUT)
    workers = list(pool._group)
    assert len(workers) == 2
    gevent.killall(workers, timeout=TIMEOUT)
    assert all(worker.dead for worker in workers)

    for future in running:
        assert isinstance(future.exception(timeout=TIMEOUT), GreenletExit)
        assert not future.cancelled()
    assert [future.result(timeout=TIMEOUT) for future in queued] == [1, 2, 4, 8, 16, 32]
    assert not set(pool._group) & set(workers), 'a dead worker is still counted'
    assert len(pool) <= 2
    check_capacity(pool)
    pool.close()
    assert len(pool) == 0
    assert 'Traceback' not in capfd.readouterr().err


def test_killed_idle_workers_are_replaced_up_to_minsize():
    pool = FiberPool(3, minsize=3)
    assert pool.submit(abs, -1).result(timeout=TIMEOUT) == 1
    workers = list(pool._group)
    gevent.killall(workers, timeout=TIMEOUT)
    assert all(worker.dead for worker in workers)
    # The pool learns of the deaths in the hub; work submitted meanwhile waits for it.
    check_capacity(pool)
    assert len(pool) == 3
    assert not set(pool._group) & set(workers)
    pool.close()
    assert len(pool) == 0


def test_killed_workers_with_an_error_fail_the_job_only():
    # Killing with an exception other than GreenletExit is just an error
    # raised inside the job: its future gets it, the worker goes on.
    pool = FiberPool(2)
    gate = gevent.event.Event()
    started = gevent.event.Event()

    def hold():
        started.set()
        gate.wait()

    future = pool.submit(hold)
    assert started.wait(TIMEOUT)
    worker = pool._group.greenlets.copy().pop()
    worker.kill(Fault('killed'), block=False)
    assert isinstance(future.exception(timeout=TIMEOUT), Fault)
    assert not worker.dead
    assert pool.submit(abs, -5).result(timeout=TIMEOUT) == 5
    check_capacity(pool)
    pool.close()


def test_killall_while_closing_still_closes():
    pool = FiberPool(2)
    gate = gevent.event.Event()
    started = []
    both_started = gevent.event.Event()

    def hold():
        started.append(None)
        if len(started) == 2:
            both_started.set()
        gate.wait()

    futures = [pool.submit(hold) for _ in range(2)] + [pool.submit(abs, -1)]
    assert both_started.wait(TIMEOUT)
    # The killer runs once close() has begun and parks this greenlet.
    killer = gevent.spawn(gevent.killall, list(pool._group), timeout=TIMEOUT)
    pool.close()
    assert len(pool) == 0
    killer.join(TIMEOUT)
    assert killer.successful()
    for future in futures[:2]:
        assert isinstance(future.exception(timeout=0), GreenletExit)
    assert futures[2].result(timeout=0) == 1


# A process that exits without close().

EXIT_WITHOUT_CLOSE = '''
    import sys
    if sys.argv[1] == 'patched':
        from gevent import monkey
        monkey.patch_all()
    import gevent, gevent.event
    from gevent import monkey
    from gruvi_gevent import FiberPool, ThreadPool, blocking, get_cpu_pool, get_io_pool

    allocate_lock = monkey.get_original('_thread', 'allocate_lock')
    fibers = FiberPool(4, minsize=2)
    threads = ThreadPool(4, minsize=2)
    unbounded = ThreadPool()
    assert sum(f.result(10) for f in [fibers.submit(abs, -n) for n in range(100)]) == 4950
    assert sum(threads.map(abs, range(100), timeout=10)) == 4950
    assert unbounded.submit(abs, -3).result(10) == 3
    assert get_cpu_pool().submit(abs, -4).result(10) == 4
    assert blocking(abs, -5) == 5

    if sys.argv[2] == 'busy':
        # Work left behind: thread jobs blocked until after the main module
        # returns and more queued behind them, fiber jobs waiting and queued,
        # a blocking() call in flight. The thread work runs to completion
        # at exit, as in concurrent.futures; the fiber jobs are dropped.
        stuck = allocate_lock()
        stuck.acquire()
        monkey.get_original('threading', 'Timer')(0.3, stuck.release).start()

        def hold():
            stuck.acquire()
            stuck.release()

        def report(n):
            sys.stdout.write('ran %d\\n' % n)     # one write: lines from threads stay whole
            sys.stdout.flush()

        started = [threads.submit(hold) for _ in range(4)]
        queued = [threads.submit(report, n) for n in range(10)]
        never = gevent.event.Event()
        running = []
        four_running = gevent.event.Event()

        def wait_for_ever():
            running.append(None)
            if len(running) == 4:
                four_running.set()
            never.wait()

        waiting = [fibers.submit(wait_for_ever) for _ in range(8)]
        in_flight = gevent.spawn(blocking, hold)
        cpu = get_cpu_pool().submit(hold)
        assert four_running.wait(10)
    print('ready', flush=True)
'''


@pytest.mark.parametrize('load', ['idle', 'busy'])
@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_exit_without_close_is_prompt(patching, load):
    prologue = 'import faulthandler; faulthandler.dump_traceback_later(50, exit=True)\n'
    proc = subprocess.Popen(
        [sys.executable, '-c', prologue + textwrap.dedent(EXIT_WITHOUT_CLOSE), patching, load],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        ready = time.monotonic()
        out, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
        elapsed = time.monotonic() - ready
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert line == 'ready\n', err
    assert proc.returncode == 0, err
    assert elapsed < 5, 'exiting took %.1f s' % elapsed
    if load == 'busy':
        assert sorted(out.splitlines()) == sorted('ran %d' % n for n in range(10))
        assert err == 'FiberPool-1: 8 job(s) not done at interpreter exit are dropped\n'
    else:
        assert out == ''
        assert err == '', 'the interpreter complained on the way out'


# Done callbacks that raise, run by the pool's workers.

CALLBACK_RAISING = '''
    import json, logging, sys, threading
    import gevent, gevent.event
    from gruvi_gevent import FiberPool, ThreadPool

    logging.disable(logging.CRITICAL)    # the failing callbacks are logged; keep stderr short
    exc_type = {'KeyboardInterrupt': KeyboardInterrupt, 'SystemExit': SystemExit,
                'ValueError': ValueError}[sys.argv[1]]
    pool_class = {'fiber': FiberPool, 'thread': ThreadPool}[sys.argv[2]]
    MAXSIZE = 2
    pool = pool_class(MAXSIZE, minsize=MAXSIZE)
    throws = []

    def settle(func, *args):
        # The hub passes a fiber worker's KeyboardInterrupt or SystemExit on
        # to this, the main greenlet, at its next switch: count those.
        while True:
            try:
                return func(*args)
            except exc_type as exc:
                throws.append(repr(exc))

    def bad_callback():
        raise exc_type('raised by a done callback')

    ran = []
    futures = []
    for number in range(6):
        future = pool.submit(abs, -number)
        future.add_done_callback(bad_callback)
        future.add_done_callback(ran.append, number)
        futures.append(future)
    results = [settle(future.result, 10) for future in futures]
    settle(pool.join)

    if pool_class is FiberPool:
        arrived = []
        everyone = gevent.event.Event()

        def meet():
            arrived.append(None)
            if len(arrived) == MAXSIZE:
                everyone.set()
            return everyone.wait(10)
    else:
        barrier = threading.Barrier(MAXSIZE, timeout=10)

        def meet():
            barrier.wait()
            return True

    met = settle(lambda: [f.result(20) for f in [pool.submit(meet) for _ in range(MAXSIZE)]])
    more = settle(lambda: [f.result(10) for f in [pool.submit(abs, -7) for _ in range(10)]])
    size = len(pool)
    settle(pool.close)
    print(json.dumps({'results': results, 'ran': sorted(ran), 'met': met, 'more': more,
                      'size': size, 'len_after_close': len(pool), 'throws': len(throws)}))
'''


@pytest.mark.parametrize('exc_name', ['ValueError', 'KeyboardInterrupt', 'SystemExit'])
@pytest.mark.parametrize('pool_name', ['fiber', 'thread'])
def test_done_callback_raising_in_a_worker(pool_name, exc_name):
    # Every callback runs, every job completes, join() and close() return and
    # the pool keeps its capacity, whatever a done callback raises in a worker.
    proc = run_script(CALLBACK_RAISING, exc_name, pool_name)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report['results'] == list(range(6))
    assert report['ran'] == list(range(6))
    assert report['met'] == [True, True], 'the pool lost capacity'
    assert report['more'] == [7] * 10
    assert report['size'] == 2
    assert report['len_after_close'] == 0
    if pool_name == 'fiber' and exc_name != 'ValueError':
        # As for a job's own KeyboardInterrupt: passed on to the main greenlet.
        assert report['throws'] == 6
    else:
        assert report['throws'] == 0


# Worker threads started from threads that come and go.

def test_thread_pool_grown_from_short_lived_threads():
    # Each round runs in a new native thread (which often gets the ident of
    # the one before) and makes the pool grow by two threads.
    pool = ThreadPool()
    outcomes = []
    for round_number in range(1, 6):
        size = 2 * round_number
        barrier = threading.Barrier(size, timeout=TIMEOUT)

        def submit_round():
            try:
                futures = [pool.submit(barrier.wait) for _ in range(size)]
                outcomes.append(sorted(f.result(timeout=TIMEOUT) for f in futures))
            except BaseException as exc:
                outcomes.append(exc)

        thread = threading.Thread(target=submit_round)
        thread.start()
        thread.join(TIMEOUT * 2)
        assert outcomes[-1] == list(range(size)), outcomes[-1]
        assert len(pool) == size
    pool.close()
    assert len(pool) == 0


NESTED_POOLS = '''
    from gruvi_gevent import ThreadPool

    inner = ThreadPool(4)
    outer = ThreadPool(2)

    def nested(number):
        return inner.submit(abs, -number).result(timeout=10)

    assert list(outer.map(nested, range(8), timeout=10)) == list(range(8))
    outer.close()    # its threads exit
    assert [f.result(timeout=10) for f in [inner.submit(abs, -n) for n in range(20)]] \\
        == list(range(20))
    inner.close()
    assert len(inner) == 0
'''


def test_thread_pool_grown_from_another_pools_thread_outlives_it():
    # Workers started from a worker thread of another pool go on working
    # after that thread exits, and exit quietly when their pool closes.
    proc = run_script(NESTED_POOLS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''


# A job that closes or joins its own pool would wait for itself.

@pytest.mark.parametrize('method', ['close', 'join'])
@pytest.mark.parametrize('pool_class', POOLS)
def test_job_closing_or_joining_its_own_pool_gets_an_error(pool_class, method):
    pool = pool_class(MAXSIZE)
    future = pool.submit(lambda: getattr(pool, method)())
    exc = future.exception(timeout=TIMEOUT)
    assert isinstance(exc, RuntimeError) and method in str(exc), exc
    # Nothing changed: the pool takes work and closes as usual.
    assert pool.submit(abs, -1).result(timeout=TIMEOUT) == 1
    check_capacity(pool)
    pool.join()
    pool.close()
    assert len(pool) == 0
