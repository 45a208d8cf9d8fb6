"""DaskPool and distributed.Future as a waitable, against real dask clusters.

Most tests share one session-wide LocalCluster (two worker processes on
127.0.0.1), started through blocking(). The fault tests each get a cluster
of their own, as command-line processes (``dask scheduler``, two ``dask
worker``), so that they can kill its parts; the fixture kills and reaps what
remains. Tasks that must be caught running report their worker's pid over a
Unix socket and block until the test releases them (see test_processpool).
"""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import distributed
import gevent
import psutil
import pytest
from zope.interface.verify import verifyObject

from gruvi_gevent import Timeout, blocking, wait, as_completed
from gruvi_gevent.dask import DaskPool, SchedulerLost
from gruvi_gevent.interfaces import IPool
from gruvi_gevent.testing import WaitableConformance

from pool_helpers import TIMEOUT, check_backpressure_of, hold


def square(x):
    return x * x


def boom(message):
    raise ValueError(message)


# With its dashboard off, dask's scheduler still serves HTTP, on port 8787
# unless told otherwise; a port of the OS's choosing collides with nothing.
NO_FIXED_PORT = {'dashboard_address': '127.0.0.1:0'}


def kill_my_worker():
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for_event(name):
    return distributed.Event(name).wait(TIMEOUT)


@pytest.fixture(scope='module')
def dask_client():
    cluster = blocking(distributed.LocalCluster, n_workers=2, threads_per_worker=2,
                       processes=True, host='127.0.0.1', dashboard_address=None,
                       scheduler_kwargs=NO_FIXED_PORT)
    try:
        client = blocking(distributed.Client, cluster)
        try:
            yield client
        finally:
            blocking(client.close)
    finally:
        blocking(cluster.close)


@contextlib.contextmanager
def closing(pool, gate):
    """Close *pool* when the block ends, releasing the jobs held on *gate* first
    (a failed assertion must not leave close() waiting for them)."""
    try:
        yield pool
    finally:
        gate.release_all()
        with gevent.Timeout(TIMEOUT):
            pool.close()


@pytest.fixture
def dask_pool(dask_client):
    pool = DaskPool(dask_client)
    yield pool
    with gevent.Timeout(TIMEOUT):
        pool.close()


def test_results_errors_and_wait_with_a_greenlet_and_a_dask_future(dask_pool, dask_client):
    verifyObject(IPool, dask_pool)
    assert dask_pool.submit(square, 6).result(TIMEOUT) == 36
    assert dask_pool.submit(lambda x, y=0: x + y, 1, y=2).result(TIMEOUT) == 3
    assert list(dask_pool.map(square, range(20), timeout=TIMEOUT)) == \
        [x * x for x in range(20)]
    error = dask_pool.submit(boom, 'bad input').exception(TIMEOUT)
    assert type(error) is ValueError and str(error) == 'bad input'
    ours = dask_pool.submit(square, 2)
    theirs = dask_client.submit(square, 3, pure=False)
    greenlet = gevent.spawn(gevent.sleep, 0.05)
    done, pending = wait([ours, theirs, greenlet], timeout=TIMEOUT)
    assert len(done) == 3 and not pending
    assert [f for f in as_completed([theirs], timeout=TIMEOUT)] == [theirs]


def test_pure_false_runs_every_submit(dask_pool, gate):
    futures = [dask_pool.submit(hold, gate.address, 'same') for _ in range(2)]
    pids = [gate.arrive(), gate.arrive()]
    assert len(pids) == 2          # two tasks, not one shared result
    gate.release_all()
    assert [future.result(TIMEOUT) for future in futures] == ['same', 'same']


def test_maxsize_bounds_the_tasks_handed_over(dask_client, gate):
    with closing(DaskPool(dask_client, maxsize=1), gate) as pool:
        first = pool.submit(hold, gate.address, 1)
        second = pool.submit(square, 5)
        gate.arrive()
        assert len(pool) == 1 and not second.running()
        gate.release_all()
        assert (first.result(TIMEOUT), second.result(TIMEOUT)) == (1, 25)


def test_cancel_and_timeouts(dask_pool, gate):
    running = dask_pool.submit(hold, gate.address)
    gate.arrive()
    with pytest.raises(Timeout):
        running.result(0.1)
    assert running.cancel() is True and running.cancelled()
    results = dask_pool.map(hold, [gate.address] * 2, timeout=0.3)
    with pytest.raises(Timeout):
        list(results)
    gate.close()        # the held tasks end, and those that had yet to report too
    dask_pool.join()
    assert dask_pool.submit(square, 3).result(TIMEOUT) == 9


def test_refused_under_monkey_patching():
    code = textwrap.dedent('''
        from gevent import monkey
        monkey.patch_all()
        from gruvi_gevent.dask import DaskPool
        try:
            DaskPool(None)
        except RuntimeError as exc:
            print('refused:', exc)
    ''')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith('refused:') and 'monkey-patched' in result.stdout


def test_bad_client_is_refused():
    with pytest.raises(TypeError, match='client'):
        DaskPool('tcp://127.0.0.1:8786')


