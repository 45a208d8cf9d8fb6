"""Adapters: gevent's objects, concurrent.futures and third-party types as IWaitable."""

import concurrent.futures
import functools
import logging
import subprocess
import sys
import threading

import gevent
import gevent.event
import gevent.subprocess
import pytest
from zope.interface import implementedBy, implementer
from zope.interface.verify import verifyObject

from gruvi_gevent import Future, as_completed, wait
from gruvi_gevent.adapters import registry
from gruvi_gevent.interfaces import IWaitable

pytestmark = pytest.mark.usefixtures('no_parked_waiters')


# A third-party type with a notification API of its own, and its adapter.

class Beacon:
    """Something that lights up once and tells its watchers; not an IWaitable."""

    def __init__(self):
        self.lit = False
        self.watchers = []

    def watch(self, func):
        self.watchers.append(func)

    def unwatch(self, func):
        if func in self.watchers:
            self.watchers.remove(func)

    def light(self):
        self.lit = True
        watchers, self.watchers = self.watchers, []
        for func in watchers:
            func()


@implementer(IWaitable)
class BeaconWaitable:
    def __init__(self, beacon):
        self.beacon = beacon

    def add_done_callback(self, callback, *args):
        if self.beacon.lit:
            callback(*args)
            return None
        handle = functools.partial(callback, *args)
        self.beacon.watch(handle)
        return handle

    def remove_done_callback(self, handle):
        if handle is not None:
            self.beacon.unwatch(handle)


@pytest.fixture
def beacon_adapter():
    registry.register([implementedBy(Beacon)], IWaitable, '', BeaconWaitable)
    yield
    registry.unregister([implementedBy(Beacon)], IWaitable, '', BeaconWaitable)


@pytest.fixture
def executor():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        yield pool


# One entry per adapted type: make a pending object, make it ready, and count
# the callbacks linked to it.

class Kind:
    def __init__(self, name, make, complete, links):
        self.name = name
        self.make = make            # (executor) -> (object, completer)
        self.complete = complete    # (completer) -> None: makes the object ready
        self.links = links          # (object) -> the number of linked callbacks


def _greenlet(executor):
    gate = gevent.event.Event()
    return gevent.spawn(gate.wait, 10), gate


def _gated_popen(executor):
    process = gevent.subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                                      stdin=subprocess.PIPE)
    return process, process


def _close_stdin(process):
    process.stdin.close()


def _executor_future(executor):
    gate = threading.Event()
    return executor.submit(gate.wait, 10), gate


def _beacon(executor):
    beacon = Beacon()
    return beacon, beacon


KINDS = [
    Kind('Greenlet', _greenlet, lambda gate: gate.set(), lambda g: g.has_links()),
    Kind('Event', lambda ex: (lambda e: (e, e))(gevent.event.Event()),
         lambda event: event.set(), lambda event: event.linkcount()),
    Kind('AsyncResult-value', lambda ex: (lambda r: (r, r))(gevent.event.AsyncResult()),
         lambda result: result.set('value'), lambda result: result.linkcount()),
    Kind('AsyncResult-exception', lambda ex: (lambda r: (r, r))(gevent.event.AsyncResult()),
         lambda result: result.set_exception(KeyError('failed')),
         lambda result: result.linkcount()),
    Kind('Popen', _gated_popen, _close_stdin, lambda process: process.result.linkcount()),
    Kind('concurrent-Future', _executor_future, lambda gate: gate.set(),
         lambda future: len(future._done_callbacks)),
    Kind('third-party', _beacon, lambda beacon: beacon.light(),
         lambda beacon: len(beacon.watchers)),
]


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def kind(request, executor, beacon_adapter):
    made = []

    def make():
        obj, completer = request.param.make(executor)
        made.append((obj, completer))
        return obj, completer

    request.param.new = make
    yield request.param
    # Let everything that was made finish, so that nothing outlives the test.
    for obj, completer in made:
        request.param.complete(completer)
    for obj, completer in made:
        if isinstance(obj, gevent.subprocess.Popen):
            obj.wait(10)
        elif isinstance(obj, gevent.Greenlet):
            obj.join(10)
        elif isinstance(obj, concurrent.futures.Future):
            obj.result(10)


