"""Futures across native threads and the hub.

* A plain OS thread submits jobs to a ``FiberPool`` that the main thread's
  hub runs, and waits for their results: ``result()`` blocks only that thread.
* Meanwhile a greenlet in the main thread waits for a ``Future`` that the
  OS thread completes: only that greenlet is parked, the hub keeps running.
* ``wait()`` works in either place, on futures of either kind of pool.
* ``blocking()`` called from a plain thread simply blocks that thread.
"""

import threading
from time import monotonic

import gevent
from gevent import monkey

from gruvi_gevent import FiberPool, Future, ThreadPool, blocking, wait

real_sleep = monkey.get_original('time', 'sleep')


def fiber_job(n):
    gevent.sleep(0.01)           # runs in a greenlet of the main thread's hub
    return n * 2


def thread_job(n):
    real_sleep(0.01)             # runs in an OS thread of the ThreadPool
    return n * 3


def worker_thread(fibers, threads, handoff, report):
    """A plain OS thread without a hub: every wait here blocks just this thread."""
    fiber_futures = [fibers.submit(fiber_job, n) for n in range(5)]
    thread_futures = [threads.submit(thread_job, n) for n in range(5)]
    done, pending = wait(fiber_futures + thread_futures, timeout=10)
    report['waited'] = (len(done), len(pending))
    report['results'] = ([f.result() for f in fiber_futures],
                         [f.result() for f in thread_futures])
    report['blocking'] = blocking(threading.get_ident)
    handoff.set_result('hello from thread %d' % threading.get_ident())


def main():
    ticks = []

    def tick():
        while True:
            gevent.sleep(0.01)
            ticks.append(monotonic())

    ticker = gevent.spawn(tick)

    handoff = Future()           # completed by the OS thread, awaited by a greenlet
    report = {}
    with FiberPool(10, name='fibers') as fibers, ThreadPool(4, name='threads') as threads:
        thread = threading.Thread(target=worker_thread,
                                  args=(fibers, threads, handoff, report))
        start = monotonic()
        thread.start()
        message = handoff.result(timeout=10)   # parks this greenlet only
        took = monotonic() - start
        thread.join(10)
    ticker.kill()

    fiber_results, thread_results = report['results']
    assert report['waited'] == (10, 0)
    assert fiber_results == [0, 2, 4, 6, 8] and thread_results == [0, 3, 6, 9, 12]
    assert report['blocking'] not in (thread.ident, threading.get_ident())
    assert ticks, 'the hub kept running while the greenlet waited'
    print('from the OS thread: fiber results %s, thread results %s'
          % (fiber_results, thread_results))
    print('blocking() from the OS thread ran in an IO-pool thread')
    print('the main greenlet got %r after %.2f s; the hub ticked %d times meanwhile'
          % (message.split(' from')[0], took, len(ticks)))
    print('threads: OK')


if __name__ == '__main__':
    main()
