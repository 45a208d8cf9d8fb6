"""Fan-out with FiberPool: many slow lookups at once, results in order.

``FiberPool.map`` submits one job per item and yields the results in input
order; the whole takes about as long as the slowest round of jobs, not the
sum of them. ``submit`` plus ``as_completed`` hands results out as they
arrive instead, and a ``timeout`` on ``map`` cancels what has not finished.
"""

from time import monotonic

import gevent

from gruvi_gevent import FiberPool, Timeout, as_completed


def lookup(key):
    """A stand-in for a network call: waits the gevent way, then answers."""
    gevent.sleep(0.05 + 0.01 * (key % 5))
    return key * key


def main():
    keys = list(range(40))

    # 1. map(): 40 lookups, at most 20 at a time, results in input order.
    with FiberPool(20, name='lookups') as pool:
        start = monotonic()
        squares = list(pool.map(lookup, keys, timeout=10))
        took = monotonic() - start
    assert squares == [key * key for key in keys], squares
    serial = sum(0.05 + 0.01 * (key % 5) for key in keys)
    print('map: %d lookups in %.2f s (one after another: %.2f s)' % (len(keys), took, serial))

    # 2. submit() + as_completed(): handle each result as soon as it is there.
    with FiberPool(name='first-come') as pool:
        futures = [pool.submit(lookup, key) for key in (4, 1, 3, 0, 2)]
        order = [future.result() for future in as_completed(futures, timeout=10)]
    assert sorted(order) == [0, 1, 4, 9, 16], order
    print('as_completed: results in the order they arrived: %s' % order)

    # 3. A deadline: map() raises Timeout and cancels the jobs still running.
    def slow(seconds):
        gevent.sleep(seconds)
        return seconds

    with FiberPool(10, name='deadline') as pool:
        got = []
        try:
            for value in pool.map(slow, [0.01, 0.02, 5.0, 5.0], timeout=0.5):
                got.append(value)
        except Timeout:
            print('timeout: got %s before the deadline; the rest was cancelled' % got)
        else:
            raise AssertionError('map() should have timed out')
        start = monotonic()
    # close() (end of the with block) returned at once: nothing left running.
    assert monotonic() - start < 2.0
    assert got == [0.01, 0.02], got
    print('fanout: OK')


if __name__ == '__main__':
    main()
