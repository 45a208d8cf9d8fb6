"""Child processes under gevent's patch_all(): subprocess in pool threads, and multiprocessing.

Each scenario runs in a fresh interpreter under a watchdog.
"""

from pool_helpers import check_python


def test_subprocess_in_blocking_and_in_pool_threads():
    # The main thread starts a child first, through gevent's own Popen: from
    # then on gevent's default loop reaps every child, the pool threads' too.
    assert check_python('''
        from gevent import monkey
        monkey.patch_all()
        import subprocess, sys
        import gevent
        from gruvi_gevent import ThreadPool, blocking

        print(subprocess.run([sys.executable, '-c', 'raise SystemExit(7)']).returncode)
        ticks = []

        def ticker():
            while True:
                gevent.sleep(0.001)
                ticks.append(None)

        def job(i):
            done = subprocess.run(
                [sys.executable, '-c', 'import sys; print(sys.argv[1]); sys.exit(int(sys.argv[1]) % 5)',
                 str(i)], capture_output=True, text=True, timeout=30)
            child = subprocess.Popen(['sleep', '0.05'])
            return done.returncode, done.stdout.strip(), child.wait(30), \\
                subprocess.check_output(['echo', str(i)], timeout=30)

        tick = gevent.spawn(ticker)
        print(blocking(job, 3) == (3, '3', 0, b'3\\n'))
        with ThreadPool(4) as pool:
            results = list(pool.map(job, range(40), timeout=60))
        tick.kill()
        print(results == [(i % 5, str(i), 0, b'%d\\n' % i) for i in range(40)], len(ticks) > 10)
    ''') == ['7', 'True', 'True', 'True']


def test_subprocess_in_a_pool_thread_of_a_process_without_a_hub():
    # Nothing has made the main thread's hub: no loop to hand the fork to.
    assert check_python('''
        from gevent import monkey
        monkey.patch_all()
        import subprocess, sys
        from gruvi_gevent import ThreadPool

        def job(i):
            return subprocess.run([sys.executable, '-c', 'raise SystemExit(%d)' % i]).returncode

        with ThreadPool(2) as pool:
            print(list(pool.map(job, range(4), timeout=30)))
    ''') == ['[0,', '1,', '2,', '3]']


def test_process_pool_executor_with_spawn_is_the_advice_for_multiprocessing():
    # multiprocessing.Pool hangs under patch_all() (see the monkey patching
    # guide); ProcessPoolExecutor on the spawn start method is the advice.
    assert check_python('''
        from gevent import monkey
        monkey.patch_all()
        import concurrent.futures, multiprocessing, operator
        import gevent
        import gruvi_gevent

        ticks = []

        def ticker():
            while True:
                gevent.sleep(0.005)
                ticks.append(None)

        tick = gevent.spawn(ticker)
        spawn = multiprocessing.get_context('spawn')
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as executor:
            squares = list(executor.map(operator.mul, range(100), range(100)))
            futures = [executor.submit(pow, 2, i) for i in range(50)]
            powers = [future.result(timeout=30) for future in futures]
        tick.kill()
        print(squares == [i * i for i in range(100)], powers == [2 ** i for i in range(50)],
              len(ticks) > 0)
    ''') == ['True', 'True', 'True']
