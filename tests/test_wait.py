"""wait() and as_completed(): order, count, timeouts, bad input, clean-up, cost."""

import gc
import math
import time

import gevent
import gevent.event
import pytest

from gruvi_gevent import Future, Timeout, as_completed, wait

pytestmark = pytest.mark.usefixtures('no_parked_waiters')


def done_future(value=None):
    future = Future()
    future.set_result(value)
    return future


def complete_later(*futures):
    """Complete *futures*, in this order, once the calling greenlet parks."""
    def producer():
        for future in futures:
            future.set_result(None)
    return gevent.spawn(producer)


def set_later(*waitables):
    def producer():
        for waitable in waitables:
            waitable.make_ready()
    return gevent.spawn(producer)


def consume(how, objects, **kwargs):
    """Run wait() or as_completed() to the end and return the objects that are done."""
    if how == 'wait':
        return wait(objects, **kwargs)[0]
    return list(as_completed(objects, **kwargs))


both = pytest.mark.parametrize('how', ['wait', 'as_completed'])


# Order.

def test_wait_done_in_completion_order():
    futures = [Future() for _ in range(4)]
    complete_later(futures[2], futures[0], futures[3], futures[1])
    done, pending = wait(futures, timeout=10)
    assert done == [futures[2], futures[0], futures[3], futures[1]]
    assert pending == []


def test_as_completed_yields_in_completion_order():
    futures = [Future() for _ in range(4)]
    complete_later(futures[3], futures[1], futures[0], futures[2])
    assert list(as_completed(futures, timeout=10)) == \
        [futures[3], futures[1], futures[0], futures[2]]


def test_wait_pending_in_input_order():
    futures = [Future() for _ in range(5)]
    complete_later(futures[3], futures[1])
    done, pending = wait(futures, count=2, timeout=10)
    assert done == [futures[3], futures[1]]
    assert pending == [futures[0], futures[2], futures[4]]


def test_already_ready_objects_come_first_in_input_order():
    futures = [Future() for _ in range(4)]
    futures[3].set_result(None)
    futures[1].set_result(None)
    complete_later(futures[2], futures[0])
    done, pending = wait(futures, timeout=10)
    assert done == [futures[1], futures[3], futures[2], futures[0]]


@both
def test_already_ready_objects_count_at_once(how):
    # No timeout: if the ready one were not counted, this would block for good.
    pending, ready = Future(), done_future()
    if how == 'wait':
        assert wait([pending, ready], count=1) == ([ready], [pending])
    else:
        assert list(as_completed([pending, ready], count=1)) == [ready]
    assert pending._callback_count() == 0


def test_wait_all_ready_with_zero_timeout():
    futures = [done_future() for _ in range(3)]
    assert wait(futures, timeout=0) == (futures, [])


def test_wait_more_ready_than_count():
    futures = [done_future(i) for i in range(4)]
    done, pending = wait(futures, count=2)
    assert done == futures[:2]
    assert pending == futures[2:]


# count.

@pytest.mark.parametrize('count, expected_done', [
    (None, 3), (0, 0), (1, 1), (2, 2), (3, 3),
], ids=['none', 'zero', 'one', 'two', 'all'])
@both
def test_count(how, count, expected_done):
    futures = [Future() for _ in range(3)]
    complete_later(*futures)
    if how == 'wait':
        done, pending = wait(futures, count=count, timeout=10)
        assert len(done) == expected_done
        assert done + pending == futures
    else:
        done = list(as_completed(futures, count=count, timeout=10))
        assert done == futures[:expected_done]


def test_count_zero_returns_at_once_without_registering(counting):
    waitables = (counting(), counting())
    done, pending = wait(waitables, count=0)
    assert done == []
    assert pending == list(waitables) and type(pending) is list
    assert [w.add_count for w in waitables] == [0, 0]


def test_as_completed_count_zero_yields_nothing(counting):
    waitable = counting()
    assert list(as_completed([waitable], count=0)) == []
    assert waitable.add_count == 0


@both
def test_empty_sequence(how):
    assert consume(how, []) == []
    if how == 'wait':
        assert wait([]) == ([], [])


