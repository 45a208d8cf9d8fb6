"""A pytest plugin for tests of code that uses gruvi_gevent (or gevent).

Installing the package enables it (through the ``pytest11`` entry point;
``-p no:gruvi_gevent`` disables it). Loading it imports gevent and the library
(neither monkey-patches anything, and the library takes the original
threading primitives it needs, so a ``conftest.py`` may still call
``gevent.monkey.patch_all()``); tests that use none of its markers and
fixtures pay nothing else.

Fixtures
    ``fiber_pool``, ``thread_pool``
        A fresh :class:`~gruvi_gevent.FiberPool` / :class:`~gruvi_gevent.ThreadPool`
        for the test, closed after it (a pool that cannot close within
        :data:`POOL_CLOSE_TIMEOUT` seconds, because a job still runs, fails the
        test at teardown). Constructor arguments come through indirect
        parametrization: ``@pytest.mark.parametrize('fiber_pool', [{'maxsize': 2}],
        indirect=True)``.
    ``pool_factory``
        A function ``make(cls, *args, **kwargs)`` that makes a pool of any class
        and closes it after the test, the same way.
    ``no_leaks``
        The same as the ``no_leaks`` marker below, for those who prefer a fixture.

Markers
    ``@pytest.mark.gevent_timeout(seconds=10.0)``
        Run the test's body in a greenlet of its own with a hard timeout. If the
        body has not finished after *seconds*, its greenlet is killed (so its
        ``finally`` blocks run) and the test fails with a
        :class:`~gruvi_gevent.Timeout` that shows where the body was stuck.
        Fixtures are set up and torn down in the main greenlet as usual. A body
        that never reaches a switchpoint cannot be stopped this way; keep
        ``pytest-timeout`` as the last resort. May be applied to a class or a
        module (``pytestmark``).
    ``@pytest.mark.no_leaks(grace=1.0)``
        Fail a test that leaves something behind: gevent greenlets still alive,
        native threads still running Python code (pool threads among them), or
        done callbacks still registered on pending :class:`~gruvi_gevent.Future`
        objects (and on the counting waitables of :mod:`gruvi_gevent.testing`).
        What exists after the test's fixtures are set up is compared with what
        exists after they are torn down, so fixtures may own greenlets and
        threads. Things found left over get up to *grace* seconds to go away:
        the check joins the greenlets and the ``threading`` threads themselves;
        pool threads (started below ``threading``) and callbacks offer nothing
        to wait on, so for those it naps briefly and looks again. A leak is
        reported as an error at teardown, naming each leftover (with the stack
        of each greenlet and thread). A test that failed already is not checked
        again. Opt-in, because the check walks every object in the process.
"""

import functools
import gc
import inspect
import sys
import threading
import traceback
from collections.abc import Callable, Generator, Iterator
from time import monotonic
from typing import Any, TypeVar

import gevent
import pytest

from . import FiberPool, Future, PoolBase, ThreadPool, Timeout
from .blocking import process_pool_threads
from ._spawner import spawner_ident
from .testing import CountingProxy, RecordingWaitable, run_in_greenlet

__all__ = ['POOL_CLOSE_TIMEOUT', 'LEAK_GRACE', 'GEVENT_TIMEOUT']

_P = TypeVar('_P', bound=PoolBase)

#: Seconds a pool fixture waits for its pool to close after the test.
POOL_CLOSE_TIMEOUT = 10.0

#: Seconds, by default, that leftovers get to go away before ``no_leaks`` reports them.
LEAK_GRACE = 1.0

#: Seconds, by default, of ``@pytest.mark.gevent_timeout``.
GEVENT_TIMEOUT = 10.0

# The waitables of the kit that count their live registrations.
_COUNTING = (RecordingWaitable, CountingProxy)

