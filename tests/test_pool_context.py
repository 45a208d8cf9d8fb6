"""Context travels with the job: each submit() and map() call runs in a copy
of the submitter's ``contextvars`` context, as ``asyncio.to_thread`` does."""

import contextvars

import gevent
import pytest

from gruvi_gevent import blocking
from gruvi_gevent.testing import run_in_greenlet, run_in_native_thread

from pool_helpers import KINDS, TIMEOUT

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar('request_id',
                                                                        default=None)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def read():
    return request_id.get()


def overwrite(value):
    """Set the variable in the job's context; return what it was before."""
    before = request_id.get()
    request_id.set(value)
    return before


def in_context(value, func, *args):
    """Run ``func(*args)`` in a fresh context where request_id is *value*."""
    def run():
        request_id.set(value)
        return func(*args)
    return contextvars.Context().run(run)


def test_submit_sees_the_submitters_context(kind, pool_factory):
    pool = pool_factory(kind, 2)
    future = in_context('req-1', pool.submit, read)
    assert future.result(TIMEOUT) == 'req-1'
    assert request_id.get() is None


def test_map_sees_the_submitters_context(kind, pool_factory):
    pool = pool_factory(kind, 2)

    def collect():
        request_id.set('req-map')
        return list(pool.map(lambda i: (i, request_id.get()), range(20)))

    assert contextvars.Context().run(collect) == [(i, 'req-map') for i in range(20)]


def test_context_is_copied_at_submit(kind, pool_factory):
    pool = pool_factory(kind, 1)
    gate = kind.event()
    blocker = pool.submit(gate.wait, TIMEOUT)

    def submit_then_change():
        request_id.set('before')
        future = pool.submit(read)
        request_id.set('after')
        return future

    future = contextvars.Context().run(submit_then_change)
    gate.set()
    assert blocker.result(TIMEOUT)
    assert future.result(TIMEOUT) == 'before'


def test_changes_stay_in_the_jobs_copy(kind, pool_factory):
    # One worker runs every job: a change one job makes must reach neither
    # the submitter nor the next job of that worker.
    pool = pool_factory(kind, 1)
    request_id.set('caller')
    try:
        assert pool.submit(overwrite, 'job-1').result(TIMEOUT) == 'caller'
        assert pool.submit(overwrite, 'job-2').result(TIMEOUT) == 'caller'
        assert request_id.get() == 'caller'
        results = list(pool.map(overwrite, ['m1', 'm2', 'm3']))
        assert results == ['caller'] * 3
        assert request_id.get() == 'caller'
    finally:
        request_id.set(None)
    assert pool.submit(read).result(TIMEOUT) is None


def test_changes_from_an_empty_context_stay_in_the_job(kind, pool_factory):
    # A submitter that set nothing: what one job sets reaches no later job of
    # the same worker, whether it returns, raises or runs through map().
    pool = pool_factory(kind, 1)

    def set_and_fail(value):
        request_id.set(value)
        raise ValueError(value)

    def empty_context_submits():
        results = [pool.submit(overwrite, 'job-1').result(TIMEOUT)]
        assert isinstance(pool.submit(set_and_fail, 'job-2').exception(TIMEOUT), ValueError)
        results.append(pool.submit(read).result(TIMEOUT))
        results.extend(pool.map(overwrite, ['m1', 'm2']))
        results.append(pool.submit(read).result(TIMEOUT))
        return results

    assert contextvars.Context().run(empty_context_submits) == [None] * 5


def test_each_greenlet_submits_its_own_context(kind, pool_factory):
    pool = pool_factory(kind, 4)

    def handler(n):
        request_id.set('req-%d' % n)
        gevent.sleep(0)
        return pool.submit(read).result(TIMEOUT)

    greenlets = [gevent.spawn(handler, n) for n in range(20)]
    gevent.joinall(greenlets, timeout=TIMEOUT, raise_error=True)
    assert [g.value for g in greenlets] == ['req-%d' % n for n in range(20)]


def test_native_thread_submits_its_own_context(kind, pool_factory):
    pool = pool_factory(kind, 2)

    def from_thread():
        request_id.set('thread')
        return pool.submit(read).result(TIMEOUT), list(pool.map(lambda _: read(), [1, 2]))

    outcome = run_in_native_thread(from_thread)
    assert run_in_greenlet(outcome.result, TIMEOUT) == ('thread', ['thread', 'thread'])


def test_blocking_sees_the_callers_context():
    # blocking() queues the same kind of job as submit(), context included.
    assert in_context('req-blocking', blocking, read) == 'req-blocking'
    assert in_context('req-blocking', blocking, overwrite, 'x') == 'req-blocking'
    assert blocking(read) is None
