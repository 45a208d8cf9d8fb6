"""The process-wide IO and CPU thread pools, the process pool, and blocking().

Both pools are created on first use, from any thread, and are the same
objects everywhere, until one is closed: the next call makes a fresh one
(closing them, in a ``with`` block or a test's teardown, breaks nothing).
Their threads belong to the process, like a hub, not to whoever started
them. They are pools of our own, not the hub's
``hub.threadpool``: gevent's DNS resolver queues work there, and blocking
calls must not stall name resolution.
"""

import os
import time
from collections.abc import Callable
from contextvars import copy_context
from typing import ParamSpec, TypeVar

from gevent import monkey
from gevent._hub_local import get_hub_if_exists
from greenlet import getcurrent

from . import _exiting as exiting
from ._admission import admission_of
from ._job import EMPTY_CONTEXT
from .processpool import ProcessPool
from ._spawner import spawner_ident, stop_spawner
from .threadpool import ThreadPool, fail_job, threads_alive
from ._wakeup import allocate_lock, get_ident

__all__ = ['get_io_pool', 'get_cpu_pool', 'get_process_pool', 'blocking', 'stop_idle_threads',
           'process_pool_threads']

_sleep: Callable[[float], None] = monkey.get_original('time', 'sleep')
# How long to wait for an OS thread to be gone once it has left Python code.
_EXIT_TIMEOUT = 5.0

T = TypeVar('T')
P = ParamSpec('P')

_lock = allocate_lock()
_pools: dict[str, ThreadPool] = {}
_process_pool: ProcessPool | None = None

# blocking() calls admitted at once per hub, per thread of the IO pool: enough
# to keep every thread busy while completions travel back, and for the hub
# to take them in batches; few enough that a batch does not stall the hub
# (with 80 in flight a 1 ms ticker's p99 lateness stays below what it is with
# gevent's apply(), which holds callers back at 21; see the performance guide).
ADMITTED_PER_THREAD = 4


def _get_pool(name: str, maxsize: int) -> ThreadPool:
    pool = _pools.get(name)
    if pool is None or pool._closing:
        with _lock:
            pool = _pools.get(name)
            if pool is None or pool._closing and not exiting.began():
                pool = _pools[name] = ThreadPool(maxsize, name=name)
    return pool


def process_pool_threads() -> set[int]:
    """Return the idents of the threads of the IO and CPU pools (they live
    for the process: leak checks leave them out)."""
    return {ident for pool in list(_pools.values()) for ident in pool._thread_idents()}


def get_io_pool() -> ThreadPool:
    """Return the thread pool for IO tasks.

    By default there is one IO thread pool per application (maxsize 20,
    name ``Io``), which is shared with all threads. Once it is closed, the
    next call returns a new one.
    """
    return _get_pool('Io', 20)


def get_cpu_pool() -> ThreadPool:
    """Return the thread pool for CPU intensive tasks.

    By default there is one CPU thread pool per application (maxsize
    ``os.cpu_count()``, name ``Cpu``), which is shared with all threads.
    Once it is closed, the next call returns a new one.
    """
    return _get_pool('Cpu', os.cpu_count() or 1)


def get_process_pool() -> ProcessPool:
    """Return the process pool for CPU intensive Python code.

    By default there is one process pool per application (maxsize
    ``os.cpu_count()``, name ``Process``, forkserver workers). ``submit()``
    works from any thread; the greenlets that look after its workers run in
    the hub of the thread that first calls this, normally the main thread.
    """
    global _process_pool
    pool = _process_pool
    if pool is None:
        with _lock:
            pool = _process_pool
            if pool is None:
                pool = _process_pool = ProcessPool(name='Process')
    return pool


def blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a function that uses blocking IO.

    *Switchpoint.* The function is run in the IO thread pool; its result is
    returned, or its exception re-raised with the original traceback.

    From a greenlet this parks only that greenlet: the hub goes on serving
    every other greenlet while the call blocks a pool thread. A hub lets
    four times as many calls into the pool at once as it has threads; later
    calls wait in the hub, first come first served, so that completions
    reach the hub in batches small enough for other greenlets to keep their
    turn. Called from a
    plain native thread it blocks just that thread. Called from inside an
    IO-pool thread it runs *func* right there, so that nested calls cannot
    deadlock a full pool. *func* is positional-only: every keyword goes to it.

    The function runs in a copy of the caller's ``contextvars`` context, as
    with ``asyncio.to_thread``: it sees the caller's context variables, and
    what it sets stays in its copy.
    """
    if not callable(func):
        raise TypeError('func must be callable, got %r' % (func,))
    pool = _pools.get('Io')
    if pool is None or pool._closing:
        pool = get_io_pool()
    if get_ident() in pool._current:    # an IO-pool thread: inline
        return copy_context().run(func, *args, **kwargs)
    context = copy_context() or EMPTY_CONTEXT
    hub = get_hub_if_exists()
    if hub is None or getcurrent() is hub:
        return pool._call_from_thread(func, args, kwargs, context)
    try:
        admission = hub._gruvi_gevent_admission
    except AttributeError:
        admission = admission_of(hub, ADMITTED_PER_THREAD * pool._limit, fail_job)
    return admission.call(pool._enqueue, context, func, args, kwargs)


def stop_idle_threads() -> int:
    """Stop the idle threads of the IO and CPU pools, and the library's spawner thread.

    For a process about to ``fork()`` without threads (a pre-forking server's
    master, say): Python 3.12 and later warn on ``fork()`` in a process that
    has other threads. The pools stay open and start threads again on next
    use. Threads that are running a job stay, and so does the spawner thread
    while any pool (your own ones included) has a thread.

    Blocks the calling thread (not a switchpoint) until the stopped threads
    have exited, which takes milliseconds. Returns how many of the library's
    threads are still running: 0 means none.
    """
    native_ids = []
    for pool in list(_pools.values()):
        native_ids += pool._stop_idle_threads()
    native_id = stop_spawner(threads_alive)
    if native_id is not None:
        native_ids.append(native_id)
    _wait_gone(native_ids)
    return threads_alive() + (spawner_ident() is not None)


def _wait_gone(native_ids: list[int]) -> None:
    # The threads have left the library's code; where the OS lists its
    # threads, wait for them to be gone from there too, as fork() counts them.
    deadline = time.monotonic() + _EXIT_TIMEOUT
    for native_id in native_ids:
        path = '/proc/self/task/%d' % native_id
        while os.path.exists(path) and time.monotonic() < deadline:
            _sleep(0.0005)


def _forget_process_pool_after_fork() -> None:
    # The thread pools reset themselves in the child. The process pool's
    # greenlets and workers belong to the parent: the child makes its own on demand.
    global _process_pool
    _process_pool = None


# The module lock may have been held by a thread that does not exist in the child.
os.register_at_fork(after_in_child=_lock._at_fork_reinit)
os.register_at_fork(after_in_child=_forget_process_pool_after_fork)
