"""Exit, close and fork: what happens to pools, threads and waiters.

Each scenario runs in a fresh interpreter (a script with a watchdog), since
interpreter exit and fork are what it tests: ``close()`` returns once the
pool threads are gone; exit with pool threads running never crashes, plain
or monkey-patched; thread work submitted before exit runs to completion and
``submit()`` after shutdown began raises ``RuntimeError``, as in
``concurrent.futures``; a greenlet waiting in ``result()`` is woken in a
forked child even when the wake-up was owed by a thread that the fork left
behind, and the parent's ``os.waitpid()`` returns even when that child
exited before ``os.fork()`` returned in the parent; the process-wide pools come back after a close; an idle
``FiberPool`` keeps no ``gevent.wait()`` waiting; and the first pool use
does not wait for the spawner thread to build its hub.
"""

import concurrent.futures
import subprocess
import sys
import textwrap
import threading
import weakref

import gevent
import pytest

from gruvi_gevent import ThreadPool, blocking, get_cpu_pool, get_io_pool

SCRIPT_TIMEOUT = 50
PROLOGUE = '''
    import faulthandler, sys
    faulthandler.enable()       # a crash shows where it happened
    faulthandler.dump_traceback_later(40, exit=True)
    if sys.argv[1:2] == ['patched']:
        from gevent import monkey
        monkey.patch_all()
'''


