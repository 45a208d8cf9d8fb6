"""Legacy code under gevent's patch_all(), run through blocking() and ThreadPool.

Each scenario runs in a fresh interpreter under a watchdog (a hang fails the
test, it does not stall the suite), with nothing but gevent's ``patch_all()``,
``logging.basicConfig(filename=...)`` and ``import gruvi_gevent``, at the
sizes of the bug reports, and checks that every line, count and item arrived.
"""

import textwrap

import pytest

from pool_helpers import check_python

PATCHED = '''
    from gevent import monkey
    monkey.patch_all()
    import logging, os, sys, tempfile
    LOG_FILE = os.path.join(tempfile.mkdtemp(), 'app.log')
    logging.basicConfig(filename=LOG_FILE, level=logging.INFO, format='%(message)s')
    import gevent
    import gruvi_gevent
    from gruvi_gevent import ThreadPool, blocking

    def logged_lines():
        logging.shutdown()
        with open(LOG_FILE) as file:
            return file.read().split('\\n')[:-1]
'''


def check(code):
    return check_python(textwrap.dedent(PATCHED) + textwrap.dedent(code))


@pytest.mark.parametrize('threads, greenlets', [(4, 4), (2, 0), (1, 4)],
                         ids=['4-calls-4-greenlets', '2-calls', '1-call-4-greenlets'])
def test_logging_from_blocking_calls_and_greenlets(threads, greenlets):
    assert check('''
        THREADS, GREENLETS = %d, %d
        log = logging.getLogger('app')

        def from_thread(i):
            for j in range(1500):
                log.info('thread %%d %%d', i, j)

        def from_greenlet(i):
            for j in range(200):
                log.info('greenlet %%d %%d', i, j)
                gevent.sleep(0)

        jobs = [gevent.spawn(blocking, from_thread, i) for i in range(THREADS)]
        jobs += [gevent.spawn(from_greenlet, i) for i in range(GREENLETS)]
        gevent.joinall(jobs, raise_error=True)
        expected = {'thread %%d %%d' %% (i, j) for i in range(THREADS) for j in range(1500)}
        expected |= {'greenlet %%d %%d' %% (i, j) for i in range(GREENLETS) for j in range(200)}
        lines = logged_lines()
        print(len(lines), sorted(lines) == sorted(expected))
    ''' % (threads, greenlets)) == [str(threads * 1500 + greenlets * 200), 'True']


def test_blocking_calls_sharing_an_rlock():
    assert check('''
        import threading
        lock = threading.RLock()
        counts = [0] * 4

        def work(i):
            for _ in range(20000):
                with lock:
                    with lock:          # and again: it is reentrant
                        counts[i] += 1
            return counts[i]

        jobs = [gevent.spawn(blocking, work, i) for i in range(4)]
        gevent.joinall(jobs, raise_error=True)
        print([job.value for job in jobs], lock.locked())
    ''') == ['[20000,', '20000,', '20000,', '20000]', 'False']


def test_gevent_threadpool_threads_sharing_an_rlock():
    # No greenlets at all and none of the library's pools: gevent's own
    # threads, which hang on gevent's lock (eight of them, 20,000
    # acquisitions each, hang every time); the library's import fixes them.
    assert check('''
        import threading
        lock = threading.RLock()
        count = [0]

        def work():
            for _ in range(20000):
                with lock:
                    count[0] += 1

        pool = gevent.get_hub().threadpool
        results = [pool.spawn(work) for _ in range(8)]
        gevent.joinall(results, raise_error=True)
        print(count[0])
    ''') == ['160000']


def test_queue_between_greenlet_producers_and_blocking_consumers():
    assert check('''
        import queue
        q = queue.Queue(maxsize=50)
        ITEMS = 2000

        def produce(i):
            for j in range(ITEMS):
                q.put((i, j))

        def consume():
            got = []
            while True:
                item = q.get()
                if item is None:
                    return got
                got.append(item)

        producers = [gevent.spawn(produce, i) for i in range(4)]
        consumers = [gevent.spawn(blocking, consume) for _ in range(4)]
        gevent.joinall(producers, raise_error=True)
        for _ in consumers:
            q.put(None)
        gevent.joinall(consumers, raise_error=True)
        items = [item for consumer in consumers for item in consumer.value]
        print(len(items), sorted(items) == [(i, j) for i in range(4) for j in range(ITEMS)])
    ''') == ['8000', 'True']


