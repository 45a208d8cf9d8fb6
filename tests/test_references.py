"""What the library keeps of finished work: stored exceptions, and nothing else.

A failed future's exception is re-raised to every caller of ``result()``
without growing, without picking up a caller's exception as its context, and
without a reference cycle that only the garbage collector could free. Once a
job is done and its result handed out, no pool, ``map()``, ``as_completed()``
or ``wait()`` keeps the job's function, arguments, result or future alive.
"""

import concurrent.futures
import gc
import threading
import traceback
import weakref

import gevent
import pytest

from gruvi_gevent import FiberPool, Future, ThreadPool, as_completed, blocking, wait

from pool_helpers import wait_until

TIMEOUT = 10


class JobError(Exception):
    """Raised by the failing jobs (a subclass, so it can be weakly referenced)."""


class Payload:
    """A value whose lifetime the tests watch through a weak reference."""


class WatchedFuture(Future):
    """A future that can be weakly referenced (Future itself has no __weakref__)."""

    __slots__ = ('__weakref__',)   # for the tests' weak references


def live_futures():
    """The number of Future objects alive (Future has no weak references)."""
    return sum(1 for obj in gc.get_objects() if type(obj) is Future)


def fail():
    raise JobError('failed in the job')


def make_payload(*ignored):
    return Payload()


@pytest.fixture(params=[FiberPool, ThreadPool], ids=['fiber', 'thread'])
def pool(request):
    pool = request.param(2)
    yield pool
    pool.close()


def failed_future(pool):
    future = pool.submit(fail)
    pool.join()
    return future


def raised_by(future):
    try:
        future.result()
    except JobError as exc:
        return exc
    raise AssertionError('result() did not raise')


def test_result_does_not_grow_the_traceback(pool):
    future = failed_future(pool)
    stored = len(traceback.extract_tb(future.exception().__traceback__))
    lengths = [len(traceback.extract_tb(raised_by(future).__traceback__))
               for _ in range(100)]
    # Each raise shows the stored frames plus this caller's two, every time.
    assert set(lengths) == {stored + 2}
    assert len(traceback.extract_tb(future.exception().__traceback__)) == stored


def test_a_callers_exception_does_not_become_the_stored_ones_context(pool):
    future = failed_future(pool)
    try:
        raise KeyError('secret of request A')
    except KeyError:
        # Request A looks at the result while it handles an error of its own.
        seen_by_a = raised_by(future)
    assert seen_by_a is future.exception()
    assert future.exception().__context__ is None
    assert raised_by(future).__context__ is None


def test_a_jobs_own_context_is_kept(pool):
    def fail_while_handling():
        try:
            raise KeyError('the job handled this')
        except KeyError:
            raise JobError('and then failed')

    future = pool.submit(fail_while_handling)
    try:
        raise KeyError('secret of the caller')
    except KeyError:
        exc = raised_by(future)
    assert repr(exc.__context__) == repr(KeyError('the job handled this'))


def without_gc(make_ref, count=50):
    """Call *make_ref* count times with the collector off; return how many of
    the objects it returned weak references to, and how many more futures,
    are still alive."""
    gc.collect()
    gc.disable()
    try:
        before = live_futures()
        refs = [make_ref() for _ in range(count)]
        # Let the hub finish the loop callback that handed the last outcome
        # over (its frame holds that outcome until it returns).
        gevent.sleep(0)
        return sum(ref() is not None for ref in refs) + live_futures() - before
    finally:
        gc.enable()


def test_failed_futures_need_no_collector_after_a_raising_result(pool):
    def one():
        future = pool.submit(fail)
        try:
            future.result(TIMEOUT)
        except JobError as exc:
            ref = weakref.ref(exc)
        del future
        pool.join()
        return ref

    assert without_gc(one) == 0


def test_failed_fiber_jobs_need_no_collector():
    with FiberPool(2) as pool:
        def one():
            future = pool.submit(fail)
            pool.join()
            assert future.done()
            ref = weakref.ref(future.exception())
            del future
            return ref

        assert without_gc(one) == 0


def test_a_raising_blocking_call_needs_no_collector():
    def one():
        try:
            blocking(fail)
        except JobError as exc:
            return weakref.ref(exc)
        raise AssertionError('blocking() did not raise')

    assert without_gc(one) == 0


def test_a_blocking_call_that_fails_after_its_caller_left_needs_no_collector():
    # The caller is gone, so gevent's Waiter keeps the exception thrown to
    # it: nothing in the exception's traceback may lead back to that waiter.
    started, gate = threading.Event(), threading.Event()
    refs = []

    def job():
        payload = Payload()
        refs.append(weakref.ref(payload))
        started.set()
        gate.wait(TIMEOUT)
        raise JobError(payload)

    gc.collect()
    gc.disable()
    caller = None
    try:
        caller = gevent.spawn(blocking, job)
        gevent.sleep(0)             # the caller queues the job and parks
        assert started.wait(TIMEOUT)
        caller.kill()
        gate.set()
        # The hub drops the outcome once the worker has handed it over.
        assert wait_until(lambda: refs[0]() is None, timeout=5)
    finally:
        gate.set()
        if caller is not None:
            caller.kill()
        gc.enable()


@pytest.mark.parametrize('pool_class', [FiberPool, ThreadPool])
def test_an_idle_worker_keeps_nothing_of_its_last_job(pool_class):
    with pool_class(1, minsize=1) as pool:
        before = live_futures()
        argument = Payload()
        future = pool.submit(make_payload, argument)
        refs = [weakref.ref(obj) for obj in (argument, future.result(TIMEOUT))]
        pool.join()
        del argument, future
        assert [ref() for ref in refs] == [None, None]
        assert live_futures() == before
        assert len(pool) == 1


def test_map_keeps_no_result_it_has_yielded(pool):
    results = pool.map(make_payload, range(3), timeout=TIMEOUT)
    first = next(results)
    ref = weakref.ref(first)
    del first
    assert ref() is None
    assert all(isinstance(result, Payload) for result in results)


def test_as_completed_drops_each_object_once_yielded():
    futures = [WatchedFuture() for _ in range(3)]
    refs = [weakref.ref(future) for future in futures]
    ready = as_completed(futures, timeout=TIMEOUT)
    futures[0].set_result(Payload())
    del futures[0]
    first = next(ready)
    del first
    assert refs[0]() is None
    futures[0].set_result(None)
    futures[1].set_result(None)
    assert len(list(ready)) == 2


def test_a_done_concurrent_future_keeps_nothing_of_a_wait():
    done_later = concurrent.futures.Future()
    other = WatchedFuture()
    ref = weakref.ref(other)
    gevent.spawn(done_later.set_result, 1)
    done, pending = wait([done_later, other], count=1, timeout=TIMEOUT)
    assert done == [done_later]
    del done, pending, other
    # concurrent.futures keeps the (spent) callback in its list for good.
    assert ref() is None
