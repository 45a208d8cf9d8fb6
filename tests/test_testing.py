"""The testing kit (gruvi_gevent.testing) and the pytest plugin (gruvi_gevent.pytest_plugin).

The library's own Future and every adapter pass the conformance kit, as
subclasses of WaitableConformance and through check_waitable(); waitables
broken in one way each fail it; RecordingWaitable and CountingProxy count
what they should; the plugin's fixtures and markers work in a pytest run of
their own (pytester, in a subprocess).
"""

import concurrent.futures
import sys
import threading

import gevent
import gevent.event
import gevent.subprocess
import pytest

from gruvi_gevent import Future, Timeout, as_completed, wait
from gruvi_gevent.interfaces import IWaitable
from gruvi_gevent.testing import DEFAULT_TIMEOUT as TIMEOUT
from gruvi_gevent.testing import (
    CHECKS, THREAD_CHECKS, CountingProxy, RecordingWaitable, WaitableConformance,
    check_add_races_ready, check_already_ready, check_as_completed, check_callbacks_called_once,
    check_foreign_handle, check_interface, check_ready_from_thread,
    check_raising_callback, check_remove, check_remove_after_ready,
    check_remove_releases, check_wait, check_waitable, run_in_greenlet,
    run_in_native_thread, waitable_of)
from gruvi_gevent._wakeup import get_ident

from latches import CallsTwice, UndeclaredWaitable

pytest_plugins = ['pytester']



# The kinds of waitables of the library, each as (make, make_ready, make_ready_from_thread).

def _finish_future(future):
    future.set_result('done')


def _make_greenlet():
    """A greenlet that finishes once its event is set: ready when it has finished."""
    event = gevent.event.Event()
    greenlet = gevent.spawn(event.wait)
    greenlet.finish = event
    return greenlet


def _finish_greenlet(greenlet):
    greenlet.finish.set()


def _make_popen():
    """A child that exits once its stdin is closed: ready when it has exited."""
    return gevent.subprocess.Popen(['cat'], stdin=gevent.subprocess.PIPE,
                                   stdout=gevent.subprocess.DEVNULL)


def _finish_popen(popen):
    popen.stdin.close()


def _set_event(event):
    event.set()


def _set_async_result(result):
    result.set('value')


def _fail_async_result(result):
    result.set_exception(ValueError('failed'))


def _finish_concurrent(future):
    future.set_result('done')


def _make_recording():
    return RecordingWaitable()


def _finish_recording(waitable):
    waitable.make_ready()


def _make_proxy():
    return CountingProxy(Future())


def _finish_proxy(proxy):
    proxy.obj.set_result('done')


KINDS = {
    'Future': (Future, _finish_future, _finish_future),
    'Future-cancel': (Future, Future.cancel, Future.cancel),
    'Greenlet': (_make_greenlet, _finish_greenlet, _finish_greenlet),
    'Event': (gevent.event.Event, _set_event, _set_event),
    'AsyncResult': (gevent.event.AsyncResult, _set_async_result, _set_async_result),
    'AsyncResult-exception': (gevent.event.AsyncResult, _fail_async_result,
                              _fail_async_result),
    'Popen': (_make_popen, _finish_popen, _finish_popen),
    'concurrent.futures.Future': (concurrent.futures.Future, _finish_concurrent,
                                  _finish_concurrent),
    'RecordingWaitable': (_make_recording, _finish_recording, _finish_recording),
    'CountingProxy': (_make_proxy, _finish_proxy, _finish_proxy),
}


# The conformance kit as a base class of tests.

# Rounds of the race check for the library's own waitables, fewer than the
# kit's default: that many are for catching a broken waitable reliably
# (test_conformance.py shows it does), these keep the suite quick.
ROUNDS = 30


class Conformance(WaitableConformance):
    __test__ = False
    race_rounds = ROUNDS

class TestFuture(Conformance):
    def make(self):
        return Future()

    def make_ready(self, future):
        future.set_result('done')

    def make_ready_from_thread(self, future):
        future.set_result('done')


class TestFutureCancelled(Conformance):
    def make(self):
        return Future()

    def make_ready(self, future):
        assert future.cancel()

    make_ready_from_thread = make_ready


class TestGreenlet(Conformance):
    def make(self):
        return _make_greenlet()

    def make_ready(self, greenlet):
        greenlet.finish.set()

    make_ready_from_thread = make_ready


