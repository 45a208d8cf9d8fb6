"""Future: states, cancellation, results, callbacks, gevent's wait protocol, size.

The cases that cross native threads are in test_future_threads.py.
"""

import gc
import logging
import math
import time
import tracemalloc

import gevent
import gevent.event
import pytest
from greenlet import getcurrent

from gruvi_gevent import Cancelled, Future, Timeout

pytestmark = pytest.mark.usefixtures('no_parked_waiters')


class Boom(Exception):
    pass


def running_future(can_cancel):
    future = Future()
    future.set_running(can_cancel)
    return future


def states(future):
    return future.running(), future.done(), future.cancelled()


# States.

def test_new_future_is_pending():
    future = Future()
    assert states(future) == (False, False, False)


def test_future_takes_no_arguments():
    with pytest.raises(TypeError):
        Future(None)


@pytest.mark.parametrize('can_cancel', [False, True], ids=['not-cancellable', 'cancellable'])
def test_set_running(can_cancel):
    future = Future()
    assert future.set_running(can_cancel) is True
    assert states(future) == (True, False, False)


@pytest.mark.parametrize('complete, expected', [
    (lambda f: f.set_result(1), (False, True, False)),
    (lambda f: f.set_exception(Boom()), (False, True, False)),
    (lambda f: f.cancel(), (False, True, True)),
], ids=['result', 'exception', 'cancelled'])
@pytest.mark.parametrize('start', [Future, lambda: running_future(True)],
                         ids=['from-pending', 'from-running'])
def test_done_states(start, complete, expected):
    future = start()
    complete(future)
    assert states(future) == expected


@pytest.mark.parametrize('setup', [
    lambda f: f.set_running(False),
    lambda f: f.set_running(True),
    lambda f: f.set_result(1),
    lambda f: f.set_exception(Boom()),
    lambda f: f.cancel(),
], ids=['running', 'running-cancellable', 'done', 'failed', 'cancelled'])
def test_set_running_is_a_no_op_unless_pending(setup):
    future = Future()
    setup(future)
    before = states(future)
    assert future.set_running(True) is False
    assert states(future) == before


def test_second_set_running_does_not_change_can_cancel():
    future = running_future(False)
    future.set_running(True)
    assert future.cancel() is False
    future = running_future(True)
    future.set_running(False)
    assert future.cancel() is True


# Cancellation.

@pytest.mark.parametrize('make, expected', [
    (Future, True),
    (lambda: running_future(True), True),
    (lambda: running_future(False), False),
    (lambda: _done(result=1), False),
    (lambda: _done(exception=Boom()), False),
    (lambda: _done(cancelled=True), False),
], ids=['pending', 'running-can-cancel', 'running-cannot-cancel', 'done', 'failed',
        'already-cancelled'])
def test_cancel_table(make, expected):
    future = make()
    before = states(future)
    assert future.cancel() is expected
    if expected:
        assert states(future) == (False, True, True)
    else:
        assert states(future) == before


def _done(result=None, exception=None, cancelled=False):
    future = Future()
    if cancelled:
        future.cancel()
    elif exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
    return future


def test_running_future_that_cannot_be_cancelled_completes_normally():
    future = running_future(False)
    assert future.cancel() is False
    future.set_result('ok')
    assert future.result() == 'ok'
    assert not future.cancelled()


@pytest.mark.parametrize('make', [Future, lambda: running_future(True)],
                         ids=['pending', 'running'])
def test_cancelled_future_exception_and_result(make):
    future = make()
    assert future.cancel()
    exc = future.exception()
    assert isinstance(exc, Cancelled)
    with pytest.raises(Cancelled) as info:
        future.result()
    assert info.value is exc


@pytest.mark.parametrize('make', [Future, lambda: running_future(True)],
                         ids=['pending', 'running'])
def test_cancel_runs_callbacks(make):
    future = make()
    calls = []
    future.add_done_callback(calls.append, 'called')
    assert future.cancel()
    assert calls == ['called']


