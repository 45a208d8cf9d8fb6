"""The process-wide IO and CPU pools, and blocking()."""

import os
import threading
import traceback

import gevent
import pytest

from gruvi_gevent import FiberPool, Future, ThreadPool, blocking, get_cpu_pool, get_io_pool
from gruvi_gevent._wakeup import get_ident

from pool_helpers import Countdown, TIMEOUT, run_python, ticker, wait_until

MAIN_IDENT = get_ident()
IO_SIZE = 20


def failing_job(message):
    raise KeyError(message)


def describe(a, b=None, *, c=None):
    return (a, b, c)


# The pools.

def test_io_and_cpu_pools(pool_factory):
    io, cpu = get_io_pool(), get_cpu_pool()
    assert isinstance(io, ThreadPool) and isinstance(cpu, ThreadPool)
    assert io is not cpu
    assert (io.name, io.maxsize) == ('Io', IO_SIZE)
    assert (cpu.name, cpu.maxsize) == ('Cpu', os.cpu_count())
    hub_pool = gevent.get_hub().threadpool
    assert io is not hub_pool and cpu is not hub_pool


def test_pools_are_the_same_objects_from_every_thread(pool_factory):
    expected = (get_io_pool(), get_cpu_pool())

    def both():
        return get_io_pool(), get_cpu_pool()

    seen = [both()]
    outcome = Future()
    thread = threading.Thread(target=lambda: outcome.set_result(both()))
    thread.start()
    seen.append(outcome.result(timeout=TIMEOUT))
    thread.join(TIMEOUT)
    seen.append(get_io_pool().submit(both).result(timeout=TIMEOUT))
    seen.append(get_cpu_pool().submit(both).result(timeout=TIMEOUT))
    seen.append(pool_factory(FiberPool, 1).submit(both).result(timeout=TIMEOUT))
    seen.append(pool_factory(ThreadPool, 1).submit(both).result(timeout=TIMEOUT))
    for io, cpu in seen:
        assert io is expected[0] and cpu is expected[1]


def test_pools_are_created_once_when_threads_race_for_them():
    result = run_python('''
        import threading
        from gruvi_gevent import get_cpu_pool, get_io_pool
        barrier = threading.Barrier(16)
        seen = []
        def first_use():
            barrier.wait(10)
            seen.append((id(get_io_pool()), id(get_cpu_pool())))
        threads = [threading.Thread(target=first_use) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        print(len(seen), len(set(seen)))
    ''')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['16', '1']


def test_blocking_work_does_not_stall_the_hubs_threadpool():
    gate = threading.Event()
    started = Countdown(IO_SIZE)

    def job():
        started.arrive()
        return gate.wait(TIMEOUT)

    callers = [gevent.spawn(blocking, job) for _ in range(IO_SIZE)]
    try:
        assert started.wait()
        # Every IO thread is busy; the hub's own pool still serves at once.
        hub_pool = gevent.get_hub().threadpool
        assert hub_pool.spawn(lambda: 'served').get(timeout=TIMEOUT) == 'served'
    finally:
        gate.set()
    assert [caller.get(timeout=TIMEOUT) for caller in callers] == [True] * IO_SIZE


# blocking()

def test_blocking_returns_the_result():
    assert blocking(sum, [1, 2, 3]) == 6
    assert blocking(describe, 1, c=3) == (1, None, 3)
    ident = blocking(get_ident)
    assert ident != MAIN_IDENT


def test_blocking_reraises_with_the_original_traceback():
    with pytest.raises(KeyError, match='lost') as info:
        blocking(failing_job, 'lost')
    names = [entry.name for entry in traceback.extract_tb(info.value.__traceback__)]
    assert 'failing_job' in names
    # The pool survives.
    assert blocking(len, 'abc') == 3


def test_blocking_reraises_the_very_exception():
    raised = []

    def job():
        exc = ValueError('the one')
        raised.append(exc)
        raise exc

    with pytest.raises(ValueError) as info:
        blocking(job)
    assert info.value is raised[0]


@pytest.mark.parametrize('func', [None, 3, 'len'], ids=['None', 'int', 'str'])
def test_blocking_non_callable_raises_type_error(func):
    with pytest.raises(TypeError, match='callable'):
        blocking(func)


