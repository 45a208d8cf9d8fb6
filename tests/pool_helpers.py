"""Shared helpers of the pool tests.

``Kind`` describes one pool class to the parametrised suite: how to make a
pool, which event a job of that pool can block on, and whether a running job
can be cancelled. ``Tracker`` records which jobs started, finished or were
cancelled and how many ran at once; a test waits on it for *n* starts instead
of sleeping. ``Gate`` catches jobs of other processes running: a :func:`hold`
job reports its process id to it and blocks until the test releases it. Pools come from the plugin's ``pool_factory`` fixture, which
closes every pool it made: ``pool_factory(kind, ...)`` works, a Kind being a
pool factory too.

Fiber jobs block on ``gevent.event.Event``; thread jobs on ``threading.Event``
(these tests run without monkey patching, so that is a real OS event). A
greenlet of the main hub that waits on a ``threading.Event`` blocks the hub
for that time, which is harmless for thread jobs: they need no hub to run.
"""

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import gevent
import gevent.event
import gevent.socket
import pytest

from gruvi_gevent import Cancelled, FiberPool, Future, ThreadPool, Timeout
from gruvi_gevent.testing import DEFAULT_TIMEOUT as TIMEOUT


class Kind:
    """One pool class, as the parametrised suite sees it."""

    def __init__(self, name, cls, event_class, cancels_running):
        self.name = name
        self.cls = cls
        self.event_class = event_class
        self.cancels_running = cancels_running

    def __repr__(self):
        return self.name

    def __call__(self, *args, **kwargs):
        """A new pool of this kind."""
        return self.cls(*args, **kwargs)

    def event(self):
        """An event that a job of this pool can block on, and the test can set."""
        return self.event_class()

    def quick_class(self, idle_timeout):
        """A subclass whose idle workers retire after *idle_timeout* seconds."""
        return type('Quick' + self.cls.__name__, (self.cls,), {'idle_timeout': idle_timeout})


FIBER = Kind('fiber', FiberPool, gevent.event.Event, cancels_running=True)
THREAD = Kind('thread', ThreadPool, threading.Event, cancels_running=False)
KINDS = [pytest.param(FIBER, id='fiber'), pytest.param(THREAD, id='thread')]


class Tracker:
    """Records what jobs did; safe for fiber and thread jobs alike."""

    def __init__(self, kind):
        self.kind = kind
        self.lock = threading.Lock()    # held for a few lines, never across a switch
        self.active = 0
        self.peak = 0
        self.started = []
        self.finished = []
        self.cancelled = []
        self.idents = []
        self._waits = []                # (count, event) for wait_started

    def start(self, key):
        with self.lock:
            self.started.append(key)
            self.active += 1
            self.peak = max(self.peak, self.active)
            ready = [event for count, event in self._waits if len(self.started) >= count]
        for event in ready:
            event.set()

    def stop(self, key, cancelled=False):
        with self.lock:
            self.active -= 1
            (self.cancelled if cancelled else self.finished).append(key)

    def wait_started(self, count, timeout=TIMEOUT):
        """Wait until *count* jobs have started; return whether they did in time."""
        event = self.kind.event()
        with self.lock:
            if len(self.started) >= count:
                return True
            self._waits.append((count, event))
        return event.wait(timeout)

    def gated(self, gate):
        """A job ``job(key, value=None)`` that starts, blocks on *gate*, and returns *value*."""
        def job(key, value=None):
            self.start(key)
            try:
                if not gate.wait(TIMEOUT):
                    raise AssertionError('gate of job %r never opened' % (key,))
            except Cancelled:
                self.stop(key, cancelled=True)
                raise
            self.stop(key)
            return key if value is None else value
        return job

    @contextlib.contextmanager
    def all_running(self, pool, count, message='the pool did not run the jobs at once'):
        """Submit *count* gated jobs to *pool* and hold them, all started, while
        the ``with`` body runs; then release them. The list the ``with`` gives
        gets their results afterwards: 0 .. count-1 when all is well."""
        gate = self.kind.event()
        futures = [pool.submit(self.gated(gate), i) for i in range(count)]
        results = []
        try:
            assert self.wait_started(count), message
            yield results
        finally:
            gate.set()
        results.extend(future.result(timeout=TIMEOUT) for future in futures)

    def assert_stopped(self, keys, what):
        """Check that exactly *keys* started, and that each was cancelled
        (pools that cancel running jobs) or finished (those that cannot)."""
        assert sorted(self.started) == keys, 'a pending call ran after the %s' % what
        if self.kind.cancels_running:
            assert sorted(self.cancelled) == keys
        else:
            assert sorted(self.finished) == keys

    def quick(self):
        """A job ``job(key)`` that records itself and returns *key* at once."""
        def job(key):
            self.start(key)
            self.stop(key)
            return key
        return job