def signal_future():
    """A Future that a callback completes with its arguments (from any thread)."""
    signal = Future()
    return signal, lambda *args: signal.set_result(args)


def test_adapted_object_provides_iwaitable(kind):
    obj, _ = kind.new()
    waitable = IWaitable(obj)
    assert waitable is not obj
    assert verifyObject(IWaitable, waitable)


def test_callback_is_called_with_args_when_ready(kind):
    obj, completer = kind.new()
    signal, callback = signal_future()
    handle = IWaitable(obj).add_done_callback(callback, 'a', 1)
    assert handle is not None
    assert not signal.done()
    gevent.spawn(kind.complete, completer)
    assert signal.result(timeout=10) == ('a', 1)


def test_callback_on_ready_object_is_called_at_once(kind):
    obj, completer = kind.new()
    kind.complete(completer)
    assert wait([obj], timeout=10) == ([obj], [])
    calls = []
    assert IWaitable(obj).add_done_callback(calls.append, 'now') is None
    assert calls == ['now']


def test_removed_callback_is_not_called(kind):
    obj, completer = kind.new()
    waitable = IWaitable(obj)
    before = kind.links(obj)
    calls = []
    handle = waitable.add_done_callback(calls.append, 'removed')
    assert kind.links(obj) == before + 1
    waitable.remove_done_callback(handle)
    assert kind.links(obj) == before
    waitable.remove_done_callback(handle)       # twice is fine
    waitable.remove_done_callback(None)         # and None
    signal, callback = signal_future()
    waitable.add_done_callback(callback)
    gevent.spawn(kind.complete, completer)
    signal.result(timeout=10)
    gevent.idle()
    assert calls == []


def test_callback_that_removes_itself_does_not_skip_the_next(kind):
    obj, completer = kind.new()
    waitable = IWaitable(obj)
    calls = []
    handles = []

    def first():
        calls.append('first')
        waitable.remove_done_callback(handles[0])

    handles.append(waitable.add_done_callback(first))
    signal, callback = signal_future()
    waitable.add_done_callback(callback)
    gevent.spawn(kind.complete, completer)
    signal.result(timeout=10)
    assert calls == ['first']


def test_wait_returns_the_object_itself(kind):
    obj, completer = kind.new()
    other = Future()
    gevent.spawn(kind.complete, completer)
    done, pending = wait([other, obj], count=1, timeout=10)
    assert done == [obj] and done[0] is obj
    assert pending == [other] and pending[0] is other
    assert list(as_completed([obj], timeout=10)) == [obj]


def test_wait_timeout_unlinks(kind):
    obj, _ = kind.new()
    before = kind.links(obj)
    assert wait([obj], timeout=0.01) == ([], [obj])
    assert kind.links(obj) == before


def test_killed_waiter_unlinks(kind):
    obj, _ = kind.new()
    before = kind.links(obj)
    waiting = gevent.spawn(wait, [obj])
    gevent.idle()
    assert kind.links(obj) == before + 1
    gevent.kill(waiting)
    waiting.join(timeout=10)
    assert waiting.dead
    assert kind.links(obj) == before


def test_unregistered_type_is_not_waitable():
    class Unknown(Beacon):
        pass

    with pytest.raises(TypeError):
        IWaitable(Beacon())     # not registered outside the fixture
    with pytest.raises(TypeError) as info:
        wait([Beacon()])
    assert 'Beacon' in str(info.value)
    with pytest.raises(TypeError):
        IWaitable(Unknown())


def test_registration_covers_subclasses(beacon_adapter):
    class Subclass(Beacon):
        pass

    beacon = Subclass()
    assert isinstance(IWaitable(beacon), BeaconWaitable)
    gevent.spawn(beacon.light)
    assert wait([beacon], timeout=10) == ([beacon], [])


# Type-specific behaviour.

def test_greenlet_killed_is_ready():
    waiting = gevent.spawn(gevent.event.Event().wait)
    gevent.spawn(waiting.kill)
    assert wait([waiting], timeout=10) == ([waiting], [])


