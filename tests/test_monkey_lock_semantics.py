"""The locks installed under monkey patching: their API, in this (unpatched) process.

They work without monkey patching too, so their semantics are tested here
directly, between greenlets of this thread and plain native threads; the
scenarios under ``patch_all()`` are in test_monkey_locks.py, and the load
test of threads and greenlets contending one lock, condition and queue is at
the end of this file.
"""

import threading
import time

import gevent
import pytest

from gruvi_gevent._locks import Lock, RLock
from pool_helpers import TIMEOUT, check_python, wait_until


def hold_in_thread(lock):
    """Acquire *lock* in a new native thread; return (thread, release event)."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            release.wait(TIMEOUT)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(TIMEOUT)
    return thread, release


@pytest.mark.parametrize('factory', [Lock, RLock])
def test_uncontended_acquire_release_and_locked(factory):
    lock = factory()
    assert not lock.locked() and 'unlocked' in repr(lock)
    assert lock.acquire() is True
    assert lock.locked() and repr(lock).startswith('<locked')
    lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    assert lock.acquire(False) is True
    lock.release()


@pytest.mark.parametrize('factory', [Lock, RLock])
def test_bad_arguments_fail_like_the_standard_library(factory):
    lock = factory()
    with pytest.raises(ValueError, match="can't specify a timeout"):
        lock.acquire(False, 1)
    with pytest.raises(RuntimeError):
        lock.release()
    thread, release = hold_in_thread(lock)
    try:
        with pytest.raises(ValueError, match='non-negative'):
            lock.acquire(True, -2)
        with pytest.raises(OverflowError):
            lock.acquire(True, 1e300)
    finally:
        release.set()
        thread.join(TIMEOUT)


def test_a_greenlet_waiting_for_a_thread_parks_only_itself():
    lock = Lock()
    thread, release = hold_in_thread(lock)
    ticks = []

    def ticker():
        while True:
            gevent.sleep(0.001)
            ticks.append(None)

    tick = gevent.spawn(ticker)
    waiter = gevent.spawn(lock.acquire)
    try:
        assert wait_until(lambda: len(ticks) >= 20)   # the hub serves while waiter waits
        assert not waiter.ready()
        release.set()
        assert waiter.get(timeout=TIMEOUT) is True
    finally:
        release.set()
        tick.kill()
        waiter.kill()
        thread.join(TIMEOUT)
    lock.release()


def test_timeouts_are_honoured_for_greenlets_and_threads():
    lock = Lock()
    lock.acquire()
    start = time.monotonic()
    assert gevent.spawn(lock.acquire, True, 0.2).get(timeout=TIMEOUT) is False
    assert 0.15 < time.monotonic() - start < 5
    result = []
    thread = threading.Thread(target=lambda: result.append(lock.acquire(True, 0.2)))
    start = time.monotonic()
    thread.start()
    thread.join(TIMEOUT)
    assert result == [False] and 0.15 < time.monotonic() - start < 5
    assert lock.acquire(False) is False
    lock.release()
    # A waiter that gave up leaves nothing queued: the next release wakes the next.
    assert not lock._waiters


def test_a_killed_waiter_does_not_take_the_wake_up_with_it():
    lock = Lock()
    lock.acquire()
    first = gevent.spawn(lock.acquire)
    second = gevent.spawn(lock.acquire)
    gevent.sleep(0)                 # both parked
    first.kill(block=False)         # dies at the next turn of the hub...
    lock.release()                  # ...having been handed the wake-up
    first.join(TIMEOUT)
    assert isinstance(first.value, gevent.GreenletExit)
    assert second.get(timeout=TIMEOUT) is True
    assert not lock._waiters
    lock.release()


def test_rlock_is_owned_per_greenlet():
    lock = RLock()
    lock.acquire()
    lock.acquire()
    other = gevent.spawn(lock.acquire, True, 0.05)
    assert other.get(timeout=TIMEOUT) is False
    with pytest.raises(RuntimeError):
        gevent.spawn(lock.release).get(timeout=TIMEOUT)
    lock.release()
    assert lock.locked() and lock._is_owned()
    lock.release()
    assert not lock.locked()


def test_rlock_is_owned_per_thread_and_works_under_a_condition():
    lock = RLock()
    cond = threading.Condition(lock)
    items = []

    def consumer():
        with cond:
            assert cond.wait_for(lambda: items, timeout=TIMEOUT)
            return items.pop()

    results = []
    threads = [threading.Thread(target=lambda: results.append(consumer())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(3):
        with cond:
            items.append(i)
            cond.notify()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(results) == [0, 1, 2]


@pytest.mark.stress
def test_threads_and_greenlets_contending_one_lock_condition_and_queue():
    # 8 pool threads and 50 greenlets: a counter under one Lock, a bounded
    # buffer under one Condition, and one queue.Queue, at once, under patch_all().
    assert check_python('''
        from gevent import monkey
        monkey.patch_all()
        import queue, threading
        import gevent
        from gruvi_gevent import ThreadPool

        THREADS, GREENLETS, ROUNDS = 8, 50, 300
        lock = threading.Lock()
        cond = threading.Condition()
        buffer = []
        q = queue.Queue(maxsize=20)
        count = [0]
        received = []

        def worker(i, greenlet):
            for j in range(ROUNDS):
                with lock:
                    count[0] += 1
                with cond:
                    cond.wait_for(lambda: len(buffer) < 10, timeout=20)
                    buffer.append((i, j))
                    cond.notify_all()
                q.put((i, j))
                if greenlet and j % 10 == 0:
                    gevent.sleep(0)
            return i

        def drain(total):
            got = 0
            while got < total:
                with cond:
                    cond.wait_for(lambda: buffer, timeout=20)
                    got += len(buffer)
                    buffer.clear()
                    cond.notify_all()
            return got

        def reader(total):
            for _ in range(total):
                received.append(q.get(timeout=20))

        total = (THREADS + GREENLETS) * ROUNDS
        with ThreadPool(THREADS + 2) as pool:
            drained = pool.submit(drain, total)
            read = gevent.spawn(reader, total)
            threads = [pool.submit(worker, i, False) for i in range(THREADS)]
            greenlets = [gevent.spawn(worker, i, True) for i in range(THREADS, THREADS + GREENLETS)]
            done = sorted([f.result(timeout=50) for f in threads] +
                          [g.get(timeout=50) for g in greenlets])
            drained = drained.result(timeout=50)
            read.get(timeout=50)
        print(done == list(range(THREADS + GREENLETS)), count[0] == total, drained == total,
              sorted(received) == [(i, j) for i in range(THREADS + GREENLETS) for j in range(ROUNDS)])
    ''') == ['True', 'True', 'True', 'True']