class TestEvent(Conformance):
    def make(self):
        return gevent.event.Event()

    def make_ready(self, event):
        event.set()

    make_ready_from_thread = make_ready


class TestAsyncResult(Conformance):
    def make(self):
        return gevent.event.AsyncResult()

    def make_ready(self, result):
        result.set('value')

    make_ready_from_thread = make_ready


class TestAsyncResultException(Conformance):
    def make(self):
        return gevent.event.AsyncResult()

    def make_ready(self, result):
        result.set_exception(ValueError('failed'))

    make_ready_from_thread = make_ready


class TestPopen(Conformance):
    def make(self):
        return _make_popen()

    def make_ready(self, popen):
        popen.stdin.close()

    make_ready_from_thread = make_ready


class TestConcurrentFuture(Conformance):
    def make(self):
        return concurrent.futures.Future()

    def make_ready(self, future):
        future.set_result('done')

    make_ready_from_thread = make_ready


class TestConcurrentFutureFromExecutor(Conformance):
    """A concurrent future that a real executor thread completes."""

    @pytest.fixture(autouse=True)
    def executor(self):
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
            self.pool = executor
            self.gates = {}
            yield executor

    def make(self):
        gate = threading.Event()        # a native thread blocks on it
        future = self.pool.submit(gate.wait, TIMEOUT)
        self.gates[id(future)] = gate
        return future

    def make_ready(self, future):
        self.gates[id(future)].set()

    make_ready_from_thread = make_ready


class TestRecordingWaitable(Conformance):
    def make(self):
        return RecordingWaitable()

    def make_ready(self, waitable):
        waitable.make_ready()

    make_ready_from_thread = make_ready


class TestCountingProxy(Conformance):
    def make(self):
        return CountingProxy(gevent.event.Event())

    def make_ready(self, proxy):
        proxy.obj.set()

    make_ready_from_thread = make_ready


class TestDuckTypedWaitable(Conformance):
    require_declaration = False

    def make(self):
        return UndeclaredWaitable()

    def make_ready(self, waitable):
        waitable.make_ready()

    make_ready_from_thread = make_ready


def test_base_class_is_not_collected_but_subclasses_are():
    assert WaitableConformance.__test__ is False
    assert TestFuture.__test__ is True

    class _Abstract(WaitableConformance):
        __test__ = False

    class TestConcrete(_Abstract):
        pass

    assert _Abstract.__test__ is False
    assert TestConcrete.__test__ is True


def test_base_class_without_factory_says_so():
    with pytest.raises(NotImplementedError, match='make'):
        TestConcreteWithoutFactory().test_callbacks_called_once()


class TestConcreteWithoutFactory(Conformance):
    __test__ = False


# The conformance kit as plain functions.

@pytest.mark.parametrize('kind', sorted(KINDS))
def test_check_waitable(kind):
    make, make_ready, from_thread = KINDS[kind]
    check_waitable(make, make_ready, from_thread, timeout=TIMEOUT, race_rounds=ROUNDS)


@pytest.mark.parametrize('check', CHECKS, ids=lambda check: check.__name__)
def test_each_check_alone(check):
    check(Future, _finish_future, timeout=TIMEOUT)


def test_check_ready_from_thread_alone():
    check_ready_from_thread(concurrent.futures.Future, _finish_concurrent, timeout=TIMEOUT)


def test_check_functions_are_exported():
    import gruvi_gevent.testing as testing
    for name in testing.__all__:
        assert hasattr(testing, name), name
    assert set(CHECKS) | set(THREAD_CHECKS) == {
        check_interface, check_callbacks_called_once, check_remove, check_already_ready,
        check_remove_after_ready, check_foreign_handle, check_raising_callback,
        check_remove_releases, check_wait, check_as_completed, check_ready_from_thread,
        check_add_races_ready}
    assert {check.__name__ for check in CHECKS + THREAD_CHECKS} == {
        'check_' + name[len('test_'):] for name in dir(WaitableConformance)
        if name.startswith('test_')}


def test_kit_leaves_every_object_ready():
    """Each check makes every object it made ready: no child or greenlet is left."""
    made = []

    def make():
        popen = _make_popen()
        made.append(popen)
        return popen

    check_waitable(make, _finish_popen, _finish_popen, timeout=TIMEOUT, race_rounds=ROUNDS)
    assert made
    done, pending = wait(made, timeout=TIMEOUT)
    assert not pending
    assert all(popen.returncode == 0 for popen in made)


