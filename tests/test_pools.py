"""The pool contract, run against both FiberPool and ThreadPool."""

import logging
import re
import threading
import time

import gevent
import pytest
from zope.interface.verify import verifyClass, verifyObject

from gruvi_gevent import Cancelled, FiberPool, Future, PoolBase, ThreadPool, Timeout
from gruvi_gevent.interfaces import IPool

from pool_helpers import (  # noqa: F401  (fixtures)
    KINDS, TIMEOUT, Tracker, busy_pool, hub_errors, wait_until)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def add(a, b):
    return a + b


def describe(a, b=None, *, c=None):
    return (a, b, c)


def fail(message):
    raise ValueError(message)


# Submitting work.

def test_submit_returns_future_with_result(kind, pool_factory):
    pool = pool_factory(kind, 2)
    future = pool.submit(add, 1, 2)
    assert isinstance(future, Future)
    assert future.result(timeout=TIMEOUT) == 3
    assert future.done() and not future.cancelled()
    assert future.exception() is None


def test_submit_passes_keyword_arguments(kind, pool_factory):
    pool = pool_factory(kind, 2)
    assert pool.submit(describe, 1, b=2, c=3).result(timeout=TIMEOUT) == (1, 2, 3)
    assert pool.submit(describe, 'x', c='z').result(timeout=TIMEOUT) == ('x', None, 'z')
    assert pool.submit(describe, a=5).result(timeout=TIMEOUT) == (5, None, None)


def test_many_jobs(kind, pool_factory):
    pool = pool_factory(kind, 4)
    futures = [pool.submit(add, i, i) for i in range(1000)]
    assert [future.result(timeout=TIMEOUT) for future in futures] == [2 * i for i in range(1000)]
    pool.join()
    assert len(pool) <= 4


def test_exception_reaches_only_the_future(kind, pool_factory, capfd, caplog, hub_errors):
    caplog.set_level(logging.WARNING, logger='gruvi_gevent')
    pool = pool_factory(kind, 1)
    failures = [pool.submit(fail, 'job %d' % i) for i in range(20)]
    for i, future in enumerate(failures):
        exc = future.exception(timeout=TIMEOUT)
        assert isinstance(exc, ValueError) and str(exc) == 'job %d' % i
        with pytest.raises(ValueError, match='job %d' % i):
            future.result()
        assert not future.cancelled()
    # The pool and its only worker are still usable.
    assert pool.submit(add, 2, 3).result(timeout=TIMEOUT) == 5
    pool.join()
    assert len(pool) == 1
    assert hub_errors == []
    assert [record for record in caplog.records if record.name == 'gruvi_gevent'] == []
    out, err = capfd.readouterr()
    assert 'ValueError' not in err and 'Traceback' not in err, err


# map()

def test_map_yields_in_input_order_when_completing_out_of_order(kind, pool_factory):
    n = 5
    pool = pool_factory(kind, n)
    events = [kind.event() for _ in range(n + 1)]
    events[n].set()
    completed = []

    def job(i):
        # Job i completes only after job i + 1: completion is in reverse order.
        assert events[i + 1].wait(TIMEOUT)
        completed.append(i)
        events[i].set()
        return i * i

    assert list(pool.map(job, range(n))) == [i * i for i in range(n)]
    assert completed == list(reversed(range(n)))


def test_map_submits_every_call_at_once(kind, pool_factory):
    pool = pool_factory(kind, 3)
    tracker = Tracker(kind)
    gate = kind.event()
    results = pool.map(tracker.gated(gate), range(3))
    try:
        # Nothing has been consumed yet, and all three calls run.
        assert tracker.wait_started(3)
    finally:
        gate.set()
    assert list(results) == [0, 1, 2]


def test_map_multiple_iterables(kind, pool_factory):
    pool = pool_factory(kind, 3)
    assert list(pool.map(add, [1, 2, 3], (10, 20, 30))) == [11, 22, 33]
    assert list(pool.map(pow, iter([2, 3, 4]), range(3), [10, 10, 10])) == [1, 3, 6]
    assert list(pool.map(add, [], [])) == []