@pytest.mark.parametrize('count', [-1, 3, 100], ids=['negative', 'len-plus-one', 'far-above'])
@both
def test_count_out_of_range_raises_value_error(how, count, counting):
    waitables = [counting(), counting()]
    func = wait if how == 'wait' else as_completed
    with pytest.raises(ValueError):
        func(waitables, count=count)
    assert [w.add_count for w in waitables] == [0, 0]


@pytest.mark.parametrize('count', [1.5, '1'], ids=['float', 'string'])
@both
def test_count_of_wrong_type_raises_type_error(how, count, counting):
    func = wait if how == 'wait' else as_completed
    with pytest.raises(TypeError):
        func([counting()], count=count)


# Bad input.

class Plain:
    pass


class HalfWaitable:
    def add_done_callback(self, callback, *args):
        raise AssertionError('must not be called')


@pytest.mark.parametrize('bad, type_name', [
    (42, 'int'), (None, 'NoneType'), ('text', 'str'), (object(), 'object'), (Plain(), 'Plain'),
    (HalfWaitable(), 'HalfWaitable'), (gevent.Timeout(), 'Timeout'),
], ids=['int', 'None', 'str', 'object', 'plain-class', 'half-waitable', 'gevent-Timeout'])
@both
def test_non_waitable_raises_type_error_naming_the_type(how, bad, type_name, counting):
    # The good waitables come first: nothing may be registered on them.
    good = [counting(), counting(ready=True)]
    func = wait if how == 'wait' else as_completed
    with pytest.raises(TypeError) as info:
        func(good + [bad], timeout=1)       # checked at the call
    assert type_name in str(info.value)
    assert [w.add_count for w in good] == [0, 0]


def _generator():
    yield done_future()


@pytest.mark.parametrize('objects, type_name', [
    (42, 'int'), (None, 'NoneType'), (_generator(), 'generator'), (iter([]), 'iterator'),
    (done_future(), 'Future'), ('abc', 'str'),
], ids=['int', 'None', 'generator', 'iterator', 'single-future', 'str'])
@both
def test_non_sequence_raises_type_error(how, objects, type_name):
    func = wait if how == 'wait' else as_completed
    with pytest.raises(TypeError) as info:
        func(objects)
    assert type_name in str(info.value)


@pytest.mark.parametrize('timeout, error', [
    (-1, ValueError), (-0.5, ValueError), (math.nan, ValueError), ('1', TypeError),
    ([], TypeError),
], ids=['minus-one', 'negative-float', 'nan', 'string', 'list'])
@both
def test_bad_timeout(how, timeout, error, counting):
    waitable = counting()
    func = wait if how == 'wait' else as_completed
    with pytest.raises(error):
        func([waitable], timeout=timeout)
    assert waitable.add_count == 0


# Timeouts.

def test_wait_timeout_returns_what_is_ready(counting):
    ready, never, other = done_future(), Future(), counting()
    started = time.monotonic()
    done, pending = wait([never, ready, other], timeout=0.02)
    assert time.monotonic() - started >= 0.018
    assert done == [ready]
    assert pending == [never, other]
    assert never._callback_count() == 0 and other.live_count == 0


def test_wait_timeout_with_count():
    ready, never = done_future(), Future()
    done, pending = wait([never, ready], count=2, timeout=0.01)
    assert (done, pending) == ([ready], [never])


def test_as_completed_timeout_raises_after_yielding_the_ready(counting):
    ready, never, other = done_future(), Future(), counting()
    got = []
    with pytest.raises(Timeout) as info:
        for obj in as_completed([never, ready, other], timeout=0.02):
            got.append(obj)
    assert isinstance(info.value, TimeoutError)
    assert got == [ready]
    assert never._callback_count() == 0 and other.live_count == 0


def test_as_completed_timeout_is_for_the_whole_iteration():
    futures = [Future() for _ in range(3)]
    futures[0].set_result(None)
    started = time.monotonic()
    iterator = as_completed(futures, timeout=0.05)
    assert next(iterator) is futures[0]
    with pytest.raises(Timeout):
        next(iterator)
    assert time.monotonic() - started < 5


def test_wait_timeout_zero_does_not_block():
    never = Future()
    assert wait([never], timeout=0) == ([], [never])


@both
def test_infinite_timeout(how):
    futures = [Future(), Future()]
    complete_later(*futures)
    assert consume(how, futures, timeout=math.inf) == futures


# Duplicates.

