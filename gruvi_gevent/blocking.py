"""The process-wide IO and CPU thread pools, and blocking().

Both pools are created on first use, from any thread, and are the same
objects everywhere. They are pools of our own, not the hub's
``hub.threadpool``: gevent's DNS resolver queues work there, and blocking
calls must not stall name resolution.
"""

import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from .threadpool import ThreadPool
from .wakeup import allocate_lock

__all__ = ['get_io_pool', 'get_cpu_pool', 'blocking']

T = TypeVar('T')
P = ParamSpec('P')

_lock = allocate_lock()
_pools: dict[str, ThreadPool] = {}


def _get_pool(name: str, maxsize: int) -> ThreadPool:
    pool = _pools.get(name)
    if pool is None:
        with _lock:
            pool = _pools.get(name)
            if pool is None:
                pool = _pools[name] = ThreadPool(maxsize, name=name)
    return pool


def get_io_pool() -> ThreadPool:
    """Return the thread pool for IO tasks.

    By default there is one IO thread pool per application (maxsize 20,
    name ``Io``), which is shared with all threads.
    """
    return _get_pool('Io', 20)


def get_cpu_pool() -> ThreadPool:
    """Return the thread pool for CPU intensive tasks.

    By default there is one CPU thread pool per application (maxsize
    ``os.cpu_count()``, name ``Cpu``), which is shared with all threads.
    """
    return _get_pool('Cpu', os.cpu_count() or 1)


def blocking(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a function that uses blocking IO.

    *Switchpoint.* The function is run in the IO thread pool; its result is
    returned, or its exception re-raised with the original traceback.

    From a greenlet this parks only that greenlet: the hub goes on serving
    every other greenlet while the call blocks a pool thread. Called from a
    plain native thread it blocks just that thread. Called from inside an
    IO-pool thread it runs *func* right there, so that nested calls cannot
    deadlock a full pool.
    """
    if not callable(func):
        raise TypeError('func must be callable, got %r' % (func,))
    pool = get_io_pool()
    if pool._is_worker_thread():
        return func(*args, **kwargs)
    return pool._call(func, args, kwargs)


def _forget_pools_after_fork() -> None:
    # The pools reset themselves in the child; the module lock may have been
    # held by a thread that does not exist there.
    global _lock
    _lock = allocate_lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)
