"""The spawner: one native thread, with a hub of its own, that starts every pool thread.

``gevent.threadpool.ThreadPool.spawn()`` may only be called on the hub thread
of the gevent pool, and each thread it starts reports back to that hub's loop
when it exits. Starting worker threads from whatever thread submits work
would mean making hubs in arbitrary threads; such a hub dies with its thread
(gevent destroys the hub of a pool thread as it exits) and takes with it the
loop that the workers it started still report to. And the hub that started a
long-lived worker counts it as activity, so ``gevent.wait()`` would not return
there while any worker lives.

So every worker thread is started here: any thread asks with
:func:`start_thread_soon` (a deque append and an async ``send()``, the one loop
call that is safe from another thread), and this thread's main greenlet calls
``spawn()`` on its own hub. The thread runs until :func:`stop_spawner` (a
raw thread) and is made again, on demand, after that and in a forked child,
but not once interpreter shutdown has begun: the pools are closed then and
the spawner stopped (see :mod:`gruvi_gevent._exiting`). Nobody waits for it to
start: the first pool use queues its request and returns while the thread
builds its hub.
"""

import collections
import logging
import os
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import gevent.threadpool
from gevent import monkey
from gevent._waiter import Waiter
from gevent.hub import get_hub

from . import _exiting as exiting
from ._logs import log
from ._threadnames import run_named
from ._wakeup import allocate_lock, get_ident

__all__ = ['start_thread_soon', 'call_in_spawner', 'spawner_ident', 'stop_spawner']

_start_new_thread = monkey.get_original('_thread', 'start_new_thread')
_get_native_id = monkey.get_original('_thread', 'get_native_id')

# gevent's ThreadPool wants a bound; ours count their threads themselves.
_UNBOUNDED = 1 << 30


class _Spawner:
    """The spawner thread's state; see the module docstring."""

    __slots__ = ('ident',      # the thread's ident, once its hub runs
                 'native_id',  # the thread's OS id, to wait for it to be gone
                 'requests',   # _ThreadRequests, or functions to call; appended under _lock
                 'watcher',    # async watcher of the thread's hub, once it runs: send() wakes it
                 'error',      # what stopped the thread from starting, if anything
                 'ready',      # an OS lock held until the thread is set up (or failed to be)
                 'gpools',     # the gevent ThreadPools made here; only this thread touches it
                 'by_group',   # weakly, thread group -> its gevent ThreadPool; this thread's
                 'stopping',   # set (under _lock, once no longer _spawner) to end the thread
                 'exited')     # an OS lock, held until the thread has left its loop

    def __init__(self) -> None:
        self.requests: collections.deque[Any] = collections.deque()
        self.ident: int | None = None
        self.native_id: int | None = None
        self.watcher: Any = None
        self.error: BaseException | None = None
        self.gpools: list[Any] = []
        self.by_group: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.stopping = False
        self.exited = allocate_lock()
        self.exited.acquire()
        self.ready = allocate_lock()
        self.ready.acquire()
        # Nobody waits for the thread to build its hub (milliseconds, more
        # under load): requests queue up meanwhile and it takes them first.
        _start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            hub = get_hub()
            hub.name = 'gruvi_gevent spawner'
            waiter = Waiter(hub)
            # Started and ref'd for good: it keeps this thread's loop running.
            watcher = hub.loop.async_()
            watcher.start(waiter.switch, None)
            self.ident = get_ident()
            self.native_id = _get_native_id()
            self.watcher = watcher
        except BaseException as exc:
            self.error = exc
            self._fail_requests()
            self.exited.release()
            return
        finally:
            self.ready.release()
        try:
            self._serve(waiter)
        finally:
            self._close(hub)
            self.exited.release()

    def _fail_requests(self) -> None:
        """The thread could not set up: the pools that asked get no worker."""
        global _spawner
        with _lock:
            if _spawner is self:
                _spawner = None     # the next request tries a new thread
            requests = list(self.requests)
            self.requests.clear()
        log(logging.ERROR, 'the spawner thread cannot start (%d requests dropped): %r',
            len(requests), self.error, exc_info=self.error)
        for request in requests:
            if not callable(request):
                request.not_started()

    def _serve(self, waiter: Waiter) -> None:
        requests = self.requests
        while not self.stopping:
            while requests:
                request = requests.popleft()
                if callable(request):
                    request()
                else:
                    self._spawn(request)
            waiter.get()
            waiter.clear()

    def _close(self, hub: Any) -> None:
        # kill() waits for the workers still leaving to let go of this hub.
        for gpool in self.gpools:
            gpool.kill()
        self.watcher.close()
        hub.destroy(destroy_loop=True)

    def _spawn(self, request: '_ThreadRequest') -> None:
        # Each group of threads has a gevent ThreadPool of its own, bound to
        # this thread's hub and only touched in this thread.
        gpool = self.by_group.get(request.group)
        if gpool is None:
            gpool = self.by_group[request.group] = gevent.threadpool.ThreadPool(
                _UNBOUNDED, idle_task_timeout=0)
            self.gpools.append(gpool)
        try:
            gpool.spawn(run_named, request.name, request.run)
        except Exception as exc:     # e.g. the OS refuses a new thread
            log(logging.ERROR, 'cannot start thread %s: %r', request.name, exc,
                exc_info=exc)
            request.not_started()


