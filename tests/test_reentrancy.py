"""Re-entrancy and calling conventions: calls back into the library from inside it.

A job waiting on a job of its own full pool, a done callback that submits
to its own pool and waits, a slow done callback, a waitable whose removal
fails, a pool whose hub is gone, keyword arguments named ``func`` or
``self``: none of them hangs, leaks or misdirects an argument.
"""

import threading

import gevent
import pytest

from gruvi_gevent import FiberPool, Future, ThreadPool, as_completed, blocking, wait

TIMEOUT = 10


@pytest.fixture(params=[FiberPool, ThreadPool], ids=['fiber', 'thread'])
def pool(request):
    pool = request.param(2)
    yield pool
    pool.close()


# func is positional-only, as in concurrent.futures.

def test_keywords_named_func_and_self_go_to_the_function(pool):
    assert pool.submit(dict, func=1, self=2).result(TIMEOUT) == {'func': 1, 'self': 2}
    assert blocking(dict, func=1, self=2) == {'func': 1, 'self': 2}


def test_func_by_keyword_is_refused(pool):
    with pytest.raises(TypeError):
        pool.submit(func=abs)
    with pytest.raises(TypeError):
        pool.map(func=abs)
    with pytest.raises(TypeError):
        blocking(func=abs)


# Jobs and callbacks waiting on their own pool.

def test_fiber_job_waiting_on_its_own_full_pool_runs_the_job_inline():
    with FiberPool(1) as pool:
        def outer():
            inner = pool.submit(abs, -5)
            mapped = list(pool.map(abs, [-1, -2], timeout=TIMEOUT))
            return inner.result(TIMEOUT), mapped, len(pool)

        assert pool.submit(outer).result(TIMEOUT) == (5, [1, 2], 1)
        pool.join()


def test_thread_callback_submitting_to_its_own_pool_and_waiting():
    with ThreadPool(2) as pool:
        gate = threading.Event()
        outcome = Future()

        def callback():
            try:
                outcome.set_result(pool.submit(abs, -3).result(TIMEOUT))
            except BaseException as exc:
                outcome.set_exception(exc)

        job = pool.submit(gate.wait, TIMEOUT)
        job.add_done_callback(callback)
        gate.set()
        assert outcome.result(TIMEOUT) == 3


def test_thread_callback_waiting_on_its_own_full_pool_fails_at_once():
    with ThreadPool(1) as pool:
        gate = threading.Event()
        outcome = Future()
        inner = []

        def callback():
            inner.append(pool.submit(abs, -3))
            try:
                outcome.set_result(inner[0].result(TIMEOUT))
            except BaseException as exc:
                outcome.set_exception(exc)

        job = pool.submit(gate.wait, TIMEOUT)
        job.add_done_callback(callback)
        gate.set()
        error = outcome.exception(TIMEOUT)
        assert isinstance(error, RuntimeError)
        assert 'would deadlock' in str(error)
        # The job runs once the callback has returned.
        assert inner[0].result(TIMEOUT) == 3


def test_slow_done_callback_does_not_delay_new_jobs():
    with ThreadPool(2) as pool:
        in_callback = threading.Event()
        release = threading.Event()

        def slow_callback():
            in_callback.set()
            release.wait(TIMEOUT)

        try:
            first = pool.submit(abs, -1)
            first.add_done_callback(slow_callback)
            assert in_callback.wait(TIMEOUT)
            # The thread in the callback is busy: the pool grows for this one.
            assert pool.submit(abs, -2).result(TIMEOUT / 2) == 2
        finally:
            release.set()


# Callbacks removed however the removal goes.

def test_one_failing_removal_does_not_leak_the_others(counting):
    class BadRemoval(counting):
        def remove_done_callback(self, handle):
            raise ValueError('cannot remove')

    bad = BadRemoval()
    good = [counting() for _ in range(3)]
    with pytest.raises(ValueError, match='cannot remove'):
        wait([good[0], bad] + good[1:], timeout=0)
    assert [obj.live_count for obj in good] == [0, 0, 0]

    ready = as_completed(good[:1] + [bad] + good[1:], timeout=TIMEOUT)
    good[0].make_ready()
    assert next(ready) is good[0]
    with pytest.raises(ValueError, match='cannot remove'):
        ready.close()
    assert [obj.live_count for obj in good] == [0, 0, 0]


# A FiberPool whose hub cannot run its jobs any more.

def fiber_pool_of_a_thread(destroy_hub):
    made = []

    def run():
        made.append(FiberPool(2))
        if destroy_hub:
            gevent.get_hub().destroy(True)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(TIMEOUT)
    return made[0]


@pytest.mark.parametrize('destroy_hub', [False, True], ids=['thread-exited', 'hub-destroyed'])
def test_submit_to_a_fiber_pool_whose_hub_is_gone_fails_at_the_call(destroy_hub):
    pool = fiber_pool_of_a_thread(destroy_hub)
    with pytest.raises(RuntimeError, match=pool.name):
        pool.submit(abs, -1)
    assert not pool._inbox and not pool._queue
