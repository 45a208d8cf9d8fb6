"""os.fork() in a process that has used the pools and blocking().

pytest itself never forks: each test runs a script in a fresh interpreter,
which uses every pool and ``blocking()``, leaves work pending, and forks. The
child reports through a pipe and its exit code; every wait in the script has
a timeout and a watchdog ends a stuck process (its own and the child's), so a
hang is a failure with a stack dump, never a stuck run.

In the child, futures of jobs that were running or queued on the parent's
threads complete with an error instead of hanging (those threads do not exist
there), and new work on every pool and ``blocking()`` succeed. The parent
carries on as if nothing happened.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT_TIMEOUT = 60

FORK_SCRIPT = '''
    import faulthandler, json, os, sys, traceback
    faulthandler.dump_traceback_later(40, exit=True)
    if sys.argv[1] == 'patched':
        from gevent import monkey
        monkey.patch_all()
    import gevent
    from gevent import monkey
    from gruvi_gevent import (Error, FiberPool, Future, ThreadPool, blocking, get_cpu_pool,
                              get_io_pool, wait)

    get_ident = monkey.get_original('_thread', 'get_ident')
    allocate_lock = monkey.get_original('_thread', 'allocate_lock')
    start_new_thread = monkey.get_original('_thread', 'start_new_thread')
    T = 10

    fibers = FiberPool(4, name='fibers')
    threads = ThreadPool(1, name='threads')
    io, cpu = get_io_pool(), get_cpu_pool()

    # Use everything once.
    assert fibers.submit(abs, -1).result(T) == 1
    assert threads.submit(abs, -2).result(T) == 2
    assert cpu.submit(abs, -3).result(T) == 3
    assert list(fibers.map(abs, [-4, -5], timeout=T)) == [4, 5]
    assert blocking(get_ident) != get_ident()

    # Work pending at the fork: jobs running on (and queued behind) the
    # parent's threads, and a fiber job parked in blocking().
    gate = allocate_lock()
    gate.acquire()

    def hold(started):
        started.set_result(None)
        with gate:
            return 'parent'

    started = [Future() for _ in range(4)]
    pending = {
        'threads-running': threads.submit(hold, started[0]),
        'threads-queued': threads.submit(str, 'parent'),
        'cpu-running': cpu.submit(hold, started[1]),
        'io-running': io.submit(hold, started[2]),
        'fiber-in-blocking': fibers.submit(blocking, hold, started[3]),
    }
    for future in started:
        future.result(T)

    if sys.argv[2] == 'busy':
        # Native threads keep pumping work through the pools and futures while
        # the process forks, so that locks are likely held at that moment.
        stop = []

        def pump(pool):
            while not stop:
                pool.submit(abs, -1).result(T)
                Future().set_result(1)

        for pool in (io, cpu):
            start_new_thread(pump, (pool,))

    def new_work():
        return {
            'fibers': fibers.submit(str, 'ok').result(T),
            'threads': threads.submit(str, 'ok').result(T),
            'io': io.submit(str, 'ok').result(T),
            'cpu': cpu.submit(str, 'ok').result(T),
            'map': list(threads.map(str, ['ok', 'ok'], timeout=T)),
            'blocking': blocking(str, 'ok'),
            'blocking-on-another-thread': blocking(get_ident) != get_ident(),
            'wait': len(wait([fibers.submit(abs, 1), threads.submit(abs, 1)], timeout=T)[0]),
        }

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The child: report through the pipe; the exit code says whether it got there.
        try:
            os.close(read_end)
            report = {'pending': {}}
            for name, future in pending.items():
                exc = future.exception(T)
                report['pending'][name] = type(exc).__name__
            report['new'] = new_work()
            report['same-io-pool'] = get_io_pool() is io
            for pool in (fibers, threads, io, cpu):
                pool.close()
            report['sizes-after-close'] = [len(pool) for pool in (fibers, threads, io, cpu)]
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(3)

    # The parent.
    os.close(write_end)
    if sys.argv[2] == 'busy':
        stop.append(True)
    gate.release()
    parent = {
        'pending': {name: future.result(T) for name, future in pending.items()},
        'new': new_work(),
        'threads-size': len(threads),
    }
    data = b''
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    print(json.dumps({
        'child': json.loads(data) if data else None,
        'child-exit': os.waitstatus_to_exitcode(status),
        'parent': parent,
    }))
'''


@pytest.mark.parametrize('load', ['quiet', 'busy'])
@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_fork_after_using_the_pools(patching, load):
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(FORK_SCRIPT), patching, load],
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report['child-exit'] == 0, proc.stderr
    child = report['child']

    # Pending at the fork: an error in the child, not a hang.
    assert child['pending'] == {
        'threads-running': 'Error',
        'threads-queued': 'Error',
        'cpu-running': 'Error',
        'io-running': 'Error',
        'fiber-in-blocking': 'Error',
    }
    # New work everywhere.
    assert child['new'] == {
        'fibers': 'ok', 'threads': 'ok', 'io': 'ok', 'cpu': 'ok', 'map': ['ok', 'ok'],
        'blocking': 'ok', 'blocking-on-another-thread': True, 'wait': 2,
    }
    assert child['same-io-pool'] is True
    assert child['sizes-after-close'] == [0, 0, 0, 0]

    # The parent did not notice.
    parent = report['parent']
    assert parent['pending'] == dict.fromkeys(child['pending'], 'parent')
    assert parent['new'] == child['new']
    assert parent['threads-size'] == 1
    assert proc.stderr == ''


PARENT_WAKEUPS = '''
    import faulthandler, os, sys, time
    faulthandler.dump_traceback_later(45, exit=True)
    if sys.argv[1] == 'patched':
        from gevent import monkey
        monkey.patch_all()
    import gevent
    from gevent import monkey
    from gruvi_gevent import Future, Timeout

    start_new_thread = monkey.get_original('_thread', 'start_new_thread')
    lost = 0
    for round_number in range(10):
        read_end, write_end = os.pipe()
        # The hub runs this greenlet from its callbacks now: the fork happens
        # in the middle of one of the hub's loop iterations.
        gevent.sleep(0)
        pid = os.fork()
        if pid == 0:
            os.write(write_end, b'x')
            # The child's hub goes on with that iteration and polls for a while.
            gevent.sleep(0.05)
            os._exit(0)
        # The parent: a native thread wakes this greenlet while the child polls.
        future = Future()

        def complete(number=round_number):
            os.read(read_end, 1)
            future.set_result(number)

        start_new_thread(complete, ())
        # A lost wake-up shows as the wait lasting until its timer fires.
        started = time.monotonic()
        try:
            assert future.result(timeout=5) == round_number
        except Timeout:
            pass
        if time.monotonic() - started > 1:
            lost += 1
        os.waitpid(pid, 0)
        os.close(read_end)
        os.close(write_end)
    print(lost)
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_fork_does_not_steal_the_parents_wake_ups(patching):
    # A fork in the middle of a loop iteration: the child's hub must not poll
    # what it shares with the parent, or it takes the parent's wake-ups.
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(PARENT_WAKEUPS), patching],
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '0', 'wake-ups the parent lost (of 10): %s' % proc.stdout
