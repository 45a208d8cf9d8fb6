"""ProcessPool in fresh interpreters: monkey-patched or not, with or without cloudpickle.

Each test writes a script and runs it as the main program, so that the jobs
are functions of the main script. A watchdog in the script ends it, with a
stack dump, if anything hangs; the script closes its pool, which reaps its
workers, and prints what it saw as JSON.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT_TIMEOUT = 60

PRELUDE = '''\
import faulthandler, sys
faulthandler.dump_traceback_later(40, exit=True)
PATCHED = sys.argv[2] == 'patched'
if PATCHED:
    from gevent import monkey
    monkey.patch_all()
if sys.argv[3] == 'no-cloudpickle':
    sys.modules['cloudpickle'] = None       # as if it were not installed
'''

SCRIPT = PRELUDE + '''
import json, os, signal, socket, time
import gevent
from gevent import monkey
from gruvi_gevent import ProcessPool, wait
from gruvi_gevent.processpool import WorkerDied
from gruvi_gevent.testing import run_in_native_thread

T = 10
real_socket = monkey.get_original('socket', 'socket')
real_ident = monkey.get_original('_thread', 'get_ident')


def triple(x):                       # a function of the main script
    return 3 * x


def hold(address):
    with real_socket(socket.AF_UNIX) as sock:
        sock.connect(address)
        sock.sendall(b'%d\\n' % os.getpid())
        sock.recv(1)


def sizes(*blobs):
    return [len(blob) for blob in blobs]


def main():
    context = sys.argv[1]
    seen = {}
    listener = gevent.socket.socket(socket.AF_UNIX)
    listener.bind(sys.argv[4])
    listener.listen(4)
    listener.settimeout(T)

    def arrive():
        conn, _ = listener.accept()
        conn.settimeout(T)
        return conn, int(conn.makefile('rb').readline())

    with ProcessPool(2, context=context) as pool:
        seen['map'] = list(pool.map(triple, range(5), timeout=T))
        seen['lambda'] = repr(pool.submit(lambda: 7).exception(T) or
                              pool.submit(lambda: 7).result(T))
        seen['thread'] = run_in_native_thread(
            lambda: (real_ident(), pool.submit(triple, 5).result(T))).result(T)[1]

        # kill -9 of a running worker fails its job only
        doomed = pool.submit(hold, sys.argv[4])
        conn, pid = arrive()
        os.kill(pid, signal.SIGKILL)
        error = doomed.exception(T)
        seen['killed'] = type(error).__name__, 'code -9' in str(error)
        conn.close()
        seen['after_kill'] = pool.submit(triple, 2).result(T)

        # cancel of a running job
        running = pool.submit(hold, sys.argv[4])
        conn, pid = arrive()
        seen['cancel'] = running.cancel(), running.cancelled()
        conn.close()

        # three 8 MiB arguments while both workers are busy: the hub keeps
        # ticking (the best of three tries: see test_processpool.py)
        pool.submit(triple, 1).result(T)
        seen['max_gap'] = 1.0
        for _ in range(3):
            gaps = []

            def ticker():
                last = time.monotonic()
                while True:
                    gevent.sleep(0.001)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            tick = gevent.spawn(ticker)
            gevent.sleep(0.01)
            blob = bytearray(8 << 20)
            busy = [pool.submit(time.sleep, 0.2) for _ in range(2)]
            futures = [pool.submit(sizes, blob, bytes(8 << 20), blob) for _ in range(3)]
            wait(busy, timeout=T)
            seen['sizes'] = [future.result(T) for future in futures]
            gevent.sleep(0.01)      # the ticker records a pause that ended just now
            tick.kill()
            seen['max_gap'] = min(seen['max_gap'], max(gaps))
            if seen['max_gap'] < 0.1:
                break
    listener.close()
    seen['workers_after_close'] = len(pool)
    print(json.dumps(seen))


if __name__ == '__main__':
    main()
'''


def run_script(tmp_path, code, *args):
    path = tmp_path / 'script.py'
    path.write_text(textwrap.dedent(code))
    result = subprocess.run([sys.executable, str(path), *args], capture_output=True,
                            text=True, timeout=SCRIPT_TIMEOUT, cwd=str(tmp_path))
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result


@pytest.mark.parametrize('patching', ['plain', 'patched'])
@pytest.mark.parametrize('context', ['forkserver', 'spawn'])
def test_in_a_fresh_interpreter(tmp_path, context, patching):
    result = run_script(tmp_path, SCRIPT, context, patching, 'cloudpickle',
                        str(tmp_path / 'gate'))
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen['map'] == [0, 3, 6, 9, 12]
    assert seen['lambda'] == '7'
    assert seen['thread'] == 15
    assert seen['killed'] == ['WorkerDied', True]
    assert seen['after_kill'] == 6
    assert seen['cancel'] == [True, True]
    assert seen['sizes'] == [[8 << 20] * 3] * 3
    assert seen['max_gap'] < 0.1, 'the hub paused for %.3f s' % seen['max_gap']
    assert seen['workers_after_close'] == 0
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]


NO_CLOUDPICKLE = PRELUDE + '''
import pickle
from gruvi_gevent import ProcessPool


def triple(x):
    return 3 * x


if __name__ == '__main__':
    with ProcessPool(1, context=sys.argv[1]) as pool:
        print(pool.submit(triple, 4).result(10))
        error = pool.submit(lambda: 1).exception(10)
        print(type(error).__name__, 'the function' in str(error), 'lambda' in str(error))
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_without_cloudpickle_main_functions_work_and_lambdas_fail_clearly(tmp_path, patching):
    result = run_script(tmp_path, NO_CLOUDPICKLE, 'forkserver', patching, 'no-cloudpickle')
    assert result.stdout.split() == ['12', 'PicklingError', 'True', 'True']


EXIT_WITHOUT_CLOSE = PRELUDE + '''
import time
from gruvi_gevent import ProcessPool

if __name__ == '__main__':
    pool = ProcessPool(1)
    print(pool.submit(__import__('os').getpid).result(10), flush=True)
    pool.submit(time.sleep, 30)
    pool.submit(time.sleep, 0.2).running()
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_exit_without_close_is_prompt_and_leaves_no_worker(tmp_path, patching):
    import os
    import time
    started = time.monotonic()
    result = run_script(tmp_path, EXIT_WITHOUT_CLOSE, 'forkserver', patching, 'cloudpickle')
    assert time.monotonic() - started < 15
    pid = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail('worker process %d outlived its parent' % pid)


THREADS = PRELUDE + '''
from gruvi_gevent import ProcessPool
from gruvi_gevent.testing import run_in_native_thread


def triple(x):
    return 3 * x


def use_a_pool(tag):
    # A pool of this thread's own hub; its workers start in the library's
    # spawner thread, like everyone else's.
    with ProcessPool(2, name=tag) as pool:
        return sum(pool.map(triple, range(30), timeout=20))


if __name__ == '__main__':
    for round_number in range(3):
        futures = [run_in_native_thread(use_a_pool, 'thread-%d' % n) for n in range(2)]
        print(use_a_pool('main'), *[future.result(30) for future in futures])
'''


@pytest.mark.parametrize('patching', ['plain', 'patched'])
def test_pools_in_three_threads_at_once(tmp_path, patching):
    # Each thread's pool belongs to that thread's hub; every worker is started
    # in the spawner thread, so multiprocessing's locks (greenlet locks under
    # patching) are never shared between OS threads.
    result = run_script(tmp_path, THREADS, 'forkserver', patching, 'cloudpickle')
    assert result.stdout.split() == ["1305"] * 9