def test_greenlet_not_started_is_not_ready():
    greenlet = gevent.Greenlet(lambda: 'ran')
    assert wait([greenlet], timeout=0.01) == ([], [greenlet])
    greenlet.start()
    assert wait([greenlet], timeout=10) == ([greenlet], [])
    assert greenlet.value == 'ran'


def test_event_cleared_again_is_not_ready():
    event = gevent.event.Event()
    event.set()
    event.clear()
    assert wait([event], timeout=0.01) == ([], [event])


def test_popen_ready_when_child_exited():
    process = gevent.subprocess.Popen([sys.executable, '-c', 'pass'])
    try:
        assert wait([process], timeout=30) == ([process], [])
        assert process.returncode == 0
    finally:
        process.wait(10)


def test_concurrent_future_completed_by_executor_thread_no_timeout(executor):
    gate = threading.Event()
    future = executor.submit(lambda: gate.wait(10) and 'from thread')
    gevent.spawn(gate.set)      # runs once the waiter is parked
    assert wait([future]) == ([future], [])
    assert future.result() == 'from thread'


def test_concurrent_future_callback_runs_in_the_completing_thread(executor):
    gate = threading.Event()
    future = executor.submit(gate.wait, 10)
    seen = []
    signal = Future()

    def callback():
        seen.append(threading.get_ident())
        signal.set_result(None)

    IWaitable(future).add_done_callback(callback)
    gate.set()
    signal.result(timeout=10)
    assert seen and seen[0] != threading.get_ident()


def test_concurrent_future_cancelled_is_ready():
    future = concurrent.futures.Future()
    gevent.spawn(future.cancel)
    assert wait([future], timeout=10) == ([future], [])


def test_concurrent_future_waited_from_a_native_thread(executor):
    gate = threading.Event()
    future = executor.submit(gate.wait, 10)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(wait([future], timeout=10)))
    thread.start()
    gate.set()
    thread.join(10)
    assert outcome == [([future], [])]


def test_raising_callback_on_adapted_object_is_logged(caplog):
    event = gevent.event.Event()
    waitable = IWaitable(event)
    waitable.add_done_callback(lambda: 1 / 0)
    signal, callback = signal_future()
    waitable.add_done_callback(callback)
    with caplog.at_level(logging.ERROR, logger='gruvi_gevent'):
        event.set()
        signal.result(timeout=10)
    assert any(isinstance(r.exc_info[1], ZeroDivisionError) for r in caplog.records
               if r.name == 'gruvi_gevent')


# All of them at once.

def test_wait_on_a_mix_of_everything(executor, beacon_adapter, counting):
    future = Future()
    greenlet_gate = gevent.event.Event()
    greenlet = gevent.spawn(greenlet_gate.wait, 10)
    event = gevent.event.Event()
    result = gevent.event.AsyncResult()
    failed = gevent.event.AsyncResult()
    process = gevent.subprocess.Popen([sys.executable, '-c', 'pass'])
    thread_gate = threading.Event()
    executor_future = executor.submit(thread_gate.wait, 10)
    beacon = Beacon()
    waitable = counting()
    objects = [future, greenlet, event, result, failed, process, executor_future, beacon,
               waitable]

    def producer():
        future.set_result(None)
        greenlet_gate.set()
        event.set()
        result.set(1)
        failed.set_exception(KeyError('x'))
        thread_gate.set()
        beacon.light()
        waitable.make_ready()

    try:
        gevent.spawn(producer)
        done, pending = wait(objects, timeout=30)
        assert pending == []
        assert sorted(map(id, done)) == sorted(map(id, objects))
        assert waitable.live_count == 0
    finally:
        process.wait(10)


def test_as_completed_on_a_mix(executor, beacon_adapter):
    event = gevent.event.Event()
    beacon = Beacon()
    gate = threading.Event()
    executor_future = executor.submit(gate.wait, 10)
    future = Future()

    def producer():
        beacon.light()
        event.set()
        future.set_result(None)
        gate.set()

    gevent.spawn(producer)
    got = list(as_completed([executor_future, future, event, beacon], timeout=10))
    assert got[0] is beacon and got[1] is future     # ready at once, in order
    assert sorted(map(id, got)) == sorted(map(id, [executor_future, future, event, beacon]))
