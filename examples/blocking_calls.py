"""blocking(): calls that monkey-patching cannot reach, out of the hub's way.

``gevent.monkey.patch_all()`` makes the standard library cooperative, but not
C extensions and libraries that block in C: database drivers, compression,
key derivation, a ``sleep`` made inside a C library. Such a call made in a
greenlet freezes the hub and every other greenlet with it. ``blocking(func,
*args)`` runs it in the process-wide IO thread pool and parks only the
calling greenlet until it returns.

Here a ticker greenlet counts ticks every 20 ms while other greenlets make
blocking calls: a slow SQLite query and a stand-in for a blocking C call.
Through ``blocking()`` the ticker keeps ticking; made directly, it stops.
"""

from gevent import monkey

monkey.patch_all()

import sqlite3  # noqa: E402  (after patch_all, as monkey-patching wants)
from time import monotonic  # noqa: E402

import gevent  # noqa: E402

from gruvi_gevent import blocking, get_io_pool  # noqa: E402

# The original time.sleep: the patched one would yield to the hub. It stands
# for any call that blocks its OS thread in C code gevent cannot patch.
c_sleep = monkey.get_original('time', 'sleep')

TICK = 0.02


def slow_query(limit):
    """Count to *limit* in SQLite: the driver blocks its thread in C meanwhile."""
    connection = sqlite3.connect(':memory:')
    try:
        sql = ('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) '
               'SELECT count(*), sum(i) FROM n')
        return connection.execute(sql, (limit,)).fetchone()
    finally:
        connection.close()


def legacy_call(seconds):
    """A gevent-unaware library call: blocks the OS thread it runs in."""
    c_sleep(seconds)
    return seconds


def ticker(ticks):
    while True:
        gevent.sleep(TICK)
        ticks.append(monotonic())


def main():
    ticks = []
    tick_greenlet = gevent.spawn(ticker, ticks)
    gevent.sleep(0.1)

    # Eight greenlets, each making a blocking call through blocking().
    start = monotonic()
    before = len(ticks)
    calls = [gevent.spawn(blocking, legacy_call, 0.3) for _ in range(6)]
    calls += [gevent.spawn(blocking, slow_query, 200_000) for _ in range(2)]
    gevent.joinall(calls, timeout=30, raise_error=True)
    took = monotonic() - start
    through_pool = len(ticks) - before
    assert [call.value for call in calls[:6]] == [0.3] * 6
    assert all(call.value == (200_000, 200_000 * 200_001 // 2) for call in calls[6:])
    print('with blocking():    8 blocking calls took %.2f s; the ticker ticked %d times'
          % (took, through_pool))

    # The same kind of call made directly in a greenlet: the hub is frozen.
    start = monotonic()
    before = len(ticks)
    legacy_call(0.3)
    frozen = len(ticks) - before
    print('without blocking(): 1 blocking call took %.2f s; the ticker ticked %d times'
          % (monotonic() - start, frozen))

    tick_greenlet.kill()
    assert through_pool > 0, 'the hub should have kept running'
    assert frozen == 0, 'nothing runs while the hub is blocked'
    print('the IO pool has %d threads (at most %s)' % (len(get_io_pool()), get_io_pool().maxsize))
    print('blocking_calls: OK')


if __name__ == '__main__':
    main()
