"""A health endpoint: the pools' stats() served as JSON by a gevent WSGIServer.

``GET /health`` answers with one snapshot per pool -- workers, idle workers,
queued and running jobs, and the totals of completed, failed and cancelled
jobs -- cheap enough for a load balancer to ask on every probe. ``GET /order``
does what a request of the application would: a blocking call in the IO pool
and a call through the application's bounded ``FiberPool``.

Run as it is, the program serves on 127.0.0.1, sends itself a few requests,
checks the JSON and prints ``health: OK``. With ``--serve`` it prints
``listening on 127.0.0.1:<port>`` and serves until it is stopped.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402  (patched: cooperative)

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from gruvi_gevent import FiberPool, blocking, get_cpu_pool, get_io_pool  # noqa: E402

HOST = '127.0.0.1'

# The application's pool for backend calls: at most 20 at once and 100
# waiting; a request that finds it full waits up to 2 s for room.
backends = FiberPool(20, name='backends', max_queued=100, queue_timeout=2.0)


def pools():
    return [get_io_pool(), get_cpu_pool(), backends]


def health(environ, start_response):
    body = json.dumps({pool.name: pool.stats()._asdict() for pool in pools()}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


def backend_call(n):
    gevent.sleep(0.001)
    return n * 2


def order(environ, start_response):
    stamp = blocking(time.time)         # stands in for a blocking driver call
    doubled = backends.submit(backend_call, 21).result(timeout=5)
    body = json.dumps({'stamp': stamp, 'answer': doubled}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


ROUTES = {'/health': health, '/order': order}


def app(environ, start_response):
    handler = ROUTES.get(environ['PATH_INFO'])
    if handler is None:
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'not found\n']
    return handler(environ, start_response)


def get_json(port, path):
    with urllib.request.urlopen('http://%s:%d%s' % (HOST, port, path), timeout=10) as reply:
        return json.loads(reply.read())


def self_check(port):
    for _ in range(5):
        assert get_json(port, '/order')['answer'] == 42
    report = get_json(port, '/health')
    assert set(report) == {'Io', 'Cpu', 'backends'}, report
    assert report['backends']['completed'] == 5, report
    assert report['Io']['completed'] >= 5, report
    for stats in report.values():
        assert set(stats) == {'workers', 'idle', 'queued', 'running',
                              'completed', 'failed', 'cancelled'}, stats
    print('health: %s' % json.dumps(report['backends']))


def main():
    server = WSGIServer((HOST, 0), app, log=None)
    server.start()
    port = server.server_port
    try:
        if '--serve' in sys.argv[1:]:
            print('listening on %s:%d' % (HOST, port), flush=True)
            server.serve_forever()
        else:
            self_check(port)
            print('health: OK')
    finally:
        server.stop(timeout=5)
        backends.close()


if __name__ == '__main__':
    main()