_spawner: _Spawner | None = None
_lock = allocate_lock()


def _get_spawner() -> _Spawner:
    # Called under _lock.
    global _spawner
    if _spawner is None:
        if exiting.began():
            raise RuntimeError('cannot start the spawner thread after interpreter '
                               'shutdown began')
        _spawner = _Spawner()
    return _spawner


def _send(spawner: _Spawner) -> None:
    # Called under _lock, after a request was appended: a thread that sets
    # its watcher later takes every queued request once it has.
    watcher = spawner.watcher
    if watcher is not None:
        watcher.send()


class _ThreadRequest(NamedTuple):
    """A thread that start_thread_soon() was asked for."""

    run: Callable[[], object]           # what the thread runs
    name: str                           # the thread's name while it runs
    not_started: Callable[[], object]   # called instead if the thread cannot start
    group: Any                          # threads of one group share a gevent ThreadPool


def start_thread_soon(run: Callable[[], object], name: str,
                      not_started: Callable[[], object], group: Any) -> None:
    """Have the spawner start a native thread named *name* that calls ``run()``.

    Callable from any thread; returns at once, also while the spawner thread
    is still building its hub. If the OS refuses the thread (or the spawner
    thread cannot set up), the spawner calls ``not_started()`` instead. The
    threads of one *group* (weakly referenced; a pool, say) share a gevent
    ThreadPool. Raises if the spawner thread itself cannot start, or once it
    has been stopped at interpreter exit.
    """
    with _lock:
        # Under the lock, so that no request lands in a spawner being stopped.
        spawner = _get_spawner()
        spawner.requests.append(_ThreadRequest(run, name, not_started, group))
        _send(spawner)


def call_in_spawner(func: Callable[[], object]) -> None:
    """Have the spawner thread call ``func()``; returns at once, from any thread.

    For work that must always happen on one thread of the process: under
    monkey patching, multiprocessing's locks are greenlet locks, which two OS
    threads must never share (see :mod:`gruvi_gevent.processpool`). *func*
    must not raise; it may switch greenlets (the spawner's hub runs meanwhile).
    """
    with _lock:
        spawner = _get_spawner()
        spawner.requests.append(func)
        _send(spawner)


def spawner_ident() -> int | None:
    """Return the ident of the spawner thread, or None if it has not started."""
    spawner = _spawner
    return None if spawner is None else spawner.ident


def stop_spawner(threads_alive: Callable[[], int]) -> int | None:
    """End the spawner thread unless a pool has worker threads or a request
    is still queued (a function of :func:`call_in_spawner`), and return
    its OS thread id once it has left its loop (None if it stays, or if there
    was none). A later :func:`start_thread_soon` starts a new one.

    *threads_alive()* counts the worker threads of every pool, started or
    starting; it is called under the lock that :func:`start_thread_soon` takes, so
    no thread can be on its way while it says 0. The gevent pools bound to the
    spawner's hub go with it, once the threads still leaving them are gone.
    Blocks the calling thread (not a switchpoint) while the spawner shuts down.
    """
    global _spawner
    with _lock:
        spawner = _spawner
        if spawner is None or threads_alive() or spawner.requests:
            return None
        _spawner = None
        spawner.stopping = True
    with spawner.ready:     # a thread still setting up reads stopping once it is
        watcher = spawner.watcher
    if watcher is not None:
        watcher.send()
    with spawner.exited:
        return spawner.native_id


def _forget_spawner_after_fork() -> None:
    # The thread does not exist in the child: a new spawner is made on demand.
    global _spawner
    _spawner = None


# The lock may have been held by a thread that does not exist in the child.
os.register_at_fork(after_in_child=_lock._at_fork_reinit)
os.register_at_fork(after_in_child=_forget_spawner_after_fork)