def test_blocking_parks_only_the_calling_greenlet():
    ticks, enough = [], threading.Event()
    tick = gevent.spawn(ticker, ticks, enough)
    try:
        # The job blocks its thread until the hub has ticked.
        assert blocking(enough.wait, TIMEOUT) is True
    finally:
        tick.kill()
    assert len(ticks) >= 5


def test_many_greenlets_block_at_once():
    gate = threading.Event()
    started = Countdown(IO_SIZE)

    def job(i):
        started.arrive()
        assert gate.wait(TIMEOUT)
        return i

    callers = [gevent.spawn(blocking, job, i) for i in range(IO_SIZE)]
    try:
        assert started.wait()
    finally:
        gate.set()
    assert [caller.get(timeout=TIMEOUT) for caller in callers] == list(range(IO_SIZE))


def test_nested_blocking_in_an_io_thread_runs_inline():
    def outer():
        return get_ident(), blocking(get_ident)

    here, nested = get_io_pool().submit(outer).result(timeout=TIMEOUT)
    assert here == nested


def test_nested_blocking_with_the_io_pool_saturated_does_not_deadlock():
    arrived = []
    lock = threading.Lock()
    everyone = threading.Event()

    def outer(i):
        with lock:
            arrived.append(i)
            if len(arrived) == IO_SIZE:
                everyone.set()
        # Every IO thread holds a call like this one when the nested calls start.
        saturated = everyone.wait(TIMEOUT)
        return saturated, get_ident(), blocking(lambda: (i, get_ident()))

    callers = [gevent.spawn(blocking, outer, i) for i in range(IO_SIZE)]
    results = [caller.get(timeout=2 * TIMEOUT) for caller in callers]
    assert all(saturated for saturated, _, _ in results)
    assert [inner for _, _, (inner, _) in results] == list(range(IO_SIZE))
    assert all(ident == inner_ident for _, ident, (_, inner_ident) in results)


def test_blocking_from_a_cpu_thread_uses_the_io_pool():
    def job():
        return get_ident(), blocking(get_ident)

    here, there = get_cpu_pool().submit(job).result(timeout=TIMEOUT)
    assert here != there


def test_blocking_from_a_native_thread_blocks_just_that_thread():
    ticks, enough = [], threading.Event()
    tick = gevent.spawn(ticker, ticks, enough)
    outcome = Future()

    def job():
        # Runs in the IO pool until the main hub has ticked a few times.
        return enough.wait(TIMEOUT), get_ident()

    def native():
        try:
            outcome.set_result((blocking(job), get_ident()))
        except BaseException as exc:
            outcome.set_exception(exc)

    thread = threading.Thread(target=native)
    try:
        thread.start()
        (ticked, job_ident), thread_ident = outcome.result(timeout=TIMEOUT)
    finally:
        tick.kill()
        thread.join(TIMEOUT)
    assert ticked is True
    assert job_ident not in (thread_ident, MAIN_IDENT)
    assert len(ticks) >= 5


def test_blocking_from_a_fiber_pool_job(pool_factory):
    pool = pool_factory(FiberPool, 4)
    results = list(pool.map(lambda x: blocking(lambda: (x * x, get_ident())), range(8),
                            timeout=TIMEOUT))
    assert [value for value, _ in results] == [x * x for x in range(8)]
    assert MAIN_IDENT not in {ident for _, ident in results}


# Cancellation, admission and context.

def hold_until(gate, started=None, value=None):
    if started is not None:
        started.arrive()
    assert gate.wait(TIMEOUT)
    return value


@pytest.mark.parametrize('how', ['timeout', 'kill'])
def test_a_caller_that_gives_up_leaves_and_the_call_runs_on(how):
    gate, done = threading.Event(), threading.Event()
    started = Countdown(1)

    def job():
        started.arrive()
        assert gate.wait(TIMEOUT)
        done.set()

    if how == 'timeout':
        caller = gevent.spawn(lambda: gevent.with_timeout(0.05, blocking, job,
                                                          timeout_value='timed out'))
    else:
        caller = gevent.spawn(blocking, job)
        assert started.wait()
        caller.kill(block=True, timeout=TIMEOUT)
    try:
        assert started.wait()
        caller.join(TIMEOUT)
        assert caller.dead
        if how == 'timeout':
            assert caller.value == 'timed out'
        else:
            assert isinstance(caller.value, gevent.GreenletExit)
    finally:
        gate.set()
    assert done.wait(TIMEOUT)
    assert blocking(abs, -4) == 4      # the pool and the admission are whole again


