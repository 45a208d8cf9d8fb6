"""Behaviour under gevent.monkey.patch_all(), each in a fresh interpreter."""

from pool_helpers import check_python as check


def test_blocking_of_a_really_blocking_call_runs_on_another_thread_while_the_hub_ticks():
    assert check('''
        from gevent import monkey
        monkey.patch_all()
        import time
        import gevent
        from gruvi_gevent import blocking

        real_sleep = monkey.get_original('time', 'sleep')
        real_ident = monkey.get_original('_thread', 'get_ident')
        ticks = []

        def ticker():
            while True:
                gevent.sleep(0.001)
                ticks.append(None)

        def job():
            # Really blocks its thread, until the hub has ticked ten times.
            deadline = time.monotonic() + 10
            while len(ticks) < 10 and time.monotonic() < deadline:
                real_sleep(0.005)
            return real_ident(), len(ticks)

        tick = gevent.spawn(ticker)
        ident, seen = blocking(job)
        tick.kill()
        print(ident != real_ident(), seen >= 10)
    ''') == ['True', 'True']


def test_thread_pool_jobs_run_on_real_os_threads():
    assert check('''
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from gruvi_gevent import ThreadPool, get_io_pool

        real_ident = monkey.get_original('_thread', 'get_ident')
        allocate_lock = monkey.get_original('_thread', 'allocate_lock')
        hub_ident = gevent.get_hub().thread_ident
        lock = allocate_lock()
        all_in = allocate_lock()
        all_in.acquire()
        arrived = []

        def job(_):
            # All three run at once: a turnstile of real locks lets them
            # through once the third has arrived.
            with lock:
                arrived.append(None)
                if len(arrived) == 3:
                    all_in.release()
            passed = all_in.acquire(True, 10)
            if passed:
                all_in.release()
            return real_ident(), passed

        with ThreadPool(3) as pool:
            results = list(pool.map(job, range(3), timeout=20))
        idents = {ident for ident, _ in results}
        assert all(passed for _, passed in results)
        print(len(idents), hub_ident not in idents, real_ident() not in idents)
        io = get_io_pool().submit(real_ident).result(timeout=10)
        print(io != hub_ident)
    ''') == ['3', 'True', 'True', 'True']


def test_debug_logging_with_many_failing_jobs_does_not_hang():
    assert check('''
        from gevent import monkey
        monkey.patch_all()
        import logging
        import gevent
        from gruvi_gevent import FiberPool, ThreadPool, blocking, wait

        logging.basicConfig(level=logging.DEBUG, format='%(threadName)s %(message)s')
        log = logging.getLogger('test')

        def fail(i):
            raise ValueError('job %d failed' % i)

        def bad_callback():
            raise RuntimeError('a done callback failed')

        def chatter():
            # The main hub logs all the time: it holds the handler lock often.
            while True:
                log.debug('chatter')
                gevent.sleep(0)

        talker = gevent.spawn(chatter)
        futures = []
        with ThreadPool(8, name='threads') as threads, FiberPool(8, name='fibers') as fibers:
            for i in range(300):
                for pool in (threads, fibers):
                    future = pool.submit(fail, i)
                    future.add_done_callback(bad_callback)
                    futures.append(future)
            done, pending = wait(futures, timeout=30)
            for i in range(20):
                try:
                    blocking(fail, i)
                except ValueError:
                    pass
        talker.kill()
        print(len(done), len(pending),
              all(isinstance(f.exception(), ValueError) for f in futures))
    ''') == ['600', '0', 'True']


def test_fiber_pool_from_a_native_thread_under_monkey_patching():
    assert check('''
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from gruvi_gevent import FiberPool, Future

        start_new_thread = monkey.get_original('_thread', 'start_new_thread')
        real_ident = monkey.get_original('_thread', 'get_ident')
        main = real_ident()
        outcome = Future()

        def native():
            try:
                futures = [pool.submit(lambda i=i: (i, real_ident())) for i in range(10)]
                outcome.set_result([f.result(timeout=10) for f in futures])
            except BaseException as exc:
                outcome.set_exception(exc)

        with FiberPool(3) as pool:
            start_new_thread(native, ())
            results = outcome.result(timeout=10)
        print([i for i, _ in results] == list(range(10)), {t for _, t in results} == {main})
    ''') == ['True', 'True']