class Countdown:
    """Counts arrivals from any thread; ``wait()`` parks only the calling greenlet.

    Built on the library's Future, whose cross-thread wake-ups have tests of
    their own: a greenlet waiting here leaves the hub free to run others.
    """

    def __init__(self, count):
        self.count = count
        self.arrived = 0
        self.lock = threading.Lock()
        self.future = Future()

    def arrive(self):
        with self.lock:
            self.arrived += 1
            done = self.arrived >= self.count
        if done:
            self.future.set_result(None)

    def wait(self, timeout=TIMEOUT):
        self.future.result(timeout=timeout)
        return True


class Gate:
    """Jobs of :func:`hold` connect here; the test learns their pids and releases them."""

    def __init__(self, path):
        self.address = str(path)
        self.listener = gevent.socket.socket(socket.AF_UNIX)
        self.listener.bind(self.address)
        self.listener.listen(16)
        self.held = []

    def arrive(self, timeout=TIMEOUT):
        """Wait for the next job to report; return its worker's pid."""
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        conn.settimeout(timeout)
        pid = int(conn.makefile('rb').readline())
        self.held.append(conn)
        return pid

    def release_all(self):
        for conn in self.held:
            conn.close()
        self.held.clear()

    def close(self):
        self.release_all()
        self.listener.close()


def hold(address, value=None):
    """A job: report this process's id at *address*, wait for the word, return *value*."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(address)
        sock.sendall(b'%d\n' % os.getpid())
        sock.recv(1)
    return value


def busy_pool(kind, pool_factory):
    """A pool of one worker running a job held by a gate: (pool, gate, future)."""
    pool = pool_factory(kind, 1)
    tracker = Tracker(kind)
    gate = kind.event()
    future = pool.submit(tracker.gated(gate), 'held')
    assert tracker.wait_started(1)
    return pool, gate, future


def ticker(ticks, enough, count=5):
    """A greenlet body: tick on the hub; set *enough* after *count* ticks."""
    while True:
        gevent.sleep(0.001)
        ticks.append(None)
        if len(ticks) >= count:
            enough.set()


def assert_hub_ticks(count=5):
    """Check that the hub serves a ticker greenlet *count* times now: nothing blocks it."""
    ticks, enough = [], gevent.event.Event()
    tick = gevent.spawn(ticker, ticks, enough, count)
    try:
        assert enough.wait(TIMEOUT)
    finally:
        tick.kill()


def wait_until(predicate, timeout=TIMEOUT, interval=0.01):
    """Poll *predicate* until it is true (for time-based behaviour only)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(interval)
    return True


@pytest.fixture
def hub_errors(monkeypatch):
    """Every error that reaches the main hub's ``handle_error`` during the test."""
    hub = gevent.get_hub()
    seen = []
    original = hub.handle_error

    def handle_error(context, type, value, tb):
        seen.append(value)
        return original(context, type, value, tb)

    monkeypatch.setattr(hub, 'handle_error', handle_error)
    return seen


def run_python(code, timeout=60):
    """Run *code* in a fresh interpreter; return the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], timeout=timeout,
                          capture_output=True, text=True)


# A child that hangs dumps the stacks of its threads and exits after this long.
WATCHDOG = 20

_WATCHDOG_PRELUDE = '''\
import faulthandler, sys
faulthandler.dump_traceback_later(%d, exit=True, file=sys.__stderr__)
''' % WATCHDOG


def check_python(code, timeout=60):
    """Run *code* in a fresh interpreter under a watchdog; return its output's words.

    The child must exit with status 0; a child that hangs dumps its stacks
    and fails after ``WATCHDOG`` seconds instead of stalling the suite.
    """
    result = run_python(_WATCHDOG_PRELUDE + textwrap.dedent(code), timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result.stdout.split()


def square(x):
    return x * x


def check_backpressure_of(pool, gate):
    """Backpressure of a pool over other processes or an engine (maxsize 1,
    max_queued 1, a short queue_timeout): a held job and a queued one fill
    it; a submit() times out, and a submitting greenlet parks until a place
    frees; stats() counts what waits and what ran; map() runs every call."""
    held = pool.submit(hold, gate.address, 'held')
    gate.arrive()
    queued = pool.submit(square, 4)
    stats = pool.stats()
    assert (stats.running, stats.queued) == (1, 1), stats
    with pytest.raises(Timeout):
        pool.submit(square, 5)
    later = gevent.spawn(pool.submit, square, 6)
    gevent.sleep(0)         # runs it until it parks for a place
    assert not later.ready()
    gate.release_all()
    assert (held.result(TIMEOUT), queued.result(TIMEOUT)) == ('held', 16)
    assert later.get(timeout=TIMEOUT).result(TIMEOUT) == 36
    pool.join()
    stats = pool.stats()
    assert (stats.queued, stats.running, stats.completed, stats.failed) == (0, 0, 3, 0), stats
    # map() feeds its calls in as places free up.
    assert list(pool.map(square, range(6), timeout=TIMEOUT)) == [0, 1, 4, 9, 16, 25]
    assert pool.stats().completed == 9