def test_calls_beyond_the_admission_bound_queue_first_come_first_served():
    from gruvi_gevent.blocking import ADMITTED_PER_THREAD
    bound = ADMITTED_PER_THREAD * IO_SIZE
    gate = threading.Event()
    started = Countdown(IO_SIZE)
    pool = get_io_pool()

    def job(i):
        if i < IO_SIZE:
            hold_until(gate, started)
        return i

    def caller(i):
        return blocking(job, i)

    callers = [gevent.spawn(caller, i) for i in range(3 * bound)]
    try:
        assert started.wait()
        admission = gevent.get_hub()._gruvi_gevent_admission
        # Every caller reaches blocking(): only the bound is in the pool, the
        # rest queue in the hub, in order.
        assert wait_until(lambda: len(admission.overflow) == 2 * bound)
        assert pool._unfinished == bound
        queued = [job[-1].greenlet for job in admission.overflow]   # (..., waiter)
        assert queued == callers[bound:]
    finally:
        gate.set()
    assert [c.get(timeout=TIMEOUT) for c in callers] == list(range(3 * bound))
    assert admission.free == bound and not admission.overflow


def test_a_caller_timed_out_beyond_the_admission_bound_withdraws_its_call():
    from gruvi_gevent.blocking import ADMITTED_PER_THREAD
    bound = ADMITTED_PER_THREAD * IO_SIZE
    gate = threading.Event()
    started = Countdown(IO_SIZE)
    ran = []
    holders = [gevent.spawn(blocking, hold_until, gate, started, i) for i in range(bound)]
    try:
        assert started.wait()
        admission = gevent.get_hub()._gruvi_gevent_admission
        assert wait_until(lambda: admission.free == 0)
        with pytest.raises(gevent.Timeout):
            with gevent.Timeout(0.05):
                blocking(ran.append, 'withdrawn')
        assert not admission.overflow      # the timed-out call will never run
        late = gevent.spawn(blocking, abs, -2)
        assert wait_until(lambda: len(admission.overflow) == 1)
    finally:
        gate.set()
    assert [h.get(timeout=TIMEOUT) for h in holders] == list(range(bound))
    assert late.get(timeout=TIMEOUT) == 2
    assert admission.free == bound
    assert blocking(list, ran) == []    # after the late call: the withdrawn one never ran


def test_no_caller_is_starved_under_a_thousand_callers():
    calls = [0] * 1000
    stop = []

    def caller(i):
        while not stop:
            blocking(abs, i)
            calls[i] += 1

    callers = [gevent.spawn(caller, i) for i in range(1000)]
    deadline = gevent.get_hub().loop.now() + 30
    while min(calls) < 3 and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.05)
    stop.append(True)
    gevent.joinall(callers, timeout=TIMEOUT, raise_error=True)
    # First come, first served: everyone takes turns, nobody waits out the others.
    assert min(calls) >= 3
    assert max(calls) <= 3 * min(calls) + 3, (min(calls), max(calls))


def test_blocking_runs_in_a_copy_of_the_callers_context():
    import contextvars
    request_id = contextvars.ContextVar('request_id', default=None)

    def job():
        seen = request_id.get()
        request_id.set('changed in the job')
        return seen

    def in_greenlet(value):
        request_id.set(value)
        seen = blocking(job)
        return seen, request_id.get()

    assert gevent.spawn(in_greenlet, 'req-1').get(timeout=TIMEOUT) == ('req-1', 'req-1')
    # From a native thread, and inline in an IO-pool thread, alike.
    in_thread = Future()
    thread = threading.Thread(target=lambda: in_thread.set_result(
        contextvars.copy_context().run(in_greenlet, 'req-2')))
    thread.start()
    thread.join(TIMEOUT)
    assert in_thread.result(timeout=TIMEOUT) == ('req-2', 'req-2')
    nested = get_io_pool().submit(contextvars.copy_context().run, in_greenlet,
                                  'req-3').result(timeout=TIMEOUT)
    assert nested == ('req-3', 'req-3')
