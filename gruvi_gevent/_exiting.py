"""What the pools do when the interpreter exits: as ``concurrent.futures`` does.

When the interpreter shuts down (``threading``'s exit hooks, which run
after the main module returns and before ``atexit`` handlers), every
``ThreadPool`` is closed: jobs submitted before exit run to completion, and
exit waits for them and for the pool threads to be gone, so that no pool
thread still runs while the interpreter is torn down. From then on
``submit()`` raises ``RuntimeError``, also from ``atexit`` handlers.

A ``FiberPool``'s jobs need its hub to run, and gevent runs no greenlet once
the main one has returned: fiber jobs still queued or running at exit are
dropped, as gevent drops any greenlet, and a warning on the ``gruvi_gevent``
logger says how many. Idle pools exit at once.

Last the spawner thread (see :mod:`gruvi_gevent._spawner`) is stopped too,
and no new one starts.
"""

import logging
import threading
import weakref
from typing import Any

from ._logs import log

__all__ = ['began', 'register']

_began = False
_pools: 'weakref.WeakSet[Any]' = weakref.WeakSet()   # every pool made, until collected


def began() -> bool:
    """Return whether interpreter shutdown has begun (pools are closed or closing)."""
    return _began


def register(pool: Any) -> None:
    """Have ``pool._at_exit()`` (see ``PoolBase._at_exit``) called at interpreter shutdown."""
    _pools.add(pool)


def _at_exit() -> None:
    global _began
    _began = True
    for pool in list(_pools):
        try:
            pool._at_exit()
        except Exception as exc:    # one pool must not keep the others from closing
            log(logging.ERROR, '%s: closing at exit failed: %r', pool.name, exc, exc_info=exc)
    # The pools' modules import this one: imported here, at exit.
    from .blocking import stop_idle_threads
    stop_idle_threads()


# What concurrent.futures.thread registers too: run before threads are joined.
threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