@pytest.mark.parametrize('iterables', [
    ([1, 2, 3], [1, 2]),
    ([1], [1, 2]),
    ([], [1]),
    (iter([1, 2]), range(3), [1, 2]),
], ids=['longer-first', 'longer-second', 'empty-and-one', 'three'])
def test_map_unequal_lengths_raise_value_error(kind, pool_factory, iterables):
    pool = pool_factory(kind, 2)
    calls = []
    with pytest.raises(ValueError, match='same length'):
        pool.map(lambda *args: calls.append(args), *iterables)
    pool.join()
    assert calls == []


def test_map_timeout_raises_and_cancels_uncompleted_calls(kind, pool_factory):
    pool = pool_factory(kind, 2)
    tracker = Tracker(kind)
    gate = kind.event()
    gated = tracker.gated(gate)

    def job(i):
        return i if i == 0 else gated(i)

    start = time.monotonic()
    results = pool.map(job, range(4), timeout=0.3)
    try:
        assert next(results) == 0
        # Call 0 is done, calls 1 and 2 run, call 3 waits for a worker.
        assert tracker.wait_started(2)
        assert sorted(tracker.started) == [1, 2]
        with pytest.raises(Timeout):
            next(results)
        assert time.monotonic() - start >= 0.25
        with pytest.raises(StopIteration):
            next(results)
    finally:
        gate.set()
    pool.join()
    tracker.assert_stopped([1, 2], 'timeout')
    if kind.cancels_running:
        assert tracker.finished == []


