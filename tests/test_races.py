"""Races: close() against submitters, cancel() against completion, re-entrant callbacks.

Every race runs many rounds. Nothing here sleeps to let the other side catch
up: racers are gated on events and futures, and every wait has a timeout, so
that a lost wake-up fails the test instead of hanging it. Greenlets yield with
``gevent.sleep(0)`` only to interleave with each other, never to wait.
"""

import random
import sys
import threading

import gevent
import gevent.event
import pytest

from gruvi_gevent import Cancelled, FiberPool, Future, ThreadPool, as_completed, wait
from gruvi_gevent.testing import DEFAULT_TIMEOUT as TIMEOUT
from gruvi_gevent.testing import run_in_native_thread

from pool_helpers import Countdown

POOLS = [pytest.param(FiberPool, id='fiber'), pytest.param(ThreadPool, id='thread')]


@pytest.fixture(autouse=True)
def fast_switching():
    """Make native threads switch every few microseconds, so that they really interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def finish_threads(*runs):
    """Wait (parked, not blocking the hub) for run_in_native_thread() runs; return their results."""
    return [run.result(timeout=TIMEOUT) for run in runs]


# close() while greenlets and native threads are still submitting.

def numbered_job(number):
    if number % 7 == 3:
        raise ValueError(number)
    return number


def check_outcome(number, future):
    """A future of numbered_job: done, with the right result, error or Cancelled."""
    assert future.done(), (number, future)
    if future.cancelled():
        with pytest.raises(Cancelled):
            future.result(timeout=0)
        return 'cancelled'
    exc = future.exception(timeout=0)
    if number % 7 == 3:
        assert isinstance(exc, ValueError) and exc.args == (number,)
        return 'failed'
    assert exc is None and future.result(timeout=0) == number
    return 'done'


@pytest.mark.parametrize('closer', ['greenlet', 'thread'])
@pytest.mark.parametrize('pool_class', POOLS)
def test_close_while_submitting(pool_class, closer):
    outcomes = {'done': 0, 'failed': 0, 'cancelled': 0}
    for _ in range(8):
        pool = pool_class(4)
        submitted = []          # (number, future); list.append is atomic
        enough = Future()       # set once the submitters are well under way
        go = threading.Event()  # releases the native submitters

        def submit_until_refused(yield_every):
            if not yield_every:
                assert go.wait(TIMEOUT)
            number = 0
            while True:
                try:
                    future = pool.submit(numbered_job, number)
                except RuntimeError:
                    return number
                submitted.append((number, future))
                number += 1
                if len(submitted) >= 500 and not enough.done():
                    enough.set_result(None)
                if yield_every and not number % yield_every:
                    gevent.sleep(0)

        threads = [run_in_native_thread(submit_until_refused, 0) for _ in range(2)]
        greenlets = [gevent.spawn(submit_until_refused, every) for every in (1, 3, 10, 50)]
        go.set()
        enough.result(timeout=TIMEOUT)
        if closer == 'thread':
            finish_threads(run_in_native_thread(pool.close))
        else:
            pool.close()
        assert len(pool) == 0
        finish_threads(*threads)
        gevent.joinall(greenlets, timeout=TIMEOUT, raise_error=True)
        assert all(greenlet.dead for greenlet in greenlets)

        futures = [future for _, future in submitted]
        done, pending = wait(futures, timeout=TIMEOUT)
        assert not pending, '%d of %d futures still pending after close()' % (
            len(pending), len(futures))
        for number, future in submitted:
            outcomes[check_outcome(number, future)] += 1

        # Every later submit is refused, from every kind of caller.
        with pytest.raises(RuntimeError):
            pool.submit(numbered_job, 1)
        with pytest.raises(RuntimeError):
            pool.map(numbered_job, [1, 2])
        refused = finish_threads(run_in_native_thread(_submit_refused, pool))
        assert refused == [True]
        pool.close()   # a second close returns at once
    assert outcomes['done'] and outcomes['failed']


def _submit_refused(pool):
    try:
        pool.submit(numbered_job, 1)
    except RuntimeError:
        return True
    return False


# cancel() racing completion.

@pytest.mark.parametrize('racers', ['greenlets', 'threads'])
def test_cancel_races_set_result(racers):
    count = 3000
    futures = [Future() for _ in range(count)]
    calls = [[] for _ in range(count)]
    wins = [[] for _ in range(count)]
    for number, future in enumerate(futures):
        future.add_done_callback(calls[number].append, 'called')
        if number % 3 == 1:
            future.set_running(can_cancel=True)
        elif number % 3 == 2:
            future.set_running(can_cancel=False)

    def cancel_all(order, yield_every):
        for step, number in enumerate(order):
            if futures[number].cancel():
                wins[number].append('cancelled')
            if yield_every and not step % yield_every:
                gevent.sleep(0)

    def complete_all(order, yield_every):
        for step, number in enumerate(order):
            futures[number].set_result(number)
            if yield_every and not step % yield_every:
                gevent.sleep(0)

    orders = [random.sample(range(count), count) for _ in range(3)]
    if racers == 'threads':
        go = threading.Barrier(3, timeout=TIMEOUT)

        def gated(func, order):
            go.wait()
            func(order, 0)

        finish_threads(run_in_native_thread(gated, cancel_all, orders[0]),
                       run_in_native_thread(gated, cancel_all, orders[1]),
                       run_in_native_thread(gated, complete_all, orders[2]))
    else:
        gevent.joinall([gevent.spawn(cancel_all, orders[0], 7),
                        gevent.spawn(cancel_all, orders[1], 11),
                        gevent.spawn(complete_all, orders[2], 5)],
                       timeout=TIMEOUT, raise_error=True)

    cancelled = 0
    for number, future in enumerate(futures):
        assert future.done()
        assert calls[number] == ['called'], (number, calls[number])
        assert len(wins[number]) <= 1
        assert future.cancelled() == bool(wins[number])
        assert future._callback_count() == 0
        if future.cancelled():
            cancelled += 1
            assert number % 3 != 2, 'a running future without can_cancel was cancelled'
            assert isinstance(future.exception(timeout=0), Cancelled)
            with pytest.raises(Cancelled):
                future.result(timeout=0)
        else:
            assert future.exception(timeout=0) is None
            assert future.result(timeout=0) == number
        assert not future.cancel()   # done: cancel() refuses and changes nothing
        assert future.cancelled() == bool(wins[number])
        assert calls[number] == ['called']
    if racers == 'greenlets':
        assert 0 < cancelled < count * 2 // 3 + 1


@pytest.mark.parametrize('canceller', ['greenlet', 'thread'])
@pytest.mark.parametrize('pool_class', POOLS)
def test_cancel_races_pool_completion(pool_class, canceller):
    count = 2000
    pool = pool_class(4)
    started = [False] * count
    finished = [False] * count
    interrupted = [False] * count

    go = threading.Event()

    def job(number):
        if pool_class is ThreadPool and number < 4:
            assert go.wait(TIMEOUT)    # hold the threads until a cancel has won
        started[number] = True
        if pool_class is FiberPool and number % 2:
            try:
                gevent.sleep(0)    # a switchpoint where a cancel can land
            except Cancelled:
                interrupted[number] = True
                raise
        finished[number] = True
        return number

    futures = [pool.submit(job, number) for number in range(count)]
    calls = [[] for _ in range(count)]
    wins = [[] for _ in range(count)]
    called = Countdown(count)

    def callback(number):
        calls[number].append('called')
        called.arrive()

    for number, future in enumerate(futures):
        future.add_done_callback(callback, number)

    def cancel_some(order, yield_every):
        for step, number in enumerate(order):
            if futures[number].cancel():
                wins[number].append('cancelled')
                # The threads are held until a cancel has won, so that one
                # always does; from then on cancel() races completion.
                go.set()
            if yield_every and not step % yield_every:
                gevent.sleep(0)
        go.set()

    order = random.sample(range(count), count // 2)
    if canceller == 'thread':
        outcome = run_in_native_thread(cancel_some, order, 0)
        done, pending = wait(futures, timeout=TIMEOUT)
        finish_threads(outcome)
    else:
        greenlet = gevent.spawn(cancel_some, order, 3)
        done, pending = wait(futures, timeout=TIMEOUT)
        greenlet.join(TIMEOUT)
        assert greenlet.successful()
    assert not pending
    # A future is done before its callbacks run (as in concurrent.futures):
    # the callbacks of the last futures may still be running in the thread
    # that completed them when wait() returns.
    called.wait()

    cancelled = 0
    for number, future in enumerate(futures):
        assert calls[number] == ['called'], (number, calls[number])
        assert future.cancelled() == bool(wins[number])
        if future.cancelled():
            cancelled += 1
            with pytest.raises(Cancelled):
                future.result(timeout=0)
            if pool_class is ThreadPool:
                assert not started[number], 'a cancelled thread job ran'
            # A fiber job that was already due to resume from its switchpoint
            # when cancelled runs on to the next one (as with gevent's kill),
            # here the end: it may finish, but its result is discarded.
        else:
            assert not interrupted[number], 'Cancelled reached a job whose future was not cancelled'
            assert future.result(timeout=0) == number
            assert finished[number]
    if canceller == 'greenlet':
        assert cancelled > 0

    # The pool kept its capacity.
    assert len(pool) <= 4
    assert [f.result(timeout=TIMEOUT) for f in [pool.submit(job, n) for n in range(8)]] \
        == list(range(8))
    pool.close()


@pytest.mark.parametrize('racer', ['greenlet', 'thread'])
def test_callbacks_race_completion(racer):
    # add_done_callback and remove_done_callback against set_result in another thread.
    count = 3000
    futures = [Future() for _ in range(count)]
    calls = [[] for _ in range(count)]
    handles = [None] * count

    def add_callbacks(yield_every):
        for number, future in enumerate(futures):
            handles[number] = future.add_done_callback(calls[number].append, 'called')
            if number % 2:
                future.remove_done_callback(handles[number])
            if yield_every and not number % yield_every:
                gevent.sleep(0)

    completer = run_in_native_thread(lambda: [f.set_result(n) for n, f in enumerate(futures)])
    if racer == 'thread':
        finish_threads(run_in_native_thread(add_callbacks, 0))
    else:
        add_callbacks(50)
    finish_threads(completer)
    for number, future in enumerate(futures):
        if number % 2:
            assert len(calls[number]) <= 1
        else:
            assert calls[number] == ['called'], number
        assert future._callback_count() == 0


# Callbacks that re-enter the library.

class Context:
    """What a re-entrant callback may touch, and what it leaves for the checks."""

    def __init__(self):
        self.fibers = FiberPool(2)
        self.threads = ThreadPool(2)
        self.other = Future()
        self.other_calls = []
        self.other.add_done_callback(self.other_calls.append, 'other')
        self.effects = []      # what the action did: futures and flags to check
        self.handle = None     # the re-entrant callback's own handle

    def close(self):
        self.fibers.close()
        self.threads.close()


def act_add_same(future, ctx):
    calls = []
    handle = future.add_done_callback(calls.append, 'added')
    ctx.effects.append(('added at once', calls, handle))


def act_add_other(future, ctx):
    calls = []
    ctx.other.add_done_callback(calls.append, 'added')
    ctx.effects.append(('added to other', calls))


def act_cancel_other(future, ctx):
    ctx.effects.append(('cancelled other', ctx.other.cancel()))


def act_cancel_self(future, ctx):
    ctx.effects.append(('cancelled self', future.cancel()))


def act_submit_fiber(future, ctx):
    ctx.effects.append(('submitted', ctx.fibers.submit(pow, 2, 10)))


def act_submit_thread(future, ctx):
    ctx.effects.append(('submitted', ctx.threads.submit(pow, 2, 10)))


def act_remove_self(future, ctx):
    removed = [future.remove_done_callback(ctx.handle),
               future.remove_done_callback(ctx.handle)]    # twice is fine
    ctx.effects.append(('removed self', removed))


def act_wait_self(future, ctx):
    done, pending = wait([future, future], timeout=TIMEOUT)
    ready = list(as_completed([future], timeout=TIMEOUT))
    future.exception(timeout=TIMEOUT)
    ctx.effects.append(('waited', len(done), len(pending), len(ready)))


ACTIONS = {
    'add_same': act_add_same,
    'add_other': act_add_other,
    'cancel_other': act_cancel_other,
    'cancel_self': act_cancel_self,
    'submit_fiber': act_submit_fiber,
    'submit_thread': act_submit_thread,
    'remove_self': act_remove_self,
    'wait_self': act_wait_self,
}


def make_future(completer, ctx):
    """A pending future and a function that makes it complete in *completer*'s context."""
    if completer == 'fiber_pool':
        gate = gevent.event.Event()
        return ctx.fibers.submit(gate.wait, TIMEOUT), gate.set
    if completer == 'thread_pool':
        gate = threading.Event()
        return ctx.threads.submit(gate.wait, TIMEOUT), gate.set
    future = Future()
    if completer == 'set_result':
        return future, lambda: future.set_result(True)
    if completer == 'cancel':
        return future, future.cancel
    if completer == 'thread':
        return future, lambda: run_in_native_thread(future.set_result, True)
    raise AssertionError(completer)