def test_condition_event_and_semaphore_between_greenlets_and_pool_threads():
    assert check('''
        import threading
        cond = threading.Condition()
        ready = []
        event = threading.Event()
        slots = threading.BoundedSemaphore(2)
        inside = [0, 0]     # now, most at once

        def use_slot(in_greenlet):
            with slots:
                inside[0] += 1
                inside[1] = max(inside)
                if in_greenlet:
                    gevent.sleep(0)     # others come in meanwhile
                inside[0] -= 1

        def waiter(i, in_greenlet):
            with cond:
                assert cond.wait_for(lambda: ready, timeout=10)
            assert event.wait(10)
            use_slot(in_greenlet)
            return i

        def notifier():
            with cond:
                ready.append(True)
                cond.notify_all()
            event.set()

        with ThreadPool(4) as pool:
            threads = [pool.submit(waiter, i, False) for i in range(4)]
            greenlets = [gevent.spawn(waiter, i, True) for i in range(4, 8)]
            gevent.sleep(0.05)
            blocking(notifier)
            got = sorted([f.result(timeout=10) for f in threads] +
                         [g.get(timeout=10) for g in greenlets])
        print(got == list(range(8)), inside[1] <= 2)
    ''') == ['True', 'True']


def test_library_logging_from_a_pool_made_before_the_main_hub():
    # The import-time pattern: the pool exists before the main thread has a
    # hub. 300 failing jobs, raising done callbacks and DEBUG logging: every
    # job completes, and the process exits (no hang in logging.shutdown).
    assert check('''
        logging.getLogger().setLevel(logging.DEBUG)
        threads = ThreadPool(8, name='early')

        def fail(i):
            raise ValueError('job %d failed' % i)

        def bad_callback():
            raise RuntimeError('a done callback failed')

        futures = []
        for i in range(300):
            future = threads.submit(fail, i)
            future.add_done_callback(bad_callback)
            futures.append(future)
        done, pending = gruvi_gevent.wait(futures, timeout=30)
        threads.close()
        lines = logged_lines()
        print(len(done), len(pending),
              sum('a done callback failed' in line for line in lines) >= 300)
    ''') == ['300', '0', 'True']


def test_gevent_patch_all_after_the_import_installs_the_locks_too():
    # import gruvi_gevent first, gevent's patch_all() later: gevent's patch
    # event installs the locks, and a logging setup made before it works.
    assert check_python('''
        import logging, os, tempfile
        LOG_FILE = os.path.join(tempfile.mkdtemp(), 'app.log')
        logging.basicConfig(filename=LOG_FILE, level=logging.INFO, format='%(message)s')
        import gruvi_gevent
        from gruvi_gevent import blocking
        from gevent import monkey
        monkey.patch_all()
        import threading
        import gevent
        log = logging.getLogger('app')

        def from_thread(i):
            for j in range(1500):
                log.info('thread %d %d', i, j)

        jobs = [gevent.spawn(blocking, from_thread, i) for i in range(4)]
        jobs += [gevent.spawn(lambda: [log.info('greenlet') or gevent.sleep(0) for _ in range(200)])
                 for _ in range(4)]
        gevent.joinall(jobs, raise_error=True)
        logging.shutdown()
        with open(LOG_FILE) as file:
            print(len(file.readlines()), type(threading.Lock()).__module__)
    ''') == ['6800', 'gruvi_gevent._locks']


def test_our_patch_all_leaves_no_window_for_gevent_locks():
    # A lock made right after patching, before anything imports the rest of
    # the library, is one of ours when the program patches through us.
    assert check_python('''
        from gruvi_gevent import monkey
        print(monkey.patch_locks())          # nothing patched yet: nothing to do
        monkey.patch_all()
        import threading
        early = threading.RLock()
        import gevent
        from gruvi_gevent import blocking
        count = [0]

        def work():
            for _ in range(20000):
                with early:
                    count[0] += 1

        gevent.joinall([gevent.spawn(blocking, work) for _ in range(4)], raise_error=True)
        print(count[0], type(early).__name__, monkey.patch_locks())
    ''') == ['False', '80000', 'RLock', 'True']