def test_duplicates_count_as_several_entries():
    future, other = Future(), Future()
    complete_later(future)
    done, pending = wait([future, other, future], count=2, timeout=10)
    assert done == [future, future]
    assert pending == [other]
    assert other._callback_count() == 0


def test_duplicates_in_as_completed():
    future = Future()
    complete_later(future)
    assert list(as_completed([future, future, future], timeout=10)) == [future] * 3


def test_duplicate_ready_entries():
    future = done_future()
    assert wait([future, future]) == ([future, future], [])


def test_duplicates_raise_count_limit():
    future = Future()
    with pytest.raises(ValueError):
        wait([future, future], count=3)


# Kinds of waitables.

def test_duck_typed_and_declared_waitables(waitable_class):
    waitables = [waitable_class() for _ in range(3)]
    set_later(waitables[1], waitables[0], waitables[2])
    done, pending = wait(waitables, timeout=10)
    assert done == [waitables[1], waitables[0], waitables[2]]
    assert all(w.live_count == 0 for w in waitables)


def test_mixed_waitables_return_the_objects_passed_in(waitable_class):
    future, event, waitable = Future(), gevent.event.Event(), waitable_class()

    def producer():
        event.set()
        waitable.make_ready()
        future.set_result(None)

    gevent.spawn(producer)
    done = list(as_completed([future, event, waitable], timeout=10))
    assert sorted(map(id, done)) == sorted(map(id, [future, event, waitable]))
    assert done[0] is not None
    assert any(obj is event for obj in done)        # the Event itself, not an adapter


def test_tuple_and_other_sequences_are_accepted():
    futures = (done_future(), done_future())
    assert wait(futures) == (list(futures), [])
    assert list(as_completed(futures)) == list(futures)


def test_callback_arriving_after_wait_finished_is_harmless(counting):
    # A waitable that does not really remove callbacks still calls the old one.
    class Sticky(counting):
        def remove_done_callback(self, handle):
            pass

    sticky, ready = Sticky(), done_future()
    assert wait([sticky, ready], count=1) == ([ready], [sticky])
    sticky.make_ready()     # calls the stale callback of the finished wait()


# No callback remains registered.

@pytest.mark.parametrize('count', [1, 2, None], ids=['one', 'two', 'all'])
@both
def test_normal_finish_leaves_no_callback(how, count, waitable_class):
    waitables = [waitable_class() for _ in range(4)]
    order = [waitables[2], waitables[0], waitables[3], waitables[1]][:count]
    set_later(*order)
    func = wait if how == 'wait' else as_completed
    result = func(waitables, count=count, timeout=10)
    if how == 'as_completed':
        assert list(result) == order
    else:
        assert result[0] == order
    assert all(w.live_count == 0 for w in waitables)
    # The callbacks of the objects that never became ready were removed.
    assert sum(w.call_count for w in waitables) == len(order)
    assert all(w.remove_count == 1 for w in waitables if not w.ready)


@both
def test_timeout_leaves_no_callback(how, waitable_class):
    waitables = [waitable_class() for _ in range(3)]
    waitables[1].make_ready()
    if how == 'wait':
        assert wait(waitables, timeout=0.01) == ([waitables[1]], [waitables[0], waitables[2]])
    else:
        with pytest.raises(Timeout):
            list(as_completed(waitables, timeout=0.01))
    assert [w.live_count for w in waitables] == [0, 0, 0]
    assert [w.add_count for w in waitables] == [1, 1, 1]


def test_closing_the_generator_early_leaves_no_callback(waitable_class):
    waitables = [waitable_class() for _ in range(3)]
    waitables[2].make_ready()
    iterator = as_completed(waitables, timeout=10)
    assert next(iterator) is waitables[2]
    assert [w.live_count for w in waitables] == [1, 1, 0]
    iterator.close()
    assert [w.live_count for w in waitables] == [0, 0, 0]


def test_breaking_out_of_the_loop_leaves_no_callback(waitable_class):
    waitables = [waitable_class() for _ in range(3)]
    waitables[0].make_ready()
    for obj in as_completed(waitables):
        assert obj is waitables[0]
        break
    gc.collect()        # the abandoned generator is closed when it is collected
    assert [w.live_count for w in waitables] == [0, 0, 0]


def test_generator_that_never_started_registers_nothing(waitable_class):
    waitables = [waitable_class() for _ in range(2)]
    iterator = as_completed(waitables)
    iterator.close()
    assert [w.add_count for w in waitables] == [0, 0]