def test_cancel_that_fails_runs_no_callbacks():
    future = running_future(False)
    calls = []
    future.add_done_callback(calls.append, 'called')
    assert future.cancel() is False
    assert calls == []


# First outcome wins.

@pytest.mark.parametrize('first', ['result', 'exception', 'cancel'])
@pytest.mark.parametrize('second', ['result', 'exception', 'cancel'])
def test_first_outcome_wins(first, second):
    future = Future()
    calls = []
    future.add_done_callback(calls.append, 'called')
    first_exc, second_exc = Boom('first'), Boom('second')
    outcomes = {
        'result': lambda value, exc: future.set_result(value),
        'exception': lambda value, exc: future.set_exception(exc),
        'cancel': lambda value, exc: future.cancel(),
    }
    outcomes[first]('first', first_exc)
    snapshot = states(future)
    exception = future.exception()
    assert outcomes[second]('second', second_exc) in (None, False)
    assert states(future) == snapshot
    assert future.exception() is exception
    if first == 'result':
        assert future.result() == 'first'
    elif first == 'exception':
        assert exception is first_exc
    else:
        assert isinstance(exception, Cancelled)
    assert calls == ['called']      # callbacks ran once, for the first outcome


def test_set_exception_requires_an_exception():
    future = Future()
    with pytest.raises(TypeError):
        future.set_exception('not an exception')
    assert not future.done()


# Results.

def test_result_returns_value():
    future = Future()
    value = object()
    future.set_result(value)
    assert future.result() is value
    assert future.exception() is None


def test_result_reraises_the_exception():
    future = Future()
    exc = Boom('failed')
    future.set_exception(exc)
    with pytest.raises(Boom) as info:
        future.result()
    assert info.value is exc
    assert future.exception() is exc


def test_result_waits_for_a_greenlet_to_set_it():
    future = Future()
    gevent.spawn(future.set_result, 'later')
    assert future.result(timeout=10) == 'later'


def test_exception_waits_for_a_greenlet_to_set_it():
    future = Future()
    exc = Boom()
    gevent.spawn(future.set_exception, exc)
    assert future.exception(timeout=10) is exc


def test_result_parks_only_the_waiting_greenlet():
    # While one greenlet waits, the hub keeps running others: the other greenlet
    # gets to run and completes the future the first one waits for.
    future = Future()
    steps = []

    def producer():
        steps.append('producer ran')
        future.set_result('done')

    def consumer():
        steps.append('consumer waits')
        result = future.result(timeout=10)
        steps.append('consumer woke')
        return result

    waiting = gevent.spawn(consumer)
    gevent.spawn(producer)
    assert waiting.get(timeout=10) == 'done'
    assert steps == ['consumer waits', 'producer ran', 'consumer woke']


@pytest.mark.parametrize('method', ['result', 'exception'])
@pytest.mark.parametrize('timeout', [0, 0.02], ids=['zero', 'short'])
def test_timeout_raises_timeout(method, timeout):
    future = Future()
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        getattr(future, method)(timeout=timeout)
    assert time.monotonic() - started >= timeout * 0.9
    assert isinstance(info.value, TimeoutError)
    assert not isinstance(info.value, gevent.Timeout)
    assert not future.done()
    assert future._callback_count() == 0      # the waiter removed itself


@pytest.mark.parametrize('method', ['result', 'exception'])
def test_timeout_does_not_apply_to_a_done_future(method):
    future = Future()
    future.set_result(1)
    assert getattr(future, method)(timeout=0) == (1 if method == 'result' else None)


@pytest.mark.parametrize('method', ['result', 'exception'])
@pytest.mark.parametrize('timeout, error', [
    (-1, ValueError), (-0.001, ValueError), (math.nan, ValueError), ('1', TypeError),
    (object(), TypeError),
], ids=['minus-one', 'negative-float', 'nan', 'string', 'object'])
def test_bad_timeout(method, timeout, error):
    future = Future()
    with pytest.raises(error):
        getattr(future, method)(timeout=timeout)
    assert future._callback_count() == 0


