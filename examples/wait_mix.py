"""wait() and as_completed() on a mix of waitables.

One call waits on anything waitable: a ``gruvi_gevent.Future``, a gevent
``Greenlet``, a ``gevent.event.Event``, a ``gevent.subprocess.Popen`` child,
a ``concurrent.futures.Future`` completed by a plain thread. Each is ready in
its own way (a result is set, the greenlet has finished, the flag is set, the
child has exited, the executor's job is done) and comes out in the order it
became ready.
"""

import concurrent.futures
import sys
from time import monotonic

import gevent
import gevent.subprocess
from gevent import monkey
from gevent.event import Event

from gruvi_gevent import ThreadPool, Timeout, as_completed, wait

real_sleep = monkey.get_original('time', 'sleep')


def describe(obj):
    if isinstance(obj, gevent.Greenlet):
        return 'greenlet (value %r)' % obj.value
    if isinstance(obj, Event):
        return 'event (flag set)'
    if isinstance(obj, gevent.subprocess.Popen):
        return 'child process (exit code %d)' % obj.returncode
    if isinstance(obj, concurrent.futures.Future):
        return 'concurrent.futures future (result %r)' % obj.result()
    return 'gruvi_gevent future (result %r)' % obj.result()


def main():
    child = gevent.subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.4)'])
    event = Event()
    gevent.spawn_later(0.25, event.set)
    greenlet = gevent.spawn(lambda: gevent.sleep(0.1) or 'slept')
    with ThreadPool(2, name='workers') as pool, \
            concurrent.futures.ThreadPoolExecutor(1) as executor:
        future = pool.submit(lambda: real_sleep(0.05) or 42)
        cfuture = executor.submit(lambda: real_sleep(0.2) or 'from an executor')
        objects = [child, event, greenlet, future, cfuture]

        # as_completed(): one at a time, in the order they become ready.
        start = monotonic()
        seen = []
        for obj in as_completed(objects, timeout=10):
            seen.append(obj)
            print('%5.2f s  %s' % (monotonic() - start, describe(obj)))
        assert sorted(map(id, seen)) == sorted(map(id, objects))

        # wait(): everything is ready now, so this returns at once.
        done, pending = wait(objects, timeout=10)
        assert len(done) == 5 and pending == []

    # wait() with a count and a timeout returns what is ready; nothing raises.
    never = Event()
    soon = gevent.spawn(gevent.sleep, 0.05)
    done, pending = wait([never, soon], timeout=0.5)
    assert done == [soon] and pending == [never]
    print('wait(timeout=0.5): %d done, %d pending' % (len(done), len(pending)))

    # as_completed() raises Timeout instead, after yielding what was ready.
    try:
        for obj in as_completed([never], timeout=0.1):
            raise AssertionError('the event is never set')
    except Timeout:
        print('as_completed(timeout=0.1) on an event nobody sets: Timeout')
    print('wait_mix: OK')


if __name__ == '__main__':
    main()