@both
def test_killed_waiter_leaves_no_callback(how, waitable_class):
    waitables = [waitable_class() for _ in range(3)]
    waitables[0].make_ready()
    waiting = gevent.spawn(consume, how, waitables)
    gevent.idle()           # the waiter has registered and parked
    assert waiting.started and not waiting.dead
    assert [w.live_count for w in waitables] == [0, 1, 1]
    gevent.kill(waiting)
    waiting.join(timeout=10)
    assert waiting.dead
    assert isinstance(waiting.value, gevent.GreenletExit)
    assert [w.live_count for w in waitables] == [0, 0, 0]


@both
def test_gevent_timeout_around_the_wait_leaves_no_callback(how, waitable_class):
    waitables = [waitable_class() for _ in range(2)]
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.01):
            consume(how, waitables)
    assert [w.live_count for w in waitables] == [0, 0]


@both
def test_failing_registration_leaves_no_callback(how, waitable_class):
    class Broken(waitable_class):
        def add_done_callback(self, callback, *args):
            raise RuntimeError('cannot register')

    waitables = [waitable_class(), waitable_class(), Broken(), waitable_class()]
    with pytest.raises(RuntimeError):
        consume(how, waitables, timeout=10)
    assert [w.live_count for w in waitables] == [0, 0, 0, 0]
    assert [w.add_count for w in waitables] == [1, 1, 0, 0]


def test_consumer_slower_than_completions(waitable_class):
    # Objects that become ready while the consumer is busy are not lost.
    waitables = [waitable_class() for _ in range(3)]
    iterator = as_completed(waitables, timeout=10)
    set_later(waitables[1])
    assert next(iterator) is waitables[1]
    waitables[2].make_ready()
    waitables[0].make_ready()
    assert list(iterator) == [waitables[2], waitables[0]]
    assert [w.live_count for w in waitables] == [0, 0, 0]


# Many waiters on the same objects.

def test_many_greenlets_waiting_for_two_of_the_same_futures():
    futures = [Future() for _ in range(100)]
    waiters = [gevent.spawn(wait, futures, count=2, timeout=10) for _ in range(100)]
    gevent.idle()       # every waiter is parked, with a callback on every future
    assert all(f._callback_count() == 100 for f in futures)
    futures[17].set_result(None)
    futures[5].set_result(None)
    for waiter in waiters:
        done, pending = waiter.get(timeout=10)
        assert done == [futures[17], futures[5]]
        assert len(pending) == 98
    assert all(f._callback_count() == 0 for f in futures)


def test_many_greenlets_as_completed_on_the_same_futures():
    futures = [Future() for _ in range(100)]
    waiters = [gevent.spawn(lambda: list(as_completed(futures, count=2, timeout=10)))
               for _ in range(100)]
    gevent.idle()
    futures[99].set_result(None)
    futures[0].set_result(None)
    assert all(w.get(timeout=10) == [futures[99], futures[0]] for w in waiters)
    assert all(f._callback_count() == 0 for f in futures)


# Cost.

def _best_time(func, objects, repeat):
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            func(objects)
            best = min(best, time.perf_counter() - started)
        finally:
            gc.enable()
    return best


def _as_completed_all(objects):
    for _ in as_completed(objects):
        pass


def _wait_all(objects):
    wait(objects)


def _wait_half(objects):
    # Half of the objects are ready: the other half are registered, then removed.
    wait(objects, count=len(objects) // 2)


def _objects(kind, size):
    futures = [Future() for _ in range(size)]
    ready = futures if kind != 'half' else futures[::2]
    for future in ready:
        future.set_result(None)
    return futures


@pytest.mark.stress
@pytest.mark.parametrize('func, kind', [
    (_as_completed_all, 'all'), (_wait_all, 'all'), (_wait_half, 'half'),
], ids=['as_completed', 'wait', 'wait-half-ready'])
def test_cost_is_linear(func, kind):
    small = _best_time(func, _objects(kind, 10_000), repeat=5)
    large = _best_time(func, _objects(kind, 100_000), repeat=2)
    ratio = large / small
    # Ten times the objects should take about ten times as long; a quadratic
    # cost would take about a hundred times.
    assert ratio < 30, 'ten times the objects took %.1f times as long' % ratio
