"""Properties of wait() and as_completed(), over random mixes of waitables.

Hypothesis draws a scenario: a few objects (Futures, gevent Events and
AsyncResults, the kit's counting waitable, undeclared), each ready before the
call, completed later in a random order, or never; a list of entries that
refers to them with duplicates; a count and a timeout. Whatever the draw:

* done + pending is exactly the input, as a multiset;
* done is in completion order: the entries ready before the call in input
  order, then the entries of each object as it completes (a prefix of that
  sequence, cut by *count* or by the timeout), and pending is the rest in
  input order;
* no callback is left registered on any object afterwards.

A completer greenlet (or a native thread, for the objects that may be
completed from one) completes the objects while the call waits; it is started
only once the call has registered its callbacks, so the expected order is
well defined. Examples are derandomized and never stored, so runs are stable.
"""

import collections
import threading

import gevent
import gevent.event
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gruvi_gevent import Future, Timeout, as_completed, wait
from gruvi_gevent.testing import DEFAULT_TIMEOUT as TIMEOUT

from latches import UndeclaredWaitable

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def make(kind, number):
    """Return (object, complete) for one object of *kind*."""
    if kind == 'future':
        future = Future()
        how = number % 3
        if how == 0:
            return future, lambda: future.set_result(number)
        if how == 1:
            return future, lambda: future.set_exception(ValueError(number))
        return future, future.cancel
    if kind == 'event':
        event = gevent.event.Event()
        return event, event.set
    if kind == 'asyncresult':
        result = gevent.event.AsyncResult()
        if number % 2:
            return result, lambda: result.set_exception(ValueError(number))
        return result, lambda: result.set(number)
    if kind == 'counting':
        counting = UndeclaredWaitable()
        return counting, counting.make_ready
    raise AssertionError(kind)


def live_callbacks(obj):
    if isinstance(obj, Future):
        return obj._callback_count()
    if isinstance(obj, UndeclaredWaitable):
        return obj.live_count
    return obj.linkcount()


ALL_KINDS = ['future', 'event', 'asyncresult', 'counting']
THREAD_KINDS = ['future', 'counting']   # gevent's objects belong to their hub's thread


@st.composite
def scenarios(draw, kinds):
    nobjects = draw(st.integers(0, 6))
    specs = [(draw(st.sampled_from(kinds)), draw(st.sampled_from(['ready', 'later', 'never'])))
             for _ in range(nobjects)]
    entries = draw(st.lists(st.integers(0, nobjects - 1), max_size=10)) if nobjects else []
    later = [index for index, (_, fate) in enumerate(specs) if fate == 'later']
    order = draw(st.permutations(later))
    count = draw(st.one_of(st.none(), st.integers(0, len(entries))))
    eventually = sum(1 for index in entries if specs[index][1] != 'never')
    wanted = len(entries) if count is None else count
    if eventually >= wanted:
        timeout = draw(st.sampled_from([None, TIMEOUT]))
    else:
        timeout = draw(st.sampled_from([0, 0.001, 0.01]))
    return specs, entries, order, count, timeout


class Scenario:
    """The objects of a drawn scenario, and what the call is expected to return."""

    def __init__(self, specs, entries, order, count, timeout):
        made = [make(kind, number) for number, (kind, _) in enumerate(specs)]
        self.objects = [obj for obj, _ in made]
        self.completers = [complete for _, complete in made]
        for index, (_, fate) in enumerate(specs):
            if fate == 'ready':
                self.completers[index]()
        self.entries = entries
        self.inputs = [self.objects[index] for index in entries]
        self.order = order
        self.count = count
        self.timeout = timeout
        # Entry positions in the order they become ready: those ready at the
        # call in input order, then each later object's entries as it completes.
        ready_now = [pos for pos, index in enumerate(entries) if specs[index][1] == 'ready']
        self.sequence = ready_now + [pos for index in order
                                     for pos, entry in enumerate(entries) if entry == index]
        self.wanted = len(entries) if count is None else count
        self.limited = len(self.sequence) < self.wanted    # only the timeout ends the call
        self.minimum = min(len(ready_now), self.wanted)

    def start_completer(self, in_thread):
        """Complete the 'later' objects in order, from a greenlet or a native thread.

        Started from a greenlet that first runs once the caller has parked,
        that is after every callback was registered.
        """
        done = Future()

        def complete_all(yield_between):
            for index in self.order:
                self.completers[index]()
                if yield_between:
                    gevent.sleep(0)   # deliver gevent's notifications in order
            done.set_result(None)

        if in_thread:
            go = threading.Event()
            threading.Thread(target=lambda: (go.wait(TIMEOUT), complete_all(False)),
                             daemon=True).start()
            gevent.spawn(go.set)
        else:
            gevent.spawn(complete_all, True)
        return done

    def check(self, done, pending):
        # The same objects, as a multiset.
        ids = collections.Counter(map(id, self.inputs))
        assert collections.Counter(map(id, done + pending)) == ids
        # done: a prefix of the completion sequence, as long as it must be.
        size = len(done)
        assert self.minimum <= size <= self.wanted
        if not self.limited:
            assert size == self.wanted
        chosen = self.sequence[:size]
        assert [id(obj) for obj in done] == [id(self.inputs[pos]) for pos in chosen]
        # pending: the rest, in input order.
        rest = [obj for pos, obj in enumerate(self.inputs) if pos not in set(chosen)]
        assert [id(obj) for obj in pending] == [id(obj) for obj in rest]
        self.check_no_callbacks()

    def check_no_callbacks(self):
        for obj in self.objects:
            assert live_callbacks(obj) == 0, 'a callback was left on %r' % (obj,)

    def finish(self, completer):
        """Let the completer finish (it may still run after the call returned)."""
        completer.result(timeout=TIMEOUT)
        self.check_no_callbacks()


@pytest.mark.parametrize('in_thread', [False, True], ids=['greenlet', 'thread'])
def test_wait_properties(in_thread):
    @SETTINGS
    @given(scenarios(THREAD_KINDS if in_thread else ALL_KINDS))
    def check(drawn):
        scenario = Scenario(*drawn)
        completer = scenario.start_completer(in_thread)
        done, pending = wait(scenario.inputs, scenario.count, scenario.timeout)
        scenario.check(done, pending)
        scenario.finish(completer)

    check()


@pytest.mark.parametrize('in_thread', [False, True], ids=['greenlet', 'thread'])
def test_as_completed_properties(in_thread):
    @SETTINGS
    @given(scenarios(THREAD_KINDS if in_thread else ALL_KINDS),
           st.one_of(st.none(), st.integers(1, 10)))
    def check(drawn, stop_after):
        scenario = Scenario(*drawn)
        completer = scenario.start_completer(in_thread)
        generator = as_completed(scenario.inputs, scenario.count, scenario.timeout)
        done = []
        timed_out = False
        try:
            for obj in generator:
                done.append(obj)
                if len(done) == stop_after:
                    break    # the consumer stops early
        except Timeout:
            timed_out = True
        finally:
            generator.close()
        stopped_early = stop_after is not None and len(done) == stop_after < scenario.wanted
        if timed_out:
            assert scenario.limited and len(done) < scenario.wanted
        elif not stopped_early:
            assert len(done) == scenario.wanted
        # done is a prefix of the completion sequence.
        assert [id(obj) for obj in done] == \
            [id(scenario.inputs[pos]) for pos in scenario.sequence[:len(done)]]
        if not stopped_early:
            assert len(done) >= scenario.minimum
        scenario.check_no_callbacks()
        scenario.finish(completer)

    check()
