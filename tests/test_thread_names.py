"""Pool threads are named after their pool: ``<name>-<n>``, in threading and in the OS.

The OS names are read from Linux's ``/proc/self/task/*/comm``.
"""

import glob
import logging
import threading

import pytest

from gruvi_gevent import ThreadPool, blocking
from gruvi_gevent._threadnames import os_thread_name

from pool_helpers import TIMEOUT, Tracker, THREAD, run_python, wait_until

def own_name():
    return threading.current_thread().name


def os_names():
    """The names the OS gives the threads of this process."""
    names = []
    for path in glob.glob('/proc/self/task/*/comm'):
        try:
            with open(path) as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:   # the thread exited meanwhile
            pass
    return names


def own_os_name():
    """The OS name of the calling thread."""
    with open('/proc/self/task/%d/comm' % threading.get_native_id()) as comm:
        return comm.read().strip()


def named(prefix):
    return sorted(thread.name for thread in threading.enumerate()
                  if thread.name.startswith(prefix + '-'))


def hold_two_threads(pool):
    """Run two gated jobs at once (so two threads); return (gate, futures)."""
    tracker = Tracker(THREAD)
    gate = threading.Event()
    job = tracker.gated(gate)
    futures = [pool.submit(job, key) for key in ('a', 'b')]
    assert tracker.wait_started(2)
    return gate, futures


def test_threads_are_named_after_the_pool(pool_factory):
    pool = pool_factory(ThreadPool, 2, name='Crunch')
    gate, futures = hold_two_threads(pool)
    try:
        assert named('Crunch') == ['Crunch-1', 'Crunch-2']
    finally:
        gate.set()
    assert [future.result(TIMEOUT) for future in futures] == ['a', 'b']
    names = {pool.submit(own_name).result(TIMEOUT) for _ in range(20)}
    assert names <= {'Crunch-1', 'Crunch-2'} and names


def test_exited_threads_leave_threading(pool_factory):
    pool = pool_factory(ThreadPool, 2, name='Gone')
    gate, futures = hold_two_threads(pool)
    gate.set()
    assert pool.close(TIMEOUT)
    # close() returns once the workers have left the pool; the threads take
    # their names out of threading's table as they exit, a moment later.
    assert wait_until(lambda: not named('Gone')), named('Gone')


def test_default_pool_name_and_blocking():
    pool = ThreadPool(1)
    try:
        assert pool.submit(own_name).result(TIMEOUT) == pool.name + '-1'
    finally:
        pool.close()
    assert blocking(own_name).startswith('Io-')


def test_log_records_carry_the_thread_name(pool_factory):
    pool = pool_factory(ThreadPool, 1, name='Logs')
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger('tests.thread_names')
    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        pool.submit(logger.warning, 'from a pool thread').result(TIMEOUT)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert [record.threadName for record in records] == ['Logs-1']


def test_os_threads_carry_the_name(pool_factory):
    pool = pool_factory(ThreadPool, 2, name='Oswald')
    gate, futures = hold_two_threads(pool)
    try:
        assert sorted(name for name in os_names() if name.startswith('Oswald-')) == \
            ['Oswald-1', 'Oswald-2']
        own = pool.submit(own_os_name)
    finally:
        gate.set()
    assert own.result(TIMEOUT) in ('Oswald-1', 'Oswald-2')


def test_long_names_keep_their_number_in_the_os(pool_factory):
    pool = pool_factory(ThreadPool, 1, name='a-rather-long-pool-name')
    comm = pool.submit(own_os_name)
    assert comm.result(TIMEOUT) == 'a-rather-long-1'
    assert pool.submit(own_name).result(TIMEOUT) == 'a-rather-long-pool-name-1'


@pytest.mark.parametrize('name, expected', [
    ('Io-1', b'Io-1'),
    ('exactly-15-byte', b'exactly-15-byte'),
    ('averyveryverylongpoolname-12', b'averyveryver-12'),
    ('x' * 20, b'x' * 15),
    ('\u00e9' * 9 + '-3', ('\u00e9' * 6).encode() + b'-3'),
    ('\u00e9' * 9, ('\u00e9' * 7).encode()),
])
def test_os_thread_name_fits_the_kernel(name, expected):
    assert os_thread_name(name) == expected
    assert len(expected) <= 15


def test_names_under_monkey_patching():
    proc = run_python('''
        from gevent import monkey
        monkey.patch_all()
        import threading
        from gruvi_gevent import ThreadPool, blocking
        pool = ThreadPool(1, name='Patched')
        print(pool.submit(lambda: threading.current_thread().name).result(10))
        def own_os_name():
            with open('/proc/self/task/%d/comm' % threading.get_native_id()) as comm:
                return comm.read().strip()
        print(pool.submit(own_os_name).result(10))
        print(blocking(lambda: threading.current_thread().name))
        pool.close()
    ''')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['Patched-1', 'Patched-1', 'Io-1'], proc.stdout
    assert 'Traceback' not in proc.stderr, proc.stderr
