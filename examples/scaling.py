"""ProcessPool: pure-Python work on every core, waited on like any future.

The hub stays free while the workers compute (a ticker greenlet keeps
ticking), results arrive with as_completed() as they finish, and cancelling
a running job kills its worker process, which the pool replaces.
"""

import time

import gevent
from gruvi_gevent import ProcessPool, as_completed


def count_primes(limit):
    """Pure Python, CPU-bound: one core per call."""
    return sum(all(n % d for d in range(2, int(n ** 0.5) + 1)) for n in range(2, limit))


def tick(ticks):
    while True:
        gevent.sleep(0.01)
        ticks.append(None)


def main():
    ticks = []
    ticker = gevent.spawn(tick, ticks)
    with ProcessPool(maxsize=2) as pool:
        print(list(pool.map(count_primes, [1000, 2000, 3000], timeout=30)))  # [168, 303, 430]
        futures = [pool.submit(count_primes, limit) for limit in (20_000, 2_000)]
        for future in as_completed(futures, timeout=30):
            print('done:', future.result())          # 303 first, then 2262
        stuck = pool.submit(time.sleep, 60)           # a job that would run for a minute
        while not stuck.running():
            gevent.sleep(0.01)
        print('cancelled:', stuck.cancel())           # True: its worker is killed
        print('next job:', pool.submit(count_primes, 100).result(timeout=30))   # 25
    ticker.kill()
    print('the hub ticked %s' % ('meanwhile' if ticks else 'never'))
    print('scaling: OK')


if __name__ == '__main__':      # workers import this file: start nothing at import
    main()