def test_kit_under_monkey_patching():
    """Under patch_all() the kit still uses real threads and works."""
    import subprocess
    code = """if True:
        from gevent import monkey; monkey.patch_all()
        import concurrent.futures
        import gevent.event
        from gruvi_gevent import Future
        from gruvi_gevent.testing import (RecordingWaitable, check_waitable,
                                          run_in_native_thread)
        from gruvi_gevent._wakeup import get_ident
        assert run_in_native_thread(get_ident).result(10) != get_ident()
        done = lambda future: future.set_result(1)
        check_waitable(Future, done, done, timeout=10, race_rounds=%d)
        check_waitable(RecordingWaitable, RecordingWaitable.make_ready,
                       RecordingWaitable.make_ready, timeout=10, race_rounds=%d)
        check_waitable(gevent.event.Event, gevent.event.Event.set,
                       gevent.event.Event.set, timeout=10, race_rounds=%d)
        # Patched, its lock is a greenlet lock, which a native thread must not
        # share with the hub's thread: no racing it from native threads.
        check_waitable(concurrent.futures.Future, done, timeout=10, threads=False)
        print('conforms')
    """ % ((ROUNDS,) * 3)
    result = subprocess.run([sys.executable, '-W', 'error', '-c', code],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == 'conforms', result.stderr


def test_undeclared_waitable_needs_require_declaration_false():
    with pytest.raises(AssertionError, match='neither provides IWaitable'):
        check_interface(UndeclaredWaitable, _finish_recording, timeout=TIMEOUT)
    check_waitable(UndeclaredWaitable, _finish_recording, timeout=TIMEOUT,
                   require_declaration=False)


def test_waitable_of():
    future = Future()
    assert waitable_of(future) is future
    event = gevent.event.Event()
    adapter = waitable_of(event)
    assert adapter is not event and IWaitable.providedBy(adapter)
    duck = UndeclaredWaitable()
    assert waitable_of(duck) is duck
    with pytest.raises(TypeError, match='object is not waitable'):
        waitable_of(object())


# RecordingWaitable.

def test_recording_waitable_counts():
    waitable = RecordingWaitable()
    calls = []
    first = waitable.add_done_callback(calls.append, 'first')
    second = waitable.add_done_callback(calls.append, 'second')
    waitable.add_done_callback(calls.append, 'third')
    assert (waitable.add_count, waitable.live_count, waitable.remove_count) == (3, 3, 0)
    waitable.remove_done_callback(second)
    waitable.remove_done_callback(second)
    waitable.remove_done_callback(None)
    assert (waitable.live_count, waitable.remove_count) == (2, 3)
    assert not waitable.ready and not calls
    assert waitable.make_ready() is True
    assert waitable.ready
    assert calls == ['first', 'third']
    assert (waitable.call_count, waitable.live_count) == (2, 0)
    assert waitable.make_ready() is False
    assert calls == ['first', 'third']
    waitable.remove_done_callback(first)    # after the call: harmless, counted
    assert waitable.remove_count == 4
    assert 'ready live=0 adds=3 removes=4 calls=2' in repr(waitable)


def test_recording_waitable_ready_calls_at_once():
    waitable = RecordingWaitable(ready=True)
    calls = []
    assert waitable.add_done_callback(calls.append, 'now') is None
    assert calls == ['now']
    assert (waitable.add_count, waitable.call_count, waitable.live_count) == (1, 1, 0)


def test_recording_waitable_rejects_bad_arguments():
    waitable = RecordingWaitable()
    with pytest.raises(TypeError, match='callable'):
        waitable.add_done_callback(None)
    with pytest.raises(TypeError, match='handle'):
        waitable.remove_done_callback(object())
    assert waitable.add_count == 0


def test_recording_waitable_provides_iwaitable():
    from zope.interface.verify import verifyObject
    assert verifyObject(IWaitable, RecordingWaitable())


def test_recording_waitable_callback_error_does_not_stop_others():
    waitable = RecordingWaitable()
    calls = []

    def boom():
        raise ValueError('boom')

    waitable.add_done_callback(boom)
    waitable.add_done_callback(calls.append, 'after')
    with pytest.raises(ValueError, match='boom'):
        waitable.make_ready()
    assert calls == ['after']
    assert waitable.ready


def test_recording_waitable_proves_wait_cleans_up():
    waitables = [RecordingWaitable() for _ in range(3)]
    waitables[1].make_ready()
    done, pending = wait(waitables, count=1, timeout=TIMEOUT)
    assert done == [waitables[1]]
    assert [w.live_count for w in waitables] == [0, 0, 0]
    assert [w.add_count for w in waitables] == [1, 1, 1]


def test_recording_waitable_wait_registered_and_make_ready_from_thread():
    waitable = RecordingWaitable()
    callback_threads = []
    waitable.add_done_callback(lambda: callback_threads.append(get_ident()))
    greenlet = gevent.spawn(wait, [waitable], timeout=TIMEOUT)
    waitable.wait_registered(2, timeout=TIMEOUT)     # ours and the greenlet's
    finished = waitable.make_ready_from_thread()
    assert isinstance(finished, Future)
    assert greenlet.get(timeout=TIMEOUT) == ([waitable], [])
    assert finished.result(TIMEOUT) is True
    assert len(callback_threads) == 1 and callback_threads[0] != get_ident()
    assert waitable.live_count == 0


def test_recording_waitable_wait_registered_times_out():
    waitable = RecordingWaitable()
    with pytest.raises(Timeout, match='1 live registrations expected, 0'):
        waitable.wait_registered(1, timeout=0.01)
    waitable.add_done_callback(print)
    waitable.wait_registered(1, timeout=0)      # already: returns at once
    assert waitable._watchers == []


def test_recording_waitable_as_completed_consumer_stops_early():
    waitables = [RecordingWaitable() for _ in range(2)]
    waitables[0].make_ready()
    generator = as_completed(waitables, timeout=TIMEOUT)
    assert next(generator) is waitables[0]
    assert waitables[1].live_count == 1
    generator.close()
    assert waitables[1].live_count == 0


# CountingProxy.

def test_counting_proxy_counts_and_forwards_to_the_adapter():
    event = gevent.event.Event()
    proxy = CountingProxy(event)
    arrived = Future()
    handle = proxy.add_done_callback(arrived.set_result, 'x')
    assert proxy.live_count == 1
    event.set()
    assert arrived.result(TIMEOUT) == 'x'
    assert (proxy.live_count, proxy.call_count) == (0, 1)
    done, pending = wait([proxy], timeout=TIMEOUT)
    assert done == [proxy] and not pending
    assert (proxy.add_count, proxy.live_count, proxy.call_count, proxy.stray_calls) == \
        (2, 0, 2, 0)
    proxy.remove_done_callback(handle)
    calls = []
    assert proxy.add_done_callback(calls.append, 'y') is None
    assert calls == ['y']


def test_counting_proxy_counts_stray_calls():
    inner = CallsTwice()
    proxy = CountingProxy(inner)
    calls = []
    proxy.add_done_callback(calls.append, 'once')
    inner.open()
    assert calls == ['once']
    assert proxy.stray_calls == 1


def test_counting_proxy_of_something_not_waitable():
    with pytest.raises(TypeError, match='int is not waitable'):
        CountingProxy(42)


def test_counting_proxy_add_that_raises_is_not_counted():
    class Refuses(RecordingWaitable):
        def add_done_callback(self, callback, *args):
            raise RuntimeError('no')

    proxy = CountingProxy(Refuses())
    with pytest.raises(RuntimeError):
        proxy.add_done_callback(print)
    assert (proxy.add_count, proxy.live_count) == (0, 0)


# run_in_greenlet and run_in_native_thread.

def test_run_in_greenlet_returns_and_raises():
    main = gevent.getcurrent()
    assert run_in_greenlet(lambda a, b=0: (a + b, gevent.getcurrent() is not main),
                           1, b=2, timeout=TIMEOUT) == (3, True)
    with pytest.raises(ZeroDivisionError):
        run_in_greenlet(lambda: 1 / 0, timeout=TIMEOUT)


def test_run_in_greenlet_kills_at_the_timeout():
    cleaned_up = Future()

    def stuck():
        try:
            gevent.event.Event().wait()
        finally:
            cleaned_up.set_result(True)

    with pytest.raises(Timeout, match=r'(?s)stuck did not finish within 0.05 seconds; '
                                      r'it was at:.*in stuck'):
        run_in_greenlet(stuck, timeout=0.05)
    assert cleaned_up.result(TIMEOUT)


def test_run_in_greenlet_passes_on_a_timeout_of_the_function():
    def own_timeout():
        raise Timeout('mine')

    with pytest.raises(Timeout, match='mine'):
        run_in_greenlet(own_timeout, timeout=TIMEOUT)


def test_run_in_native_thread():
    future = run_in_native_thread(lambda x: (x, get_ident()), 'arg')
    value, ident = future.result(TIMEOUT)
    assert value == 'arg' and ident != get_ident()
    failed = run_in_native_thread(lambda: 1 / 0)
    assert isinstance(failed.exception(TIMEOUT), ZeroDivisionError)


# The pytest plugin, in pytest runs of its own.

@pytest.fixture
def inner(pytester):
    """A pytester whose runs treat warnings as errors, like this suite."""
    pytester.makeini('[pytest]\nfilterwarnings =\n    error\n')
    return pytester


def _run(pytester, *args):
    return pytester.runpytest_subprocess('-p', 'no:cacheprovider', '-rA', *args,
                                         timeout=120)


def test_plugin_is_registered_by_the_entry_point():
    from importlib.metadata import entry_points
    plugins = {ep.name: ep.value for ep in entry_points(group='pytest11')}
    assert plugins.get('gruvi_gevent') == 'gruvi_gevent.pytest_plugin'


def test_pool_fixtures(inner):
    inner.makepyfile(test_pools='''
        import pytest
        from gruvi_gevent import FiberPool, ThreadPool

        pools = []

        def test_fiber_pool(fiber_pool):
            assert type(fiber_pool) is FiberPool
            assert fiber_pool.name == 'FiberPool[test_fiber_pool]'
            assert fiber_pool.submit(lambda: 2).result(10) == 2
            pools.append(fiber_pool)

        def test_thread_pool(thread_pool):
            assert type(thread_pool) is ThreadPool
            assert thread_pool.submit(lambda: 3).result(10) == 3
            pools.append(thread_pool)

        def test_fresh_pools(fiber_pool, thread_pool):
            assert fiber_pool not in pools and thread_pool not in pools
            pools.extend([fiber_pool, thread_pool])

        @pytest.mark.parametrize('fiber_pool, thread_pool',
                                 [({'maxsize': 2, 'name': 'mine'}, {'maxsize': 3})],
                                 indirect=True)
        def test_pool_options(fiber_pool, thread_pool):
            assert (fiber_pool.maxsize, fiber_pool.name) == (2, 'mine')
            assert thread_pool.maxsize == 3

        class Small(FiberPool):
            pass

        def test_pool_factory(pool_factory):
            small = pool_factory(Small, 1, name='small')
            threads = pool_factory(ThreadPool, maxsize=2)
            assert (type(small), small.maxsize, small.name) == (Small, 1, 'small')
            assert small.submit(lambda: 4).result(10) == 4
            assert threads.submit(lambda: 5).result(10) == 5
            pools.extend([small, threads])

        def test_pools_were_closed():
            assert len(pools) == 6
            for pool in pools:
                assert len(pool) == 0
                with pytest.raises(RuntimeError, match='closed'):
                    pool.submit(print)
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=6)


def test_pool_fixture_that_cannot_close_fails_the_test(inner):
    inner.makepyfile(test_stuck_pool='''
        import gevent.event
        import gruvi_gevent.pytest_plugin as plugin
        from gruvi_gevent import FiberPool

        plugin.POOL_CLOSE_TIMEOUT = 0.2
        gate = gevent.event.Event()

        def test_job_never_ends(fiber_pool):
            fiber_pool.submit(gate.wait)

        def test_factory_job_never_ends(pool_factory):
            pool_factory(FiberPool, name='stuck').submit(gate.wait)

        def test_release():
            gate.set()
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*<FiberPool 'stuck'*did not close within 0.2 seconds*"])
    result.stdout.fnmatch_lines(['*did not close within 0.2 seconds after the test*'])


def test_gevent_timeout_marker(inner):
    inner.makepyfile(test_timeouts='''
        import gevent
        import gevent.event
        import pytest

        cleaned = []

        @pytest.fixture
        def setup_greenlet():
            return gevent.getcurrent()

        @pytest.mark.gevent_timeout(5)
        def test_body_runs_in_its_own_greenlet(setup_greenlet, fiber_pool):
            assert gevent.getcurrent() is not setup_greenlet
            assert fiber_pool.submit(lambda: 1).result(5) == 1

        @pytest.mark.gevent_timeout(seconds=0.1)
        def test_stuck_body_is_killed():
            try:
                gevent.event.Event().wait()
            finally:
                cleaned.append('finally ran')

        def test_stuck_body_was_cleaned_up():
            assert cleaned == ['finally ran']

        @pytest.mark.gevent_timeout(5)
        def test_failure_in_body_is_reported():
            assert 1 == 2

        @pytest.mark.gevent_timeout(5)
        class TestClass:
            def test_method(self):
                assert gevent.getcurrent() is not gevent.get_hub().parent

        @pytest.mark.gevent_timeout('soon')
        def test_bad_marker():
            pass
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines([
        '*Timeout: test_stuck_body_is_killed did not finish within 0.1 seconds; '
        'it was at:*',
    ])
    result.stdout.fnmatch_lines(['*assert 1 == 2*'])
    result.stdout.fnmatch_lines(["*gevent_timeout wants a number of seconds > 0, got 'soon'*"])


def test_no_leaks_without_grace_still_says_where_a_greenlet_waits(inner):
    # A grace already spent (a slow machine, or grace=0) must still let the
    # spawned greenlet start, so that the report shows where it waits.
    inner.makepyfile(test_leaks='''
        import gevent
        import gevent.event
        import pytest

        gate = gevent.event.Event()

        def parked():
            gate.wait()

        @pytest.mark.no_leaks(grace=0)
        def test_leaks_greenlet():
            gevent.spawn(parked)

        def test_clean_up():
            gate.set()
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(['*greenlet <Greenlet*', '*in parked*'])


def test_no_leaks_marker_and_fixture(inner):
    inner.makepyfile(test_leaks='''
        import gevent
        import gevent.event
        import pytest
        from gruvi_gevent import Future, ThreadPool
        from gruvi_gevent.testing import RecordingWaitable

        gate = gevent.event.Event()
        kept = []

        def parked():
            gate.wait()

        @pytest.mark.no_leaks
        def test_clean_greenlet():
            gevent.spawn(lambda: 1).join()

        @pytest.mark.no_leaks
        def test_greenlet_finishing_within_grace():
            gevent.spawn(lambda: 1)             # scheduled, not yet run

        @pytest.mark.no_leaks
        def test_pools_closed_by_their_fixtures(fiber_pool, thread_pool):
            assert fiber_pool.submit(lambda: 1).result(10) == 1
            assert thread_pool.submit(lambda: 2).result(10) == 2

        @pytest.mark.no_leaks
        def test_clean_pool():
            with ThreadPool() as pool:
                assert pool.submit(lambda: 2).result(10) == 2

        @pytest.mark.no_leaks(grace=0.05)
        def test_leaks_greenlet():
            gevent.spawn(parked)

        @pytest.mark.no_leaks(grace=0.05)
        def test_leaks_pool_thread():
            pool = ThreadPool()
            kept.append(pool)
            assert pool.submit(lambda: 2).result(10) == 2

        @pytest.mark.no_leaks(grace=0.05)
        def test_leaks_callback():
            future = Future()
            future.add_done_callback(print)
            waitable = RecordingWaitable()
            waitable.add_done_callback(print)
            kept.extend([future, waitable])

        def test_leaks_with_fixture(no_leaks):
            gevent.spawn(gate.wait)

        def test_unchecked_test_may_leak():
            gevent.spawn(gate.wait)

        @pytest.mark.no_leaks
        def test_failing_test_is_not_checked_again():
            gevent.spawn(gate.wait)
            assert False

        def test_clean_up():
            gate.set()
            kept[0].close()
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=10, failed=1, errors=4)
    stdout = result.stdout.str()
    for name in ('test_leaks_greenlet', 'test_leaks_pool_thread', 'test_leaks_callback',
                 'test_leaks_with_fixture'):
        assert 'ERROR at teardown of %s' % name in stdout
    for name in ('test_clean_greenlet', 'test_greenlet_finishing_within_grace',
                 'test_pools_closed_by_their_fixtures', 'test_clean_pool',
                 'test_unchecked_test_may_leak'):
        assert 'ERROR at teardown of %s' % name not in stdout
    assert 'ERROR at teardown of test_failing_test_is_not_checked_again' not in stdout
    result.stdout.fnmatch_lines([
        '*the test left things behind (no_leaks):*',
        '*greenlet <Greenlet*',
        '*in parked*',
    ])
    result.stdout.fnmatch_lines(['*thread *, at:*'])
    result.stdout.fnmatch_lines(['*1 done callback(s) still registered on <Future*pending>*'])
    result.stdout.fnmatch_lines(['*1 done callback(s) still registered on <RecordingWaitable*'])


def test_markers_are_declared(inner):
    inner.makeini('[pytest]\naddopts = --strict-markers\n')
    inner.makepyfile(test_strict='''
        import pytest

        @pytest.mark.no_leaks
        @pytest.mark.gevent_timeout(5)
        def test_marked():
            pass
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=1)
    result = _run(inner, '--markers')
    result.stdout.fnmatch_lines(['*gevent_timeout(seconds=*', '*no_leaks(grace=*'])


def test_conformance_class_in_a_run_of_its_own(inner):
    inner.makepyfile(test_conformance='''
        from gruvi_gevent.testing import RecordingWaitable
        from gruvi_gevent.testing import WaitableConformance as TestBaseClass

        class _Abstract(TestBaseClass):
            __test__ = False

        class TestGood(TestBaseClass):
            def make(self):
                return RecordingWaitable()

            def make_ready(self, waitable):
                waitable.make_ready()

            make_ready_from_thread = make_ready

        class TestGoodWithoutThreadMaker(_Abstract):
            __test__ = True

            def make(self):
                return RecordingWaitable()

            def make_ready(self, waitable):
                waitable.make_ready()

        class TestOptedOutOfThreads(TestGoodWithoutThreadMaker):
            threads = False

        class CallsTwice(RecordingWaitable):
            def make_ready(self):
                registrations = list(self._live)
                super().make_ready()
                for registration in registrations:
                    registration.callback(*registration.args)

        class TestCallsTwice(TestBaseClass):
            timeout = 0.5

            def make(self):
                return CallsTwice()

            def make_ready(self, waitable):
                waitable.make_ready()
    ''')
    result = _run(inner, '-v')
    tests = [name[len('test_'):] for name in dir(WaitableConformance) if name.startswith('test_')]
    assert len(tests) == 12
    for cls in ('TestGood', 'TestGoodWithoutThreadMaker'):
        result.stdout.fnmatch_lines_random(
            ['*%s::test_%s PASSED*' % (cls, name) for name in tests])
    result.stdout.fnmatch_lines_random([
        '*TestOptedOutOfThreads::test_ready_from_thread SKIPPED*',
        '*TestOptedOutOfThreads::test_add_races_ready SKIPPED*',
        '*NOT CHECKED: TestOptedOutOfThreads sets threads = False, so '
        'check_ready_from_thread() did not run*'])
    result.stdout.fnmatch_lines(['*TestCallsTwice::test_callbacks_called_once FAILED*'])
    result.stdout.fnmatch_lines(["*AssertionError: callback(*args) registered on <CallsTwice*: "
                                 "expected one call with ('one', 2, None), got*"])
    assert 'TestBaseClass::' not in result.stdout.str()
    assert '_Abstract::' not in result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes['passed'] + outcomes['failed'] + outcomes['skipped'] == 4 * len(tests)
    assert outcomes['skipped'] == 2     # TestOptedOutOfThreads: its two thread tests


def test_plugin_can_be_disabled(inner):
    inner.makepyfile(test_off='''
        def test_uses_fixture(fiber_pool):
            pass
    ''')
    result = _run(inner, '-p', 'no:gruvi_gevent')
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'fiber_pool' not found*"])


def test_no_leaks_leaves_out_the_process_wide_pool_threads(inner):
    # The IO and CPU pools live for the process: a test that starts or grows
    # them leaks nothing.
    inner.makepyfile(test_process_pools='''
        import threading
        import pytest
        from gruvi_gevent import blocking, get_cpu_pool, wait

        @pytest.mark.no_leaks(grace=0.05)
        def test_grows_the_io_and_cpu_pools():
            count = 4
            barrier = threading.Barrier(count, timeout=10)
            cpu = get_cpu_pool()
            wait([cpu.submit(abs, -n) for n in range(count)], timeout=10)

            def meet():
                return blocking(barrier.wait)

            threads = [threading.Thread(target=meet) for _ in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    ''')
    result = _run(inner)
    result.assert_outcomes(passed=1)