_leak_key: 'pytest.StashKey[tuple[_Snapshot, float]]' = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers (they work under ``--strict-markers`` too)."""
    config.addinivalue_line(
        'markers', 'gevent_timeout(seconds=%s): run the test body in a greenlet of its '
        'own and fail it if it has not finished after that many seconds' % GEVENT_TIMEOUT)
    config.addinivalue_line(
        'markers', 'no_leaks(grace=%s): fail a test that leaves greenlets, threads or '
        'done callbacks behind' % LEAK_GRACE)


# Pools.

def _close_pools(pools: list[PoolBase]) -> None:
    """Close every pool, failing the test if one takes more than POOL_CLOSE_TIMEOUT seconds."""
    stuck = []
    for pool in pools:
        try:
            run_in_greenlet(pool.close, timeout=POOL_CLOSE_TIMEOUT)
        except Timeout as exc:
            stuck.append('%r did not close within %s seconds after the test: a job is '
                         'still running.\n%s' % (pool, POOL_CLOSE_TIMEOUT, exc))
    if stuck:
        pytest.fail('\n'.join(stuck), pytrace=False)


def _pool_fixture(request: pytest.FixtureRequest, kind: type[_P]) -> Iterator[_P]:
    options = dict(getattr(request, 'param', None) or {})
    options.setdefault('name', '%s[%s]' % (kind.__name__, request.node.name))
    pool = kind(**options)
    try:
        yield pool
    finally:
        _close_pools([pool])


@pytest.fixture
def pool_factory() -> Iterator[Callable[..., Any]]:
    """``make(cls, *args, **kwargs)``: a pool of any class, closed after the test.

    *Switchpoint* at teardown. ``make`` returns ``cls(*args, **kwargs)`` (any
    callable that makes a pool will do, a subclass of your own included); for
    tests that need several pools, or pools the indirect parametrization of
    ``fiber_pool`` and ``thread_pool`` cannot describe.
    """
    pools: list[PoolBase] = []

    def make(cls: Callable[..., _P], *args: Any, **kwargs: Any) -> _P:
        pool = cls(*args, **kwargs)
        pools.append(pool)
        return pool

    try:
        yield make
    finally:
        _close_pools(pools)


@pytest.fixture
def fiber_pool(request: pytest.FixtureRequest) -> Iterator[FiberPool]:
    """A fresh FiberPool for this test, closed after it.

    *Switchpoint* at teardown (the close waits for running jobs). Options for
    the constructor come from indirect parametrization (a dict); the name
    defaults to ``FiberPool[<test name>]``.
    """
    yield from _pool_fixture(request, FiberPool)


@pytest.fixture
def thread_pool(request: pytest.FixtureRequest) -> Iterator[ThreadPool]:
    """A fresh ThreadPool for this test, closed after it.

    *Switchpoint* at teardown (the close waits for running jobs and for the
    threads to exit). Options for the constructor come from indirect
    parametrization (a dict); the name defaults to ``ThreadPool[<test name>]``.
    """
    yield from _pool_fixture(request, ThreadPool)


# The hard timeout.

def _timeout_of(marker: pytest.Mark) -> float:
    seconds = marker.kwargs.get('seconds', marker.args[0] if marker.args else GEVENT_TIMEOUT)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        pytest.fail('gevent_timeout wants a number of seconds > 0, got %r' % (seconds,),
                    pytrace=False)
    return float(seconds)


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
    """Run the body of a test marked ``gevent_timeout`` through run_in_greenlet()."""
    marker = pyfuncitem.get_closest_marker('gevent_timeout')
    if marker is None:
        yield
        return
    original = pyfuncitem.obj
    if inspect.iscoroutinefunction(original):
        yield       # pytest reports async tests it cannot run
        return
    seconds = _timeout_of(marker)

    @functools.wraps(original)
    def body(**kwargs: Any) -> Any:
        __tracebackhide__ = True
        return run_in_greenlet(functools.partial(original, **kwargs), timeout=seconds)

    pyfuncitem.obj = body
    try:
        yield
    finally:
        pyfuncitem.obj = original


# The leak check.

def _wants_leak_check(item: pytest.Item) -> bool:
    return item.get_closest_marker('no_leaks') is not None or \
        'no_leaks' in getattr(item, 'fixturenames', ())


@pytest.fixture
def no_leaks() -> None:
    """Fail this test if it leaves greenlets, threads or callbacks behind.

    The same as ``@pytest.mark.no_leaks``; the check itself runs around the
    test's body and after the teardown of its fixtures.
    """


def _grace_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker('no_leaks')
    if marker is None:
        return LEAK_GRACE
    grace = marker.kwargs.get('grace', marker.args[0] if marker.args else LEAK_GRACE)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        pytest.fail('no_leaks wants a grace >= 0 in seconds, got %r' % (grace,),
                    pytrace=False)
    return float(grace)


def _callback_count(obj: object) -> int:
    """The number of live registrations on a pending Future or counting waitable."""
    if isinstance(obj, Future):
        if obj.done():
            return 0
        callbacks = obj._callbacks
        if callbacks is None:
            return 0
        return len(callbacks) if type(callbacks) is dict else 1
    if isinstance(obj, _COUNTING):
        return obj.live_count
    return 0


class _Snapshot:
    """What lives now: gevent greenlets, threads running Python code, callbacks."""

    def __init__(self) -> None:
        self.greenlets: dict[int, Any] = {}     # id -> greenlet
        self.callbacks: dict[int, Any] = {}     # id -> (object, count)
        for obj in gc.get_objects():
            if isinstance(obj, gevent.Greenlet):
                if obj:         # started (or scheduled to) and not dead
                    self.greenlets[id(obj)] = obj
            elif isinstance(obj, (Future, *_COUNTING)):
                count = _callback_count(obj)
                if count:
                    self.callbacks[id(obj)] = (obj, count)
        # The spawner thread that starts pool threads lives for the whole
        # process, like a hub, and so do the IO and CPU pools' threads: they
        # are no leak of the test that started them.
        self.threads = set(sys._current_frames()) - {spawner_ident()} - \
            process_pool_threads()

    def forget_objects(self) -> None:
        """Keep only ids and counts, so that the snapshot holds nothing alive."""
        self.greenlets = dict.fromkeys(self.greenlets)
        self.callbacks = {key: count for key, (obj, count) in self.callbacks.items()}

    def leftovers(self, before: '_Snapshot'
                  ) -> tuple[list[Any], list[int], list[tuple[object, int]]]:
        """Return (greenlets, thread idents, (object, count) pairs) new since *before*."""
        greenlets = [g for key, g in self.greenlets.items() if key not in before.greenlets]
        threads = sorted(self.threads - before.threads)
        callbacks = [(obj, count) for key, (obj, count) in self.callbacks.items()
                     if count > before.callbacks.get(key, 0)]
        return greenlets, threads, callbacks


def _settle(greenlets: list[Any], threads: list[int], deadline: float, rounds: int) -> None:
    """Give leftovers until *deadline* to go away.

    Greenlets and ``threading`` threads are joined: the check waits on them
    themselves. Threads started otherwise (pools start theirs below
    ``threading``) and callbacks that code still unwinding will remove offer
    nothing to wait on; for those the check naps briefly (a millisecond,
    doubling each round) and looks again.
    """
    if greenlets:
        # Even past the deadline the hub gets one turn, so a greenlet that was
        # only spawned has started (and can be described by where it waits).
        gevent.joinall(greenlets, timeout=max(0.0, deadline - monotonic()))
    by_ident = {thread.ident: thread for thread in threading.enumerate()}
    for ident in threads:
        thread = by_ident.get(ident)
        remaining = deadline - monotonic()
        # Pool threads show up as dummies (named after their pool): not joinable.
        if thread is not None and thread is not threading.current_thread() and \
                not isinstance(thread, threading._DummyThread) and remaining > 0:
            thread.join(remaining)
    remaining = deadline - monotonic()
    gevent.sleep(max(0.0, min(0.001 * 2 ** rounds, remaining)))


def _describe(greenlets: list[Any], threads: list[int],
              callbacks: list[tuple[object, int]]) -> str:
    frames = sys._current_frames()
    lines = ['the test left things behind (no_leaks):']
    for greenlet in greenlets:
        lines.append('  greenlet %r, at:' % (greenlet,))
        frame = getattr(greenlet, 'gr_frame', None)
        if frame is None:
            lines.append('    (no Python frame: parked in compiled code)')
        else:
            lines.extend('    ' + line for line in
                         ''.join(traceback.format_stack(frame)).rstrip().splitlines())
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident in threads:
        lines.append('  thread %d%s, at:' % (ident, ' (%s)' % names[ident] if ident in names
                                              else ''))
        frame = frames.get(ident)
        if frame is not None:
            lines.extend('    ' + line for line in
                         ''.join(traceback.format_stack(frame)).rstrip().splitlines())
    for obj, count in callbacks:
        lines.append('  %d done callback(s) still registered on %r' % (count, obj))
    return '\n'.join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    """Take the leak check's first snapshot, after setup, before the body."""
    if not _wants_leak_check(item):
        yield
        return
    grace = _grace_of(item)
    snapshot = _Snapshot()
    snapshot.forget_objects()
    outcome = yield
    if outcome.excinfo is None:
        item.stash[_leak_key] = (snapshot, grace)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Compare with the first snapshot once the test's fixtures are torn down.

    ``trylast``: pytest's own implementation, which tears the fixtures down,
    runs first.
    """
    entry = item.stash.get(_leak_key, None)
    if entry is None:
        return
    del item.stash[_leak_key]
    before, grace = entry
    deadline = monotonic() + grace
    rounds = 0
    while True:
        greenlets, threads, callbacks = _Snapshot().leftovers(before)
        if not (greenlets or threads or callbacks):
            break
        if rounds and monotonic() >= deadline:     # settled at least once
            break
        _settle(greenlets, threads, deadline, rounds)
        rounds += 1
        del greenlets, threads, callbacks
    if greenlets or threads or callbacks:
        pytest.fail(_describe(greenlets, threads, callbacks), pytrace=False)
