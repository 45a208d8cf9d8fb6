"""A short tour of gruvi_gevent doing its job, run by ``make demo``.

Three parts, each a function below, each printing a few lines:

(a) ``blocking()`` in a server: a gevent ``StreamServer`` on 127.0.0.1 answers
    quick "ping" requests while one request makes a truly blocking call (an
    un-patched ``time.sleep``). Through ``blocking()`` the call occupies an IO
    pool thread and the quick requests keep being answered promptly; made
    directly in the handler, the same call freezes the hub and every client
    with it. Both are measured.
(b) Fan-out with ``FiberPool.map``: five simulated fetches of different
    lengths run at once; the whole takes about as long as the longest one.
(c) ``wait()`` on a mix: a ``Future`` completed by a ``ThreadPool`` job, a
    gevent ``Greenlet`` and a ``gevent.subprocess.Popen`` child, reported in
    the order they became ready.

The process is not monkey-patched: the blocking call really blocks whatever
OS thread makes it. All traffic stays on the loopback interface, every loop
is bounded, every wait has a timeout, and every server, pool, connection and
child is closed before the program exits. It takes about two seconds.
"""

import sys
import threading
from time import monotonic

import gevent
import gevent.subprocess
from gevent import monkey
from gevent.event import Event
from gevent.server import StreamServer
from gevent.socket import create_connection

from gruvi_gevent import FiberPool, ThreadPool, blocking, get_io_pool, wait

# The original time.sleep: blocks the calling OS thread, gevent or not. (The
# demo does not monkey-patch, so this is plain time.sleep; asking for the
# original says that it is meant to block.)
real_sleep = monkey.get_original('time', 'sleep')

HOST = '127.0.0.1'
SLOW_SECONDS = 0.5      # how long the slow request blocks
PROBE_INTERVAL = 0.02   # a quick request is due every 20 ms
IO_TIMEOUT = 5.0        # bound on every socket operation of the demo


def slow_lookup(seconds):
    """A legacy, gevent-unaware call: blocks its OS thread; returns that thread's id."""
    real_sleep(seconds)
    return threading.get_ident()


def nap(seconds):
    """A greenlet's work: sleeps the gevent way, then says so."""
    gevent.sleep(seconds)
    return 'napped %.1f s' % seconds


# (a) blocking() keeps a server responsive


def handle(sock, address):
    """Serve one request line: ``ping``, ``slow`` (via blocking()) or ``stall``."""
    sock.settimeout(IO_TIMEOUT)
    try:
        with sock.makefile('rb') as rfile:
            command = rfile.readline(64).strip()
        if command == b'ping':
            reply = b'pong'
        elif command == b'slow':
            # The call runs in the IO pool; only this handler's greenlet waits.
            reply = b'%d' % blocking(slow_lookup, SLOW_SECONDS)
        elif command == b'stall':
            # The same call made on the hub's thread: nothing else runs meanwhile.
            reply = b'%d' % slow_lookup(SLOW_SECONDS)
        else:
            reply = b'unknown command'
        sock.sendall(reply + b'\n')
    finally:
        sock.close()


