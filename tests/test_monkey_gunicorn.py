"""A real ``gunicorn -k gevent -w 2`` on 127.0.0.1 whose handlers log from blocking().

gunicorn's gevent worker calls ``patch_all()`` itself: without ``--preload``
before it imports the app (which configures logging, then imports the
library), with ``--preload`` after the master imported the app unpatched.
Either way every request completes and every line reaches the log file.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

REQUESTS = 120
CONCURRENCY = 12
THREAD_LINES = 50       # logged from blocking() by each request
GREENLET_LINES = 20     # logged by a greenlet of each request meanwhile

APP = '''\
import logging, os
logging.basicConfig(filename=os.environ['APP_LOG'], level=logging.INFO, format='%%(message)s')
import gevent
from gruvi_gevent import blocking

log = logging.getLogger('app')


def from_thread(name):
    for i in range(%(thread_lines)d):
        log.info('thread %%s %%d', name, i)
    return os.getpid()


def from_greenlet(name):
    for i in range(%(greenlet_lines)d):
        log.info('greenlet %%s %%d', name, i)
        gevent.sleep(0)


def application(environ, start_response):
    name = environ['PATH_INFO'].strip('/')
    greenlet = gevent.spawn(from_greenlet, name)
    pid = blocking(from_thread, name)
    greenlet.join()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(pid).encode()]
''' % {'thread_lines': THREAD_LINES, 'greenlet_lines': GREENLET_LINES}


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until_serving(port, server, deadline):
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError('gunicorn exited: %s' % server.stderr.read().decode())
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError('gunicorn did not start serving')


@pytest.fixture(params=[False, True], ids=['no-preload', 'preload'])
def gunicorn(request, tmp_path):
    """Start gunicorn with the app; yield (port, log file); stop it and its workers."""
    (tmp_path / 'app.py').write_text(APP)
    log_file = tmp_path / 'app.log'
    port = free_port()
    command = [sys.executable, '-m', 'gunicorn', '-k', 'gevent', '-w', '2',
               '-b', '127.0.0.1:%d' % port, '--graceful-timeout', '5',
               '--log-level', 'warning', 'app:application']
    if request.param:
        command.insert(-1, '--preload')
    env = dict(os.environ, APP_LOG=str(log_file), PYTHONPATH=str(tmp_path))
    server = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(port, server, time.monotonic() + 30)
        yield port, log_file
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(15)
        server.stderr.close()


def get(port, path):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=20)
    try:
        connection.request('GET', path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_handlers_logging_from_blocking_under_gunicorn_gevent_workers(gunicorn):
    port, log_file = gunicorn
    with ThreadPoolExecutor(CONCURRENCY) as clients:
        responses = list(clients.map(lambda i: get(port, '/r%d' % i), range(REQUESTS)))
    assert [status for status, _ in responses] == [200] * REQUESTS
    assert all(body.isdigit() for _, body in responses)
    expected = sorted(['thread r%d %d' % (r, i) for r in range(REQUESTS)
                       for i in range(THREAD_LINES)] +
                      ['greenlet r%d %d' % (r, i) for r in range(REQUESTS)
                       for i in range(GREENLET_LINES)])
    # Each record is written and flushed before its handler returns.
    assert sorted(log_file.read_text().splitlines()) == expected
