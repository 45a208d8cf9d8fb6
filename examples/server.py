"""gruvi_gevent in a gevent server.

A monkey-patched ``StreamServer`` on 127.0.0.1 answers ``user <id>`` requests.
Each handler greenlet

* reads the user from SQLite through ``blocking()`` (the driver blocks in C,
  where monkey-patching cannot reach, so the query runs in the IO pool), and
* asks two slow "backends" at once through a ``FiberPool`` shared by all
  handlers, giving them 0.5 s together: a backend that has not answered by
  then is cancelled and the reply goes out without it.

Twenty clients, run as jobs of another ``FiberPool``, send three requests
each. Everything is closed before the program exits.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402  (patched: cooperative)
import sqlite3  # noqa: E402  (not patched: blocks in C)
import tempfile  # noqa: E402
from time import monotonic  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

from gruvi_gevent import FiberPool, blocking, wait  # noqa: E402

HOST = '127.0.0.1'


class App:
    def __init__(self, db_path):
        self.db_path = db_path
        # One pool for the backend calls of every request: at most 50 at once.
        self.backends = FiberPool(50, name='backends')

    def query_user(self, user_id):
        """Runs in an IO-pool thread: a connection per call, closed after it."""
        connection = sqlite3.connect(self.db_path)
        try:
            row = connection.execute('SELECT name FROM users WHERE id = ?',
                                     (user_id,)).fetchone()
        finally:
            connection.close()
        return row[0] if row else None

    @staticmethod
    def recommendations(user_id):
        gevent.sleep(0.02)
        return ['item-%d' % (user_id * 10 + i) for i in range(3)]

    @staticmethod
    def badges(user_id):
        gevent.sleep(0.02 if user_id % 5 else 5.0)   # every fifth user: a stuck backend
        return ['early-adopter']

    def handle(self, sock, address):
        sock.settimeout(5)
        with sock, sock.makefile('rwb') as stream:
            for line in stream:
                command, _, arg = line.decode().partition(' ')
                if command != 'user':
                    stream.write(b'{"error": "unknown command"}\n')
                    stream.flush()
                    continue
                user_id = int(arg)
                name = blocking(self.query_user, user_id)
                futures = {'recommendations': self.backends.submit(self.recommendations, user_id),
                           'badges': self.backends.submit(self.badges, user_id)}
                wait(list(futures.values()), timeout=0.5)
                reply = {'id': user_id, 'name': name}
                for key, future in futures.items():
                    if future.done():
                        reply[key] = future.result()
                    else:
                        future.cancel()        # raises Cancelled inside the stuck job
                        reply[key] = None
                stream.write(json.dumps(reply).encode() + b'\n')
                stream.flush()

    def close(self):
        self.backends.close()


def client(port, client_id):
    """Send three requests on one connection; return the decoded replies."""
    replies = []
    with socket.create_connection((HOST, port), timeout=5) as sock, \
            sock.makefile('rwb') as stream:
        for n in range(3):
            stream.write(b'user %d\n' % (client_id * 3 + n))
            stream.flush()
            replies.append(json.loads(stream.readline()))
    return replies


def main():
    with tempfile.TemporaryDirectory() as tmp:
        db_path = os.path.join(tmp, 'users.db')
        with sqlite3.connect(db_path) as connection:
            connection.execute('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)')
            connection.executemany('INSERT INTO users VALUES (?, ?)',
                                   [(i, 'user%d' % i) for i in range(100)])
        connection.close()

        app = App(db_path)
        server = StreamServer((HOST, 0), app.handle)
        server.start()
        try:
            start = monotonic()
            with FiberPool(name='clients') as clients:
                results = list(clients.map(client, [server.server_port] * 20, range(20),
                                           timeout=30))
            took = monotonic() - start
        finally:
            server.stop(timeout=5)
            app.close()

    replies = [reply for replies in results for reply in replies]
    assert len(replies) == 60
    assert all(reply['name'] == 'user%d' % reply['id'] for reply in replies)
    partial = [reply for reply in replies if reply['badges'] is None]
    assert {reply['id'] for reply in partial} >= set(range(0, 60, 5))
    print('sample reply: %s' % json.dumps(replies[1]))
    print('served %d requests from 20 clients in %.2f s; %d answered without the '
          'stuck backend' % (len(replies), took, len(partial)))
    print('server: OK')


if __name__ == '__main__':
    main()