@pytest.mark.parametrize('method', ['result', 'exception'])
def test_infinite_timeout_waits(method):
    future = Future()
    gevent.spawn(future.set_result, 'x')
    assert getattr(future, method)(timeout=math.inf) == ('x' if method == 'result' else None)


@pytest.mark.parametrize('method', ['result', 'exception'])
@pytest.mark.parametrize('timeout', [None, 1.0], ids=['no-timeout', 'timeout'])
def test_waiting_inside_the_hub_raises_runtime_error(method, timeout):
    future = Future()
    outcome = []
    finished = gevent.event.Event()

    def in_hub():
        assert getcurrent() is gevent.get_hub()
        try:
            getattr(future, method)(timeout=timeout)
        except RuntimeError as exc:
            outcome.append(exc)
        except BaseException as exc:    # anything else is the wrong answer
            outcome.append(exc)
        finally:
            finished.set()

    gevent.get_hub().loop.run_callback(in_hub)
    assert finished.wait(timeout=10)
    [exc] = outcome
    assert type(exc) is RuntimeError
    assert 'hub' in str(exc)
    assert future._callback_count() == 0
    future.set_result('still usable')
    assert future.result() == 'still usable'


def test_done_future_can_be_read_inside_the_hub():
    future = Future()
    future.set_result(42)
    outcome = []
    finished = gevent.event.Event()

    def in_hub():
        outcome.append((future.result(), future.exception()))
        finished.set()

    gevent.get_hub().loop.run_callback(in_hub)
    assert finished.wait(timeout=10)
    assert outcome == [(42, None)]


def test_killed_waiter_leaves_no_callback():
    future = Future()
    waiting = gevent.spawn(future.result)
    gevent.idle()       # the waiter is parked now
    assert future._callback_count() == 1
    gevent.kill(waiting)
    waiting.join(timeout=10)
    assert waiting.dead
    assert future._callback_count() == 0


def test_many_greenlets_wait_on_one_future():
    future = Future()
    waiters = [gevent.spawn(future.result, timeout=10) for _ in range(50)]
    gevent.idle()
    assert future._callback_count() == 50
    future.set_result('all')
    assert [w.get(timeout=10) for w in waiters] == ['all'] * 50
    assert future._callback_count() == 0


# Done callbacks.

@pytest.mark.parametrize('complete', [
    lambda f: f.set_result(1), lambda f: f.set_exception(Boom()), lambda f: f.cancel(),
], ids=['result', 'exception', 'cancel'])
def test_callback_gets_its_args(complete):
    future = Future()
    calls = []
    handle = future.add_done_callback(lambda *args: calls.append(args), 'a', 2, None)
    assert handle is not None
    assert calls == []
    complete(future)
    assert calls == [('a', 2, None)]


def test_callback_without_args_gets_none():
    future = Future()
    calls = []
    future.add_done_callback(lambda *args: calls.append(args))
    future.set_result(1)
    assert calls == [()]


def test_callbacks_run_in_registration_order():
    future = Future()
    calls = []
    for index in range(5):
        future.add_done_callback(calls.append, index)
    future.set_result(None)
    assert calls == [0, 1, 2, 3, 4]


@pytest.mark.parametrize('complete', [
    lambda f: f.set_result(1), lambda f: f.set_exception(Boom()), lambda f: f.cancel(),
], ids=['result', 'exception', 'cancel'])
def test_callback_runs_in_the_completing_greenlet(complete):
    future = Future()
    seen = []
    future.add_done_callback(lambda: seen.append(getcurrent()))
    completer = gevent.spawn(complete, future)
    completer.join(timeout=10)
    assert seen == [completer]