def request(port, command):
    """Send one command on a fresh connection and return the reply line."""
    with create_connection((HOST, port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(command + b'\n')
        with sock.makefile('rb') as rfile:
            return rfile.readline(64).strip()


def probe(port, stop, limit=500):
    """Ping every PROBE_INTERVAL until *stop* is set; return (due, latency) pairs.

    The probe shares the hub with the server, so a frozen hub would freeze it
    too. Latency is therefore counted from when a request was *due*, not from
    when the probe got round to sending it: a client on another machine would
    have been waiting since then.
    """
    samples = []
    due = monotonic()
    for _ in range(limit):
        gevent.sleep(max(0.0, due - monotonic()))
        if stop.is_set():
            break
        request(port, b'ping')
        samples.append((due, monotonic() - due))
        due = max(due + PROBE_INTERVAL, monotonic())
    return samples


def measure(port, command):
    """Run the probe around one *command* request; return (reply, seconds, latencies).

    *latencies* are those of the quick requests that were waiting for their
    answer at some point while the slow request was in progress.
    """
    stop = Event()
    prober = gevent.spawn(probe, port, stop)
    try:
        gevent.sleep(0.1)                      # let the probe settle in
        start = monotonic()
        reply = request(port, command)
        end = monotonic()
        gevent.sleep(0.05)
    finally:
        stop.set()
        prober.join(IO_TIMEOUT)
        if not prober.dead:
            prober.kill()
            raise RuntimeError('the probe client did not stop in time')
    samples = prober.get(block=False)       # re-raises the probe's error, if any
    latencies = [latency for due, latency in samples
                 if due <= end and due + latency >= start]
    return reply, end - start, latencies


def part_a():
    """A gevent server whose handler blocks, with and without blocking()."""
    print('(a) blocking() in a gevent server')
    server = StreamServer((HOST, 0), handle)
    server.start()
    try:
        port = server.server_port
        hub_thread = threading.get_ident()
        print('    server on %s:%d; a slow request blocks for %.1f s while a client'
              % (HOST, port, SLOW_SECONDS))
        print('    sends a quick ping every %d ms on new connections'
              % (PROBE_INTERVAL * 1000))

        for label, command in (('with blocking():   ', b'slow'),
                               ('without blocking():', b'stall')):
            reply, took, latencies = measure(port, command)
            where = 'the hub thread' if int(reply) == hub_thread else 'an IO pool thread'
            print('    %s slow request took %.2f s on %s;' % (label, took, where))
            slowest = max(latencies, default=0.0) * 1000
            print('    %s %2d quick requests overlapped it, slowest answer %5.1f ms'
                  % (' ' * len(label), len(latencies), slowest))
        print('    -> through blocking() the call parks one greenlet and occupies a pool')
        print('       thread; made directly, it freezes the hub and every client with it.')
    finally:
        server.stop(timeout=IO_TIMEOUT)


# (b) fan-out with FiberPool.map


def fetch(name, delay, finished):
    """A simulated fetch: waits *delay* seconds the gevent way, then returns a page."""
    gevent.sleep(delay)
    finished.append(name)
    return '<%s>' % name


def part_b():
    """Five simulated fetches at once with FiberPool.map: total ~ max, not sum."""
    print('(b) fan-out with FiberPool.map')
    delays = {'alpha': 0.30, 'bravo': 0.10, 'charlie': 0.25, 'delta': 0.05, 'echo': 0.20}
    names = list(delays)
    finished = []
    with FiberPool(maxsize=10, name='fetchers') as pool:
        start = monotonic()
        pages = list(pool.map(fetch, names, delays.values(), [finished] * len(names),
                              timeout=IO_TIMEOUT))
        took = monotonic() - start
    print('    %d fetches of %s s'
          % (len(names), ', '.join('%.2f' % delay for delay in delays.values())))
    print('    finished in order: %s' % ', '.join(finished))
    print('    map() yielded:     %s (input order)' % ', '.join(pages))
    print('    total %.2f s: about the longest fetch (%.2f s), not their sum (%.2f s)'
          % (took, max(delays.values()), sum(delays.values())))


# (c) wait() on a mix of waitables


def part_c():
    """wait() on a thread-pool Future, a Greenlet and a child process at once."""
    print('(c) wait() on a Future, a Greenlet and a child process')
    child_code = 'import time; time.sleep(0.5)'
    with ThreadPool(maxsize=2, name='workers') as pool:
        start = monotonic()
        future = pool.submit(slow_lookup, 0.3)      # blocks an OS thread for 0.3 s
        greenlet = gevent.spawn(nap, 0.1)           # a greenlet, 0.1 s
        child = gevent.subprocess.Popen([sys.executable, '-c', child_code])
        labels = {id(future): 'Future of a ThreadPool job (0.3 s)',
                  id(greenlet): 'Greenlet (0.1 s)',
                  id(child): 'child process (0.5 s plus start-up)'}
        try:
            done, pending = wait([future, child, greenlet], timeout=10)
            took = monotonic() - start
        finally:
            if child.returncode is None:
                child.kill()
            child.wait(IO_TIMEOUT)
            greenlet.kill()
    print('    wait([future, child, greenlet]) returned after %.2f s' % took)
    for number, obj in enumerate(done, 1):
        print('    %d. %s' % (number, labels[id(obj)]))
    print('    pending: %s' % (', '.join(labels[id(obj)] for obj in pending) or 'none'))
    if future.done():
        hub_thread = threading.get_ident()
        ran_on = 'the hub thread' if future.result() == hub_thread else 'a pool thread'
    else:
        ran_on = 'nowhere yet'
    print('    results: the job ran on %s, the greenlet returned %r,'
          % (ran_on, greenlet.value))
    print('    the child exited with status %s' % child.returncode)


def main():
    """Run the three parts; close the process-wide IO pool on the way out."""
    started = monotonic()
    try:
        part_a()
        print()
        part_b()
        print()
        part_c()
    finally:
        # blocking() started the process-wide IO pool; close it so that its
        # threads exit before the interpreter does.
        get_io_pool().close()
    print()
    print('demo finished in %.1f s' % (monotonic() - started))
    return 0


if __name__ == '__main__':
    sys.exit(main())