class TestDaskFutureIsWaitable(WaitableConformance):
    """The conformance kit on distributed.Future, gated by dask Events."""

    timeout = 20
    race_rounds = 3         # each round is a dask task and a dask Event

    @pytest.fixture(autouse=True)
    def _client(self, dask_client):
        self.client = dask_client
        self.events = {}

    def make(self):
        name = 'gate-%s' % uuid.uuid4().hex
        future = self.client.submit(wait_for_event, name, pure=False)
        self.events[future.key] = name
        return future

    def make_ready(self, future):
        blocking(distributed.Event(self.events[future.key], client=self.client).set)

    def make_ready_from_thread(self, future):
        distributed.Event(self.events[future.key], client=self.client).set()


# The fault tests: a cluster of command-line processes that the tests kill.

class Cluster:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, no nannies."""

    def __init__(self, tmp_path):
        self.scheduler_file = str(tmp_path / 'scheduler.json')
        # The workers import the tasks' modules from this directory.
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES='1',
                   PYTHONPATH=os.pathsep.join([here] + sys.path))
        self.processes = []
        try:
            self._start_all(env)
        except BaseException:
            self.close()
            raise

    def _start_all(self, env):
        dask = os.path.join(os.path.dirname(sys.executable), 'dask')
        self.scheduler = self.start(env, [dask, 'scheduler', '--host', '127.0.0.1',
                                          '--port', '0', '--no-dashboard',
                                          '--dashboard-address', '127.0.0.1:0',
                                          '--scheduler-file', self.scheduler_file])
        deadline = time.monotonic() + TIMEOUT * 3
        while not os.path.exists(self.scheduler_file):
            assert time.monotonic() < deadline, 'the scheduler did not start'
            assert self.scheduler.poll() is None, 'the scheduler exited'
            gevent.sleep(0.05)
        self.workers = [self.start(env, [dask, 'worker', '--scheduler-file',
                                         self.scheduler_file, '--host', '127.0.0.1',
                                         '--nthreads', '1', '--no-nanny',
                                         '--no-dashboard',
                                         '--dashboard-address', '127.0.0.1:0'])
                        for _ in range(2)]

    def start(self, env, command):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def client(self):
        client = blocking(distributed.Client, scheduler_file=self.scheduler_file,
                          timeout=TIMEOUT)
        blocking(client.wait_for_workers, 2, timeout=TIMEOUT * 3)
        return client

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(TIMEOUT)


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def fault_client(cluster):
    client = cluster.client()
    yield client
    blocking(client.close, timeout=2)


def listening(pid):
    """The TCP addresses that process *pid* listens on."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections('tcp')
            if c.status == psutil.CONN_LISTEN}


def test_clusters_listen_on_loopback_ports_of_the_os_choosing(dask_client, cluster,
                                                              fault_client):
    # A fixed port (dask's 8786 and 8787) fails a run while another cluster
    # on the machine holds it.
    local = dask_client.cluster
    # Its scheduler and nannies run in this process, its workers in others.
    ports = {local.scheduler.port, local.scheduler.http_server.port}
    ports |= {nanny.port for nanny in local.workers.values()}
    addresses = {address for address in listening(os.getpid()) if address[1] in ports}
    pids = list(blocking(dask_client.run, os.getpid).values())
    pids += [process.pid for process in cluster.processes]
    for pid in pids:
        addresses |= listening(pid)
    # The LocalCluster: 4 here, 2 in each worker; the other: 2 in each process.
    assert len(addresses) == 14, addresses
    assert {ip for ip, _ in addresses} == {'127.0.0.1'}, addresses
    assert not {port for _, port in addresses} & {8786, 8787}, addresses


def test_a_worker_killed_mid_task_reruns_the_task(cluster, fault_client, gate):
    with closing(DaskPool(fault_client), gate) as pool:
        future = pool.submit(hold, gate.address, 'done')
        first = gate.arrive()
        os.kill(first, signal.SIGKILL)
        second = gate.arrive(timeout=TIMEOUT * 3)      # rerun on the other worker
        assert second != first
        gate.release_all()
        assert future.result(TIMEOUT) == 'done'


def test_a_task_that_kills_its_worker_fails_with_killed_worker(cluster, fault_client):
    with DaskPool(fault_client) as pool:
        error = pool.submit(kill_my_worker).exception(TIMEOUT * 3)
        assert isinstance(error, distributed.KilledWorker)


def test_a_lost_scheduler_fails_pending_jobs_within_a_second(cluster, fault_client, gate):
    with closing(DaskPool(fault_client), gate) as pool:
        held = pool.submit(hold, gate.address)
        gate.arrive()
        killed = time.monotonic()
        cluster.scheduler.kill()
        error = held.exception(TIMEOUT)
        assert time.monotonic() - killed < 1.0
        assert isinstance(error, SchedulerLost) and 'lost the connection' in str(error)
        late = pool.submit(square, 2)
        assert late.done() and isinstance(late.exception(), SchedulerLost)
        assert 'not connected' in str(late.exception())
        gate.release_all()


def test_max_queued_holds_submitters_back(dask_client, gate):
    with closing(DaskPool(dask_client, maxsize=1, max_queued=1, queue_timeout=0.2),
                 gate) as pool:
        check_backpressure_of(pool, gate)


def interrupt():
    raise KeyboardInterrupt


def test_a_done_callback_raising_keyboardinterrupt_stops_no_later_job(dask_pool, gate):
    # It is raised in the thread that fetches results, with nobody to take it.
    held = dask_pool.submit(hold, gate.address, 1)
    gate.arrive()
    held.add_done_callback(interrupt)
    gate.release_all()
    assert held.result(TIMEOUT) == 1
    assert dask_pool.submit(square, 4).result(TIMEOUT) == 16