def test_callback_runs_before_the_completer_returns():
    future = Future()
    calls = []
    future.add_done_callback(calls.append, 'x')
    future.set_result(None)
    assert calls == ['x']       # synchronously, not later in the hub


@pytest.mark.parametrize('make', [
    lambda: _done(result=1), lambda: _done(exception=Boom()), lambda: _done(cancelled=True),
], ids=['result', 'exception', 'cancelled'])
def test_callback_on_done_future_is_called_at_once(make):
    future = make()
    calls = []
    handle = future.add_done_callback(lambda *args: calls.append((getcurrent(), args)), 7)
    assert handle is None
    assert calls == [(getcurrent(), (7,))]


def test_removed_callback_is_not_called():
    future = Future()
    calls = []
    first = future.add_done_callback(calls.append, 'first')
    second = future.add_done_callback(calls.append, 'second')
    assert first is not second
    future.remove_done_callback(first)
    future.set_result(None)
    assert calls == ['second']


def test_same_callback_twice_gives_two_handles():
    future = Future()
    calls = []
    first = future.add_done_callback(calls.append, 'x')
    future.add_done_callback(calls.append, 'x')
    future.remove_done_callback(first)
    future.set_result(None)
    assert calls == ['x']


@pytest.mark.parametrize('when', ['pending', 'done'])
def test_remove_twice_and_none_are_fine(when):
    future = Future()
    handle = future.add_done_callback(lambda: None)
    future.remove_done_callback(handle)
    if when == 'done':
        future.set_result(None)
    future.remove_done_callback(handle)
    future.remove_done_callback(None)
    assert future._callback_count() == 0


def test_remove_after_call_is_fine():
    future = Future()
    calls = []
    handle = future.add_done_callback(calls.append, 1)
    future.set_result(None)
    future.remove_done_callback(handle)
    assert calls == [1]


def test_remove_a_callback_from_inside_a_callback():
    # The first callback removes the second (already collected for the run): both
    # must see a consistent set, and no callback may be skipped by accident.
    future = Future()
    calls = []
    handles = []
    handles.append(future.add_done_callback(lambda: (calls.append('first'),
                                                     future.remove_done_callback(handles[0]))))
    handles.append(future.add_done_callback(calls.append, 'second'))
    handles.append(future.add_done_callback(calls.append, 'third'))
    future.set_result(None)
    assert calls == ['first', 'second', 'third']


def test_add_callback_from_inside_a_callback_is_called_at_once():
    future = Future()
    calls = []
    future.add_done_callback(lambda: future.add_done_callback(calls.append, 'inner'))
    future.set_result(None)
    assert calls == ['inner']


def test_add_done_callback_requires_a_callable():
    future = Future()
    with pytest.raises(TypeError):
        future.add_done_callback('not callable')
    assert future._callback_count() == 0


@pytest.mark.parametrize('complete', [
    lambda f: f.set_result(1), lambda f: f.set_exception(Boom()), lambda f: f.cancel(),
], ids=['result', 'exception', 'cancel'])
def test_raising_callback_is_logged_and_does_not_stop_the_others(complete, caplog):
    future = Future()
    calls = []

    def bad():
        calls.append('bad')
        raise Boom('in callback')

    future.add_done_callback(calls.append, 'before')
    future.add_done_callback(bad)
    future.add_done_callback(calls.append, 'after')
    with caplog.at_level(logging.DEBUG, logger='gruvi_gevent'):
        complete(future)        # does not raise
    assert calls == ['before', 'bad', 'after']
    records = [r for r in caplog.records if r.name == 'gruvi_gevent']
    assert len(records) == 1
    assert records[0].levelno >= logging.ERROR
    assert isinstance(records[0].exc_info[1], Boom)


def test_raising_callback_on_done_future_is_logged(caplog):
    future = _done(result=1)

    def bad():
        raise Boom('at once')

    with caplog.at_level(logging.DEBUG, logger='gruvi_gevent'):
        assert future.add_done_callback(bad) is None
    records = [r for r in caplog.records if r.name == 'gruvi_gevent']
    assert len(records) == 1
    assert isinstance(records[0].exc_info[1], Boom)


