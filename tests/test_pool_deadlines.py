"""join(timeout) and close(timeout): waiting for a pool with a deadline."""

import time

import pytest

from gruvi_gevent.testing import run_in_greenlet, run_in_native_thread

from pool_helpers import KINDS, TIMEOUT, busy_pool

SHORT = 0.05


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def test_join_with_timeout_on_an_idle_pool_returns_true(kind, pool_factory):
    pool = pool_factory(kind, 2)
    assert pool.join(0) is True
    assert pool.submit(int, 5).result(TIMEOUT) == 5
    assert pool.join(TIMEOUT) is True
    assert pool.join() is True


def test_join_returns_false_when_the_timeout_passes(kind, pool_factory):
    pool, gate, future = busy_pool(kind, pool_factory)
    try:
        assert pool.join(0) is False
        start = time.monotonic()
        assert pool.join(SHORT) is False
        assert time.monotonic() - start >= SHORT * 0.9
        assert not future.done()
    finally:
        gate.set()
    assert pool.join(TIMEOUT) is True
    assert future.result() == 'held'


def test_close_with_timeout_leaves_busy_workers_running(kind, pool_factory):
    pool, gate, future = busy_pool(kind, pool_factory)
    try:
        assert pool.close(SHORT) is False
        assert len(pool) == 1 and not future.done()
        with pytest.raises(RuntimeError, match='closed'):
            pool.submit(int)
        assert pool.close(0) is False
    finally:
        gate.set()
    # Not abandoned: the job finishes, and a later close() waits for the worker.
    assert future.result(TIMEOUT) == 'held'
    assert pool.close(TIMEOUT) is True
    assert len(pool) == 0
    assert pool.close() is True


def test_join_after_close_with_timeout_waits_for_the_job(kind, pool_factory):
    pool, gate, future = busy_pool(kind, pool_factory)
    try:
        assert pool.close(SHORT) is False
        assert pool.join(SHORT) is False
    finally:
        gate.set()
    assert pool.join(TIMEOUT) is True
    assert future.done()
    assert pool.close(TIMEOUT) is True


def test_deadlines_from_a_native_thread(kind, pool_factory):
    pool, gate, future = busy_pool(kind, pool_factory)
    try:
        outcome = run_in_native_thread(lambda: (pool.join(SHORT), pool.close(SHORT)))
        assert run_in_greenlet(outcome.result, TIMEOUT) == (False, False)
    finally:
        gate.set()
    closed = run_in_native_thread(pool.close, TIMEOUT)
    assert run_in_greenlet(closed.result, TIMEOUT) is True
    assert future.result() == 'held' and len(pool) == 0


@pytest.mark.parametrize('method', ['join', 'close'])
@pytest.mark.parametrize('timeout, error', [
    (-1, ValueError), (float('nan'), ValueError), ('1', TypeError), (True, TypeError)])
def test_bad_timeout_names_the_argument(kind, pool_factory, method, timeout, error):
    pool = pool_factory(kind, 1)
    with pytest.raises(error, match='timeout must be None or'):
        getattr(pool, method)(timeout)
    assert pool.submit(int, 3).result(TIMEOUT) == 3     # still open
