"""os.fork() in a process that has used the pools and blocking().

pytest itself never forks: each test runs a script in a fresh interpreter,
which uses every pool and ``blocking()``, leaves work pending, and forks. The
child reports through a pipe and its exit code; every wait in the script has
a timeout and a watchdog ends a stuck process (its own and the child's), so a
hang is a failure with a stack dump, never a stuck run.

In the child, futures of jobs that were running or queued on the parent's
threads complete with an error instead of hanging (those threads do not exist
there), and new work on every pool and ``blocking()`` succeed. The parent
carries on as if nothing happened. ``stop_idle_threads()`` lets a process fork
with no thread of the library's alive, as a real ``gunicorn --preload`` master
does here.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

SCRIPT_TIMEOUT = 60

# Python 3.12 and later warn on fork() in a process with other threads running
# (DeprecationWarning: 'This process ... is multi-threaded, use of fork() may
# lead to deadlocks in the child.'), and rightly so where a test forks with jobs
# running on pool threads. It is shown where os.fork() is called from __main__
# (unpatched); gevent's patched fork() is attributed to gevent, whose
# DeprecationWarnings the default filters hide.
FORK_WARNS_WITH_THREADS = sys.version_info >= (3, 12)


def without_fork_warning(stderr):
    """Return *stderr* less the multi-threaded fork() warning of Python 3.12+."""
    if not FORK_WARNS_WITH_THREADS:
        return stderr
    lines = stderr.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if 'is multi-threaded, use of fork() may lead to deadlocks' in line:
            # The warning, then the source line it points at.
            del lines[index:index + 2]
            break
    return ''.join(lines)


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
    assert without_fork_warning(proc.stderr) == ''


STOP_IDLE_SCRIPT = '''
    import json, os, signal, sys, traceback
    # The watchdog is an alarm, not faulthandler's timer: that one is a thread.
    import faulthandler
    faulthandler.register(signal.SIGALRM, chain=True)
    signal.alarm(40)
    if sys.argv[1] == 'patched':
        from gevent import monkey
        monkey.patch_all()
    from gevent import monkey
    from gruvi_gevent import (FiberPool, Future, ThreadPool, blocking, get_cpu_pool,
                              get_io_pool, stop_idle_threads)

    get_ident = monkey.get_original('_thread', 'get_ident')
    allocate_lock = monkey.get_original('_thread', 'allocate_lock')
    start_new_thread = monkey.get_original('_thread', 'start_new_thread')
    T = 10
    io, cpu = get_io_pool(), get_cpu_pool()
    report = {}

    def os_threads():
        return len(os.listdir('/proc/self/task'))

    def use_everything():
        fibers = FiberPool(2)
        own = ThreadPool(2)
        result = {
            'blocking': blocking(str, 'ok'),
            'blocking-on-another-thread': blocking(get_ident) != get_ident(),
            'io': io.submit(str, 'ok').result(T),
            'cpu': cpu.submit(str, 'ok').result(T),
            'map': list(io.map(str, ['ok'] * 8, timeout=T)),
            'fiber-in-blocking': fibers.submit(blocking, str, 'ok').result(T),
            'own-pool': own.submit(str, 'ok').result(T),
        }
        fibers.close()
        own.close()
        return result

    report['before'] = use_everything()
    report['threads-before'] = os_threads() > 1
    report['stopped'] = stop_idle_threads()
    report['threads-after-stop'] = os_threads()
    report['sizes-after-stop'] = [len(io), len(cpu)]

    # A thread running a job stays, and so does the spawner while it does.
    gate = allocate_lock()
    gate.acquire()
    started = Future()
    held = io.submit(lambda: (started.set_result(None), gate.acquire())[0])
    started.result(T)
    report['stopped-while-busy'] = stop_idle_threads()
    gate.release()
    held.result(T)

    # Work submitted from other threads while the threads are being stopped
    # is neither lost nor stranded.
    done = []
    def pump(pool, count):
        futures = [pool.submit(abs, -n) for n in range(count)]
        done.append(sum(f.result(T) for f in futures))
    finished = Future()
    def pumps():
        for _ in range(20):
            pump(io, 20)
            pump(cpu, 20)
        finished.set_result(None)
    start_new_thread(pumps, ())
    while not finished.done():
        stop_idle_threads()
    report['pumped'] = done == [sum(range(20))] * 40

    report['stopped-again'] = stop_idle_threads()
    report['threads-before-fork'] = os_threads()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(use_everything()).encode())
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(3)
    os.close(write_end)
    report['after'] = use_everything()
    data = b''
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    report['child'] = json.loads(data) if data else None
    report['child-exit'] = os.waitstatus_to_exitcode(status)
    print(json.dumps(report))
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_stop_idle_threads_leaves_no_thread_to_fork_with(patching):
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(STOP_IDLE_SCRIPT), patching],
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    works = {
        'blocking': 'ok', 'blocking-on-another-thread': True, 'io': 'ok', 'cpu': 'ok',
        'map': ['ok'] * 8, 'fiber-in-blocking': 'ok', 'own-pool': 'ok',
    }
    assert report['before'] == works
    assert report['threads-before'] is True
    # No library thread left, in the library's count and in the OS's.
    assert report['stopped'] == 0
    assert report['threads-after-stop'] == 1
    assert report['sizes-after-stop'] == [0, 0]
    # The busy IO thread, and the spawner.
    assert report['stopped-while-busy'] == 2
    assert report['pumped'] is True
    assert report['stopped-again'] == 0
    assert report['threads-before-fork'] == 1
    # The pools start again on next use, in the parent and in the child.
    assert report['after'] == works
    assert report['child'] == works
    assert report['child-exit'] == 0
    assert proc.stderr == ''


# An application that uses the pools at import: with --preload, in the master.
GUNICORN_APP = '''
import os
from gruvi_gevent import blocking, get_cpu_pool

assert blocking(os.getpid) == os.getpid()
assert get_cpu_pool().submit(abs, -1).result(10) == 1


def app(environ, start_response):
    body = ('%d %d' % (os.getpid(), blocking(os.getpid))).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
'''

# The documented hook, and a report of what the master forks with.
GUNICORN_CONF = '''
import json, os
import gruvi_gevent


def pre_fork(server, worker):
    left = gruvi_gevent.stop_idle_threads()
    with open(os.environ['FORK_REPORT'], 'a') as report:
        report.write(json.dumps([left, len(os.listdir('/proc/self/task'))]) + '\\n')
'''


# Well inside the test's own timeout, so that a stuck server fails the test
# with its stderr.
REQUEST_TIMEOUT = 20


def get(port):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request('GET', '/')
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_gunicorn_preload_master_forks_its_workers_with_no_library_thread(tmp_path):
    (tmp_path / 'app.py').write_text(GUNICORN_APP)
    (tmp_path / 'conf.py').write_text(GUNICORN_CONF)
    report = tmp_path / 'forks.jsonl'
    # Listening before gunicorn starts: requests wait in the backlog. Only
    # gunicorn keeps the socket, so if it dies, requests are refused at once.
    with socket.create_server(('127.0.0.1', 0)) as listener:
        port = listener.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, '-m', 'gunicorn', '--preload', '--workers', '2',
             '--bind', 'fd://%d' % listener.fileno(), '--config', 'conf.py', 'app:app'],
            cwd=tmp_path, env=dict(os.environ, FORK_REPORT=str(report)),
            pass_fds=[listener.fileno()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
    try:
        replies = [get(port) for _ in range(20)]
    finally:
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=REQUEST_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
        print(stderr)       # shown if the test fails
    assert server.returncode == 0, stderr
    # The workers serve, and blocking() works in them.
    for status, body in replies:
        assert status == 200
        worker_pid, blocking_pid = map(int, body.split())
        assert worker_pid == blocking_pid != server.pid
    # Before each fork: nothing of the library's left running, and the
    # master's only thread is the one that forks.
    forks = [json.loads(line) for line in report.read_text().splitlines()]
    assert forks == [[0, 1], [0, 1]]
    assert 'Traceback' not in stderr


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