def test_raising_callback_does_not_reach_a_completing_greenlet(caplog):
    future = Future()
    future.add_done_callback(lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger='gruvi_gevent'):
        completer = gevent.spawn(future.set_result, 'fine')
        completer.join(timeout=10)
    assert completer.successful()
    assert future.result() == 'fine'
    assert any(isinstance(r.exc_info[1], ZeroDivisionError) for r in caplog.records
               if r.name == 'gruvi_gevent')


# repr.

@pytest.mark.parametrize('make, expected', [
    (Future, ['pending']),
    (lambda: running_future(False), ['running']),
    (lambda: _done(result=42), ['done', 'int']),
    (lambda: _done(exception=Boom('oops')), ['Boom', 'oops']),
    (lambda: _done(cancelled=True), ['cancelled']),
], ids=['pending', 'running', 'done', 'failed', 'cancelled'])
def test_repr_shows_state(make, expected):
    text = repr(make())
    assert text.startswith('<Future')
    for word in expected:
        assert word in text
    others = {'pending', 'running', 'cancelled'} - set(expected)
    for word in others:
        assert word not in text


# gevent's wait protocol.

def test_gevent_wait_accepts_futures():
    futures = [Future() for _ in range(3)]

    def producer():
        for future in futures:
            future.set_result(None)

    gevent.spawn(producer)
    done = gevent.wait(futures, timeout=10)
    assert sorted(map(id, done)) == sorted(map(id, futures))
    assert all(f._callback_count() == 0 for f in futures)


def test_gevent_wait_on_done_future():
    future = _done(result=1)
    assert gevent.wait([future], timeout=10) == [future]


def test_gevent_wait_timeout_unlinks():
    future = Future()
    assert gevent.wait([future], timeout=0.01) == []
    assert future._callback_count() == 0


def test_gevent_iwait_yields_in_completion_order():
    futures = [Future() for _ in range(4)]
    order = [2, 0, 3, 1]

    def producer():
        for index in order:
            futures[index].set_result(index)

    gevent.spawn(producer)
    with gevent.iwait(futures, timeout=10) as iterator:
        got = list(iterator)
    assert got == [futures[i] for i in order]
    assert all(f._callback_count() == 0 for f in futures)


def test_gevent_iwait_count():
    futures = [Future() for _ in range(3)]
    gevent.spawn(futures[1].set_result, None)
    with gevent.iwait(futures, timeout=10, count=1) as iterator:
        assert list(iterator) == [futures[1]]
    assert all(f._callback_count() == 0 for f in futures)


def test_rawlink_callback_runs_in_the_hub():
    future = Future()
    seen = []
    called = gevent.event.Event()

    def callback(source):
        seen.append((getcurrent(), source))
        called.set()

    future.rawlink(callback)
    future.set_result(None)
    assert seen == []           # delivered later, in the hub
    assert called.wait(timeout=10)
    assert seen == [(gevent.get_hub(), future)]


def test_rawlink_on_done_future_is_delivered_in_the_hub():
    future = _done(result=None)
    seen = []
    future.rawlink(lambda source: seen.append((getcurrent(), source)))
    assert seen == []
    gevent.idle()
    assert seen == [(gevent.get_hub(), future)]


def test_unlink_removes_the_link():
    future = Future()
    seen = []
    future.rawlink(seen.append)
    future.unlink(seen.append)
    future.unlink(seen.append)      # unknown callbacks are ignored
    assert future._callback_count() == 0
    future.set_result(None)
    gevent.idle()
    assert seen == []


# Size.

def test_pending_future_is_small():
    count = 20000
    futures = [None] * count
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(count):
            futures[index] = Future()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_future = (after - before) / count
    assert per_future <= 200, '%.1f bytes per pending future' % per_future
