"""Futures across native threads: completed on one thread, waited on in another.

Native threads here are plain ``threading.Thread`` objects (the test process is
not monkey-patched); one test runs a monkey-patched child interpreter.
"""

import logging
import subprocess
import sys
import textwrap
import threading
import time

import gevent
import pytest
from gevent._hub_local import get_hub_if_exists

from gruvi_gevent import Future, Timeout, as_completed, wait

pytestmark = pytest.mark.usefixtures('no_parked_waiters')

# How long a native producer holds back before it completes a future that a
# greenlet waits on with no timeout. Nothing waits for this delay: it only
# gives the hub's loop the time to run out of other work, which is the
# situation in which a loop that nothing keeps alive would raise LoopExit.
IDLE_LOOP_DELAY = 0.05


class ParkedFuture(Future):
    """A Future that reports (on a threading.Event) when a waiter registers on it.

    It lets a test complete the future only once the other side is parked
    on it, without polling.
    """

    __slots__ = ('registered',)

    def __init__(self):
        super().__init__()
        self.registered = threading.Event()

    def _add(self, entry):
        added = super()._add(entry)
        self.registered.set()
        return added


def start_thread(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join(thread):
    thread.join(10)
    assert not thread.is_alive()


# Set from a native thread while a greenlet waits.

@pytest.mark.parametrize('how', ['result', 'exception', 'wait', 'as_completed'])
def test_set_from_thread_while_greenlet_waits_and_hub_serves_others(how):
    future = Future()
    ticks = []
    gate = threading.Event()

    def ticker():
        # Keeps running while the main greenlet is parked; opens the gate
        # for the producer after a few rounds. It ticks on a short timer
        # rather than spinning, so that it leaves the producer thread its
        # share of the interpreter.
        while True:
            ticks.append(None)
            if len(ticks) == 10:
                gate.set()
            gevent.sleep(0.001)

    def producer():
        if gate.wait(10):
            if how == 'exception':
                future.set_exception(KeyError('from thread'))
            else:
                future.set_result('from thread')

    thread = start_thread(producer)
    ticking = gevent.spawn(ticker)
    try:
        if how == 'result':
            assert future.result(timeout=10) == 'from thread'
        elif how == 'exception':
            assert isinstance(future.exception(timeout=10), KeyError)
        elif how == 'wait':
            assert wait([future], timeout=10) == ([future], [])
        else:
            assert list(as_completed([future], timeout=10)) == [future]
    finally:
        ticking.kill()
        join(thread)
    assert len(ticks) >= 10         # the hub kept serving the ticker meanwhile


@pytest.mark.parametrize('how', ['result', 'wait', 'as_completed', 'gevent.wait'])
def test_greenlet_waiting_without_timeout_gets_no_loop_exit(how):
    future = ParkedFuture()

    def producer():
        if future.registered.wait(10):
            time.sleep(IDLE_LOOP_DELAY)
            future.set_result('late')

    thread = start_thread(producer)
    try:
        if how == 'result':
            assert future.result() == 'late'
        elif how == 'wait':
            assert wait([future]) == ([future], [])
        elif how == 'as_completed':
            assert list(as_completed([future])) == [future]
        else:
            assert gevent.wait([future]) == [future]
    finally:
        join(thread)


def test_gevent_iwait_on_future_set_from_thread():
    futures = [Future() for _ in range(3)]

    def producer():
        for future in reversed(futures):
            future.set_result(None)

    thread = start_thread(producer)
    try:
        with gevent.iwait(futures, timeout=10) as iterator:
            got = list(iterator)
    finally:
        join(thread)
    assert sorted(map(id, got)) == sorted(map(id, futures))
    assert all(f._callback_count() == 0 for f in futures)


def test_gevent_wait_on_future_set_from_thread_with_timeout():
    future = ParkedFuture()

    def producer():
        if future.registered.wait(10):
            future.set_result(None)

    thread = start_thread(producer)
    try:
        assert gevent.wait([future], timeout=10) == [future]
    finally:
        join(thread)


def test_callback_runs_in_the_completing_thread():
    future = Future()
    seen = []
    future.add_done_callback(lambda: seen.append(threading.get_ident()))
    thread = start_thread(future.set_result, None)
    join(thread)
    assert seen == [thread.ident]


def test_raising_callback_in_thread_is_logged_and_does_not_reach_the_thread(caplog):
    future = Future()
    calls = []
    escaped = []

    def producer():
        try:
            future.set_result('ok')
        except BaseException as exc:
            escaped.append(exc)

    future.add_done_callback(lambda: 1 / 0)
    future.add_done_callback(calls.append, 'after')
    with caplog.at_level(logging.ERROR, logger='gruvi_gevent'):
        join(start_thread(producer))
    assert escaped == []
    assert calls == ['after']
    assert any(isinstance(r.exc_info[1], ZeroDivisionError) for r in caplog.records
               if r.name == 'gruvi_gevent')


# Waited on in a native thread (no hub) while a greenlet sets it.

@pytest.mark.parametrize('how', ['result', 'exception', 'wait', 'as_completed'])
def test_waited_in_thread_while_greenlet_sets_it(how):
    future = ParkedFuture()
    outcome = []

    def consumer():
        try:
            if how == 'result':
                outcome.append(future.result(timeout=10))
            elif how == 'exception':
                outcome.append(future.exception(timeout=10))
            elif how == 'wait':
                outcome.append(wait([future], timeout=10))
            else:
                outcome.append(list(as_completed([future], timeout=10)))
            outcome.append(get_hub_if_exists())
        except BaseException as exc:
            outcome.append(exc)

    thread = start_thread(consumer)
    assert future.registered.wait(10)      # the thread is parked on the future
    setter = gevent.spawn(future.set_result, 'from greenlet')
    setter.join(timeout=10)
    join(thread)
    expected = {'result': 'from greenlet', 'exception': None, 'wait': ([future], []),
                'as_completed': [future]}[how]
    assert outcome == [expected, None]     # and the thread never got a hub


def test_thread_waits_without_timeout():
    future = ParkedFuture()
    outcome = []
    thread = start_thread(lambda: outcome.append(future.result()))
    assert future.registered.wait(10)
    future.set_result(1)
    join(thread)
    assert outcome == [1]


@pytest.mark.parametrize('method', ['result', 'exception'])
def test_timeout_in_thread(method):
    future = Future()
    outcome = []

    def consumer():
        started = time.monotonic()
        try:
            getattr(future, method)(timeout=0.02)
        except BaseException as exc:
            outcome.append((exc, time.monotonic() - started))

    join(start_thread(consumer))
    [(exc, elapsed)] = outcome
    assert isinstance(exc, Timeout)
    assert elapsed >= 0.018
    assert future._callback_count() == 0


@pytest.mark.parametrize('timeout', [1e10, float('inf')], ids=['huge', 'inf'])
def test_huge_timeout_in_thread(timeout):
    future = ParkedFuture()
    outcome = []

    def consumer():
        try:
            outcome.append(future.result(timeout=timeout))
        except BaseException as exc:
            outcome.append(exc)

    thread = start_thread(consumer)
    assert future.registered.wait(10)
    future.set_result('fine')
    join(thread)
    assert outcome == ['fine']


def test_many_threads_and_greenlets_wait_on_one_future():
    future = Future()
    outcome = []
    threads = [start_thread(lambda: outcome.append(future.result(timeout=10)))
               for _ in range(8)]
    greenlets = [gevent.spawn(future.result, timeout=10) for _ in range(8)]
    gevent.idle()
    start_thread(future.set_result, 'all')
    assert [g.get(timeout=10) for g in greenlets] == ['all'] * 8
    for thread in threads:
        join(thread)
    assert outcome == ['all'] * 8


# Races between threads.

def test_racing_completions_first_outcome_wins():
    for _ in range(20):
        future = Future()
        calls = []
        future.add_done_callback(lambda: calls.append(None))
        barrier = threading.Barrier(8)

        def complete(index):
            barrier.wait(10)
            if index % 3 == 0:
                future.cancel()
            elif index % 3 == 1:
                future.set_exception(KeyError(index))
            else:
                future.set_result(index)

        threads = [start_thread(complete, index) for index in range(8)]
        for thread in threads:
            join(thread)
        assert future.done()
        assert len(calls) == 1


def test_callbacks_added_while_another_thread_completes_are_called_once():
    for _ in range(20):
        future = Future()
        calls = []
        lock = threading.Lock()
        barrier = threading.Barrier(5)

        def call(tag):
            with lock:
                calls.append(tag)

        def adder(base):
            barrier.wait(10)
            for index in range(100):
                handle = future.add_done_callback(call, base + index)
                if index % 10 == 9:
                    future.remove_done_callback(handle)     # removed ones may or may not run

        def completer():
            barrier.wait(10)
            future.set_result(None)

        threads = [start_thread(adder, base) for base in range(0, 400, 100)]
        threads.append(start_thread(completer))
        for thread in threads:
            join(thread)
        assert len(calls) == len(set(calls))        # nobody called twice
        kept = {base + index for base in range(0, 400, 100) for index in range(100)
                if index % 10 != 9}
        assert kept <= set(calls)                    # nobody lost
        assert future._callback_count() == 0


def test_monkey_patched_process():
    # Under patch_all() the future's own lock must stay a real OS lock, and
    # futures must still cross between greenlets and real OS threads.
    script = textwrap.dedent('''
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from gruvi_gevent import Future, wait
        from gruvi_gevent import future as future_module

        real_lock = monkey.get_original('_thread', 'allocate_lock')
        start = monkey.get_original('_thread', 'start_new_thread')
        assert type(future_module._lock) is type(real_lock()), type(future_module._lock)

        to_greenlet, to_thread, finished = Future(), Future(), Future()

        def native():
            try:
                to_greenlet.set_result('from thread')
                finished.set_result(to_thread.result(timeout=10))
            except BaseException as exc:
                finished.set_exception(exc)

        start(native, ())
        assert to_greenlet.result(timeout=10) == 'from thread'
        gevent.spawn(to_thread.set_result, 'from greenlet')
        assert finished.result(timeout=10) == 'from greenlet'
        assert wait([to_greenlet, to_thread, finished], timeout=10)[1] == []
        print('ok')
    ''')
    process = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                             timeout=30)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == 'ok'