def run_script(script, *args):
    """Run *script* in a fresh interpreter; return (returncode, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, '-c', textwrap.dedent(PROLOGUE) + textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr


# close() and exit with pool threads that made hubs of their own (gevent.sleep).
CLOSE_AND_EXIT = '''
    import gevent
    from gruvi_gevent import ThreadPool, wait

    pool = ThreadPool(16)
    done, pending = wait([pool.submit(gevent.sleep, 0.02) for _ in range(16)], timeout=10)
    assert not pending
    pool.close()
    # And exit with threads of another pool still running.
    running = ThreadPool(4)
    for _ in range(8):
        running.submit(gevent.sleep, 0.01)
'''


# 50 interpreters, four at a time: some 10-25 s on a loaded 2-core machine.
@pytest.mark.timeout(150)
@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_exit_after_close_and_with_running_threads_never_crashes(patching):
    runs = 50
    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        outcomes = list(executor.map(lambda _: run_script(CLOSE_AND_EXIT, patching),
                                     range(runs)))
    failures = [outcome for outcome in outcomes if outcome != (0, '', '')]
    assert not failures, '%d of %d runs failed, the first: %r' % (
        len(failures), runs, failures[0])


class Token:
    """Kept by a pool thread in its thread-local storage, which goes with the thread."""


def test_close_returns_once_the_threads_are_gone(pool_factory):
    pool = pool_factory(ThreadPool, 8)      # closed at teardown too, if an assertion fails
    local = threading.local()   # not monkey-patched here: storage of each OS thread

    def token_after_sleep():
        gevent.sleep(0.01)        # makes a hub in the pool thread
        local.token = token = Token()
        return weakref.ref(token)

    refs = [future.result(10) for future in [pool.submit(token_after_sleep)
                                             for _ in range(8)]]
    pool.close()
    assert [ref() for ref in refs] == [None] * 8


AT_EXIT = '''
    import atexit, sys, time
    from gevent import monkey
    from gruvi_gevent import FiberPool, ThreadPool, blocking

    threads = ThreadPool(2)
    fibers = FiberPool(2)
    release = monkey.get_original('_thread', 'allocate_lock')()
    release.acquire()

    def slow(n):
        with release:
            sys.stdout.write('ran %d\\n' % n)
            sys.stdout.flush()

    for n in range(6):
        threads.submit(slow, n)

    def late():
        for name, call in [('thread', lambda: threads.submit(abs, -1)),
                           ('fiber', lambda: fibers.submit(abs, -1)),
                           ('new', lambda: ThreadPool(1).submit(abs, -1)),
                           ('blocking', lambda: blocking(abs, -1))]:
            try:
                call()
            except RuntimeError as exc:
                print(name, 'refused:', exc, flush=True)
            else:
                print(name, 'accepted', flush=True)

    atexit.register(late)

    def release_later():
        monkey.get_original('time', 'sleep')(0.2)
        release.release()

    monkey.get_original('_thread', 'start_new_thread')(release_later, ())
    print('main module done', flush=True)
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_thread_work_runs_at_exit_and_later_submits_fail(patching):
    code, out, err = run_script(AT_EXIT, patching)
    assert (code, err) == (0, '')
    lines = out.splitlines()
    assert lines[0] == 'main module done'
    assert sorted(lines[1:7]) == ['ran %d' % n for n in range(6)]
    assert [line.split(':')[0] for line in lines[7:]] == [
        'thread refused', 'fiber refused', 'new refused', 'blocking refused']
    assert 'after interpreter shutdown began' in lines[7]


FORK_IN_CALLBACKS = '''
    import os, threading, warnings
    # Python 3.12+ warns on fork() with other threads running: forking while
    # a thread runs done callbacks is the very case under test.
    warnings.filterwarnings('ignore', category=DeprecationWarning,
                            message=r'This process \\(pid=\\d+\\) is multi-threaded')
    import gevent
    from gevent import monkey
    from gruvi_gevent import Future

    allocate_lock = monkey.get_original('_thread', 'allocate_lock')
    start_new_thread = monkey.get_original('_thread', 'start_new_thread')
    future = Future()
    in_callback = allocate_lock()
    in_callback.acquire()
    gate = allocate_lock()
    gate.acquire()

    def slow_callback():
        in_callback.release()
        gate.acquire()          # the thread is here when the process forks

    future.add_done_callback(slow_callback)
    waiter = gevent.spawn(future.result)
    gevent.idle()
    assert future._callback_count() == 2       # the waiter's wake-up comes second
    start_new_thread(future.set_result, (42,))
    in_callback.acquire()

    def child_exits_first():
        # The parent's fork() returns only once the child has exited (not
        # reaped): its SIGCHLD comes before gevent's fork starts watching it.
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)

    os.register_at_fork(after_in_parent=child_exits_first)
    pid = os.fork()
    if pid == 0:
        result = waiter.get(timeout=5)
        os._exit(0 if result == 42 else 1)
    gate.release()
    assert waiter.get(timeout=10) == 42
    _, status = os.waitpid(pid, 0)
    print('child', os.waitstatus_to_exitcode(status))
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_fork_inside_set_result_callbacks_wakes_the_childs_waiter(patching):
    assert run_script(FORK_IN_CALLBACKS, patching) == (0, 'child 0\n', '')


def test_closed_process_wide_pools_are_replaced():
    with get_io_pool() as io:
        pass
    assert blocking(abs, -1) == 1
    assert get_io_pool() is not io
    cpu = get_cpu_pool()
    cpu.close()
    assert get_cpu_pool().submit(abs, -2).result(10) == 2
    assert get_cpu_pool() is not cpu


IDLE_FIBERS = '''
    import time
    import gevent
    from gruvi_gevent import FiberPool

    pool = FiberPool(4)
    assert [f.result(10) for f in [pool.submit(abs, -n) for n in range(4)]] == [0, 1, 2, 3]
    start = time.monotonic()
    gevent.wait(timeout=10)
    print('%.1f' % (time.monotonic() - start))
    assert len(pool) == 4
'''


def test_idle_fiber_pool_does_not_keep_gevent_wait_busy():
    code, out, err = run_script(IDLE_FIBERS)
    assert (code, err) == (0, '')
    assert float(out) < 5


SLOW_SPAWNER = '''
    import time
    from gevent import monkey
    import gruvi_gevent._spawner
    from gruvi_gevent import ThreadPool

    sleep = monkey.get_original('time', 'sleep')
    real_get_hub = gruvi_gevent._spawner.get_hub

    def slow_get_hub():
        sleep(1.0)      # a spawner thread slow to build its hub (a loaded machine)
        return real_get_hub()

    gruvi_gevent._spawner.get_hub = slow_get_hub
    pool = ThreadPool(2)
    start = time.monotonic()
    future = pool.submit(abs, -1)
    took = time.monotonic() - start
    assert future.result(10) == 1
    print('%.2f' % took)
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_first_pool_use_does_not_wait_for_the_spawner(patching):
    code, out, err = run_script(SLOW_SPAWNER, patching)
    assert (code, err) == (0, '')
    assert float(out) < 0.5