def test_map_timeout_counts_from_the_call(kind, pool_factory):
    pool = pool_factory(kind, 1)
    gate = kind.event()
    tracker = Tracker(kind)
    try:
        results = pool.map(tracker.gated(gate), [1], timeout=0.5)
        assert tracker.wait_started(1)
        # The consumer takes its time before asking for the first result ...
        assert not tracker.wait_started(2, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(Timeout):
            next(results)
        # ... and the deadline was still set at the call, not at the first next().
        assert time.monotonic() - start < 0.4
    finally:
        gate.set()


def test_map_timeout_is_checked(kind, pool_factory):
    pool = pool_factory(kind, 1)
    with pytest.raises(ValueError, match='timeout'):
        pool.map(add, [1], [2], timeout=-1)
    with pytest.raises(TypeError, match='timeout'):
        pool.map(add, [1], [2], timeout='1')


def test_map_exception_is_reraised_in_place_and_the_rest_cancelled(kind, pool_factory):
    pool = pool_factory(kind, 2)
    tracker = Tracker(kind)
    gate = kind.event()
    gated = tracker.gated(gate)

    def job(i):
        if i == 0:
            return 'zero'
        if i == 1:
            raise ValueError('call 1 failed')
        return gated(i)

    results = pool.map(job, range(5))
    try:
        assert next(results) == 'zero'
        assert tracker.wait_started(2)     # calls 2 and 3 run, call 4 waits
        with pytest.raises(ValueError, match='call 1 failed'):
            next(results)
        with pytest.raises(StopIteration):
            next(results)
    finally:
        gate.set()
    pool.join()
    tracker.assert_stopped([2, 3], 'failure')


@pytest.mark.parametrize('consumed', [0, 1], ids=['before-first', 'after-first'])
@pytest.mark.parametrize('how', ['close', 'drop'])
def test_map_closed_early_cancels_the_rest(kind, pool_factory, consumed, how):
    pool = pool_factory(kind, 2)
    tracker = Tracker(kind)
    gate = kind.event()
    gated = tracker.gated(gate)

    def job(i):
        return i if i == 0 else gated(i)

    results = pool.map(job, range(4))
    try:
        if consumed:
            assert next(results) == 0
        assert tracker.wait_started(2)     # calls 1 and 2 run, call 3 waits
        if how == 'close':
            results.close()
        else:
            del results
    finally:
        gate.set()
    pool.join()
    tracker.assert_stopped([1, 2], 'close')


# join() and close()

def test_join_waits_for_every_job(kind, pool_factory):
    pool = pool_factory(kind, 2)
    pool.join()     # nothing submitted: returns at once
    tracker = Tracker(kind)
    gate = kind.event()
    futures = [pool.submit(tracker.gated(gate), i) for i in range(5)]
    joiner = gevent.spawn(pool.join)
    try:
        assert tracker.wait_started(2)
        gevent.idle()       # the joiner has run and parked
        assert not joiner.dead, 'join() returned with jobs still running'
    finally:
        gate.set()
    joiner.join(TIMEOUT)
    assert joiner.successful()
    assert all(future.done() for future in futures)
    assert [future.result() for future in futures] == list(range(5))
    pool.join()
    # join() does not block new work.
    assert pool.submit(add, 1, 1).result(timeout=TIMEOUT) == 2


def test_close_finishes_queued_work_refuses_new_work_and_stops_workers(kind, pool_factory):
    pool = pool_factory(kind, 2, minsize=1)
    tracker = Tracker(kind)
    gate = kind.event()
    futures = [pool.submit(tracker.gated(gate), i) for i in range(5)]
    assert tracker.wait_started(2)
    closer = gevent.spawn(pool.close)
    try:
        gevent.sleep(0)     # let close() start
        with pytest.raises(RuntimeError, match='closed'):
            pool.submit(add, 1, 2)
        with pytest.raises(RuntimeError, match='closed'):
            pool.map(add, [1], [2])
        assert not closer.dead
    finally:
        gate.set()
    closer.join(TIMEOUT)
    assert closer.successful()
    assert len(pool) == 0
    # Queued and running jobs were finished, not dropped.
    assert [future.result() for future in futures] == list(range(5))
    with pytest.raises(RuntimeError):
        pool.submit(add, 1, 2)
    with pytest.raises(RuntimeError):
        pool.map(add, [1], [2])


def test_close_of_an_idle_pool_with_minsize(kind, pool_factory):
    pool = pool_factory(kind, 4, minsize=3)
    assert len(pool) == 3
    pool.close()
    assert len(pool) == 0


def test_second_close_waits_too(kind, pool_factory):
    pool, gate, future = busy_pool(kind, pool_factory)
    closer = gevent.spawn(pool.close)
    try:
        gevent.sleep(0)     # let the first close() start waiting
        assert pool.close(timeout=0.05) is False    # waits: the job still runs
        assert not future.done()
    finally:
        gate.set()
    closer.join(TIMEOUT)
    assert closer.successful()
    assert future.result() == 'held'
    pool.close()
    assert len(pool) == 0


def test_context_manager_closes_the_pool(kind):
    with kind.cls(2, minsize=1) as pool:
        assert isinstance(pool, kind.cls)
        assert pool.submit(add, 2, 2).result(timeout=TIMEOUT) == 4
    assert len(pool) == 0
    with pytest.raises(RuntimeError):
        pool.submit(add, 1, 2)


def test_context_manager_closes_on_error(kind):
    with pytest.raises(KeyError):
        with kind.cls(2, minsize=2) as pool:
            raise KeyError('boom')
    assert len(pool) == 0


# Sizes.

@pytest.mark.parametrize('maxsize, minsize', [(4, 3), (None, 2), (1, 1), (3, 0)])
def test_minsize_workers_start_at_once(kind, pool_factory, maxsize, minsize):
    pool = pool_factory(kind, maxsize, minsize=minsize)
    assert len(pool) == minsize


def test_workers_start_on_demand(kind, pool_factory):
    pool = pool_factory(kind, 5)
    assert len(pool) == 0
    assert pool.submit(add, 1, 2).result(timeout=TIMEOUT) == 3
    assert 1 <= len(pool) <= 5


@pytest.mark.parametrize('maxsize', [1, 3])
def test_maxsize_bounds_concurrency(kind, pool_factory, maxsize):
    pool = pool_factory(kind, maxsize)
    tracker = Tracker(kind)
    gate = kind.event()
    futures = [pool.submit(tracker.gated(gate), i) for i in range(3 * maxsize)]
    try:
        assert tracker.wait_started(maxsize)
        # Give any job beyond the bound a chance to start: none may.
        assert not tracker.wait_started(maxsize + 1, timeout=0.1)
        assert len(pool) == maxsize
    finally:
        gate.set()
    assert [future.result(timeout=TIMEOUT) for future in futures] == list(range(3 * maxsize))
    assert tracker.peak == maxsize
    assert len(pool) <= maxsize


def test_idle_workers_above_minsize_retire_and_minsize_workers_stay(kind, pool_factory):
    idle_timeout = 0.2
    pool = pool_factory(kind.quick_class(idle_timeout), 4, minsize=2)
    assert pool.idle_timeout == idle_timeout
    with Tracker(kind).all_running(pool, 4):
        assert len(pool) == 4
    assert wait_until(lambda: len(pool) <= 2), 'idle workers did not retire'
    assert len(pool) == 2
    # The minsize workers stay, however long they idle.
    assert not wait_until(lambda: len(pool) != 2, timeout=3 * idle_timeout)
    # And the pool grows again on demand.
    with Tracker(kind).all_running(pool, 4) as results:
        assert len(pool) == 4
    assert results == list(range(4))


def test_idle_workers_stay_once_their_jobs_are_done(kind, pool_factory):
    assert kind.cls.idle_timeout >= 10
    pool = pool_factory(kind, 3)
    with Tracker(kind).all_running(pool, 3):
        pass
    pool.join()
    assert len(pool) == 3


# Arguments.

@pytest.mark.parametrize('kwargs, exc_type, word', [
    ({'maxsize': 0}, ValueError, 'maxsize'),
    ({'maxsize': -1}, ValueError, 'maxsize'),
    ({'maxsize': '3'}, TypeError, 'maxsize'),
    ({'maxsize': 1.5}, TypeError, 'maxsize'),
    ({'maxsize': True}, TypeError, 'maxsize'),
    ({'maxsize': 5, 'minsize': -1}, ValueError, 'minsize'),
    ({'maxsize': 2, 'minsize': 3}, ValueError, 'minsize'),
    ({'maxsize': 5, 'minsize': 'x'}, TypeError, 'minsize'),
    ({'maxsize': 5, 'minsize': 1.0}, TypeError, 'minsize'),
    ({'maxsize': 5, 'name': 5}, TypeError, 'name'),
    ({'maxsize': 5, 'name': b'pool'}, TypeError, 'name'),
], ids=['maxsize-0', 'maxsize-neg', 'maxsize-str', 'maxsize-float', 'maxsize-bool',
        'minsize-neg', 'minsize-above-maxsize', 'minsize-str', 'minsize-float', 'name-int',
        'name-bytes'])
def test_bad_constructor_arguments(kind, kwargs, exc_type, word):
    with pytest.raises(exc_type, match=word) as info:
        kind.cls(**kwargs)
    assert type(info.value) is exc_type


def test_maxsize_error_message(kind):
    with pytest.raises(ValueError, match=re.escape('maxsize must be None or >= 1, got 0')):
        kind.cls(0)


@pytest.mark.parametrize('func', [None, 42, 'add', (add,)], ids=['None', 'int', 'str', 'tuple'])
def test_non_callable_raises_type_error_at_the_call(kind, pool_factory, func):
    pool = pool_factory(kind, 2)
    with pytest.raises(TypeError, match='callable'):
        pool.submit(func)
    with pytest.raises(TypeError, match='callable'):
        pool.map(func, [1, 2])
    assert pool.submit(add, 1, 2).result(timeout=TIMEOUT) == 3


# Names, properties, interface.

def test_default_names_are_unique_and_readable(kind, pool_factory):
    first = pool_factory(kind, 1)
    second = pool_factory(kind, 1)
    pattern = r'%s-(\d+)$' % kind.cls.__name__
    number1 = int(re.match(pattern, first.name).group(1))
    number2 = int(re.match(pattern, second.name).group(1))
    assert number2 > number1 >= 1
    assert pool_factory(kind, 1, name='mine').name == 'mine'
    assert first.name in repr(first)


def test_name_appears_in_log_messages(kind, pool_factory, caplog):
    caplog.set_level(logging.DEBUG, logger='gruvi_gevent')
    for pool in (pool_factory(kind, 2, name='pool-under-test'), pool_factory(kind, 2)):
        pool.submit(add, 1, 2).result(timeout=TIMEOUT)
        caplog.clear()
        pool.close()
        messages = [record.getMessage() for record in caplog.records
                    if record.name == 'gruvi_gevent']
        assert messages, 'close() logged nothing'
        assert all(pool.name in message for message in messages), messages


def test_properties_are_read_only(kind, pool_factory):
    pool = pool_factory(kind, 3, minsize=1, name='props')
    assert (pool.maxsize, pool.minsize, pool.name) == (3, 1, 'props')
    for attr, value in [('maxsize', 4), ('minsize', 0), ('name', 'other')]:
        with pytest.raises(AttributeError):
            setattr(pool, attr, value)
    assert (pool.maxsize, pool.minsize, pool.name) == (3, 1, 'props')
    unbounded = pool_factory(kind)
    assert (unbounded.maxsize, unbounded.minsize) == (None, 0)


def test_pools_provide_ipool(kind, pool_factory):
    assert issubclass(kind.cls, PoolBase)
    assert verifyClass(IPool, kind.cls)
    assert verifyObject(IPool, pool_factory(kind, 1))


# Threads.

def test_submit_and_collect_from_a_native_thread(kind, pool_factory):
    pool = pool_factory(kind, 3)
    outcome = Future()      # wakes the main greenlet without blocking its hub

    def native():
        try:
            futures = [pool.submit(add, i, 1) for i in range(20)]
            futures.append(pool.submit(fail, 'from a thread'))
            values = [future.result(timeout=TIMEOUT) for future in futures[:-1]]
            error = futures[-1].exception(timeout=TIMEOUT)
            mapped = list(pool.map(add, range(5), range(5), timeout=TIMEOUT))
            outcome.set_result((values, error, mapped))
        except BaseException as exc:
            outcome.set_exception(exc)

    thread = threading.Thread(target=native)
    thread.start()
    values, error, mapped = outcome.result(timeout=TIMEOUT)
    thread.join(TIMEOUT)
    assert values == [i + 1 for i in range(20)]
    assert isinstance(error, ValueError)
    assert mapped == [0, 2, 4, 6, 8]
    pool.join()


def test_cancel_of_a_pending_job_from_both_kinds(kind, pool_factory):
    pool = pool_factory(kind, 1)
    tracker = Tracker(kind)
    gate = kind.event()
    first = pool.submit(tracker.gated(gate), 'first')
    second = pool.submit(tracker.gated(gate), 'second')
    try:
        assert tracker.wait_started(1)
        assert second.cancel() is True
        assert second.cancelled() and second.done()
    finally:
        gate.set()
    assert first.result(timeout=TIMEOUT) == 'first'
    with pytest.raises(Cancelled):
        second.result()
    pool.join()
    assert tracker.started == ['first']


def test_pool_repr(kind, pool_factory):
    pool = pool_factory(kind, 2, name='shown')
    assert 'shown' in repr(pool) and kind.cls.__name__ in repr(pool)
    pool.close()
    assert 'closed' in repr(pool)