def check_effect(effect, ctx, future):
    kind = effect[0]
    if kind == 'added at once':
        assert effect[1] == ['added'] and effect[2] is None
    elif kind == 'added to other':
        assert effect[1] == []          # other is still pending
        ctx.other.set_result('later')
        assert effect[1] == ['added']
    elif kind == 'cancelled other':
        assert effect[1] is True
        assert ctx.other.cancelled()
    elif kind == 'cancelled self':
        assert effect[1] is False
        assert future.cancelled() == (future.exception(timeout=0).__class__ is Cancelled)
    elif kind == 'submitted':
        assert effect[1].result(timeout=TIMEOUT) == 1024
    elif kind == 'removed self':
        assert effect[1] == [None, None]
    elif kind == 'waited':
        assert effect[1:] == (2, 0, 1)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize('completer',
                         ['set_result', 'cancel', 'thread', 'fiber_pool', 'thread_pool'])
@pytest.mark.parametrize('action', list(ACTIONS))
def test_reentrant_callback(action, completer):
    ctx = Context()
    try:
        future, complete = make_future(completer, ctx)
        order = []
        future.add_done_callback(order.append, 'before')
        ctx.handle = future.add_done_callback(
            lambda: (order.append('action'), ACTIONS[action](future, ctx)))
        future.add_done_callback(order.append, 'after')
        # Callbacks run in the order they were added: once this last one ran,
        # so did the others, in whatever thread completed the future.
        last = Future()
        future.add_done_callback(last.set_result, None)
        complete()
        last.result(timeout=TIMEOUT)
        assert order == ['before', 'action', 'after']
        assert len(ctx.effects) == 1
        check_effect(ctx.effects[0], ctx, future)
        assert future._callback_count() == 0
        if action not in ('cancel_other', 'add_other'):
            ctx.other.set_result('untouched')
        assert ctx.other_calls == ['other']
    finally:
        ctx.close()
