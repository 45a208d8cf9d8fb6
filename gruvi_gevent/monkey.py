"""Making legacy code safe to run in pool threads under gevent's monkey patching.

Under ``gevent.monkey.patch_all()`` the locks, conditions, events and queues
that legacy code creates are gevent's, and gevent's lose wake-ups or fail
once a native thread shares them with greenlets or with another thread (the
causes, read in gevent's sources, are in the monkey patching guide of the
documentation). Running legacy code through ``blocking()`` or a
``ThreadPool`` does exactly that, so the library installs locks that are
correct for both (:mod:`gruvi_gevent._locks`) where patched ``threading`` and
``_thread`` hand out locks, puts back the standard library's
``threading.Event`` and ``queue`` classes (which then run on those locks),
swaps the locks that ``logging`` already holds, makes ``subprocess``
work in threads other than the main one (:mod:`gruvi_gevent._subprocess`),
and has a patched ``os.fork()`` catch the exit of a child that is quicker
than the parent (:func:`_catch_sigchld_before_fork`).

This happens by default: ``import gruvi_gevent`` does it when ``threading`` is
patched already, and gevent's ``patch_all()`` called after that import does
it too (through gevent's patch events). Only a lock created before either --
between gevent's ``patch_all()`` and ``import gruvi_gevent``, by code other
than ``logging`` -- stays gevent's: call :func:`patch_all` here instead of
gevent's, first thing, to leave no such window.
"""

import logging
import os
import queue
import sys
import threading
from typing import Any

import gevent.events
from gevent import monkey
from gevent.hub import MAIN_THREAD_IDENT, get_hub

from ._locks import Lock, RLock
from ._wakeup import get_ident

__all__ = ['patch_all', 'patch_locks']

# (module, attribute, what we install there): our locks where patched
# threading and _thread hand out gevent's.
_LOCK_SITES: list[tuple[Any, str, Any]] = [
    (sys.modules['_thread'], 'allocate_lock', Lock),
    (sys.modules['_thread'], 'LockType', Lock),
    (sys.modules['_thread'], 'lock', Lock),          # Python >= 3.13
    (threading, 'Lock', Lock),
    (threading, '_allocate_lock', Lock),
    (threading, 'RLock', RLock),
]

# queue classes to put back, with what they are built on: the standard
# library's pure-Python classes, which take their locks from threading.
_QUEUES = ['Queue', 'LifoQueue', 'PriorityQueue']


def patch_all(*args: Any, **kwargs: Any) -> Any:
    """Call ``gevent.monkey.patch_all(*args, **kwargs)``, then :func:`patch_locks`.

    Same arguments and return value as gevent's. Call it first thing, before
    anything creates a lock, instead of gevent's own.
    """
    result = monkey.patch_all(*args, **kwargs)
    _patch()
    return result


def patch_locks() -> bool:
    """Install locks that are safe between greenlets and native threads.

    For a process that has already called gevent's ``patch_all()`` (or
    ``patch_thread()``): ``threading.Lock``, ``RLock``, ``_allocate_lock``
    and ``_thread.allocate_lock`` hand out :mod:`gruvi_gevent._locks` locks
    from now on; ``threading.Event`` and ``queue.Queue`` (``LifoQueue``,
    ``PriorityQueue``, ``SimpleQueue``) are the standard library's classes
    again, built on them; ``logging``'s module lock and the locks of its
    existing handlers are replaced. Locks that other code created before the
    call are left as they are.

    Returns False, doing nothing, when ``threading`` is not patched (its
    native locks are right for threads, and no greenlet shares them); True
    otherwise. Calling it again does no harm.
    """
    if not monkey.is_module_patched('threading'):
        return False
    for module, name, value in _LOCK_SITES:
        if hasattr(module, name):
            setattr(module, name, value)
    if monkey.is_object_patched('threading', 'Event'):
        setattr(threading, 'Event', monkey.get_original('threading', 'Event'))
    if monkey.is_module_patched('queue'):
        for name in _QUEUES:
            if monkey.is_object_patched('queue', name):
                setattr(queue, name, monkey.get_original('queue', name))
        if monkey.is_object_patched('queue', 'SimpleQueue'):
            setattr(queue, 'SimpleQueue', getattr(queue, '_PySimpleQueue'))
    _swap_logging_locks()
    return True


def _swap_logging_locks() -> None:
    """Give ``logging`` and each of its handlers a lock of ours."""
    if not isinstance(logging._lock, RLock):  # type: ignore[attr-defined]
        logging._lock = RLock()  # type: ignore[attr-defined]
    for ref in list(logging._handlerList):  # type: ignore[attr-defined]
        handler = ref()
        if handler is not None and handler.lock is not None \
                and not isinstance(handler.lock, RLock):
            handler.lock = RLock()


def _patch() -> None:
    """Everything this module does, for whatever gevent has patched."""
    patch_locks()
    if monkey.is_object_patched('subprocess', 'Popen'):
        from . import _subprocess
        _subprocess.install()


def _after_gevent_patch_all(event: object) -> None:
    # A gevent patch event subscriber: patch_all() after our import.
    if isinstance(event, gevent.events.GeventDidPatchAllEvent):
        _patch()


def _install() -> None:
    """Patch now what gevent has patched, and again whenever its patch_all() runs later."""
    if _after_gevent_patch_all not in gevent.events.subscribers:
        gevent.events.subscribers.append(_after_gevent_patch_all)
    _patch()


def _catch_sigchld_before_fork() -> None:
    """Have libev's ``SIGCHLD`` handler in place before a patched ``os.fork()`` forks.

    gevent's patched ``os.fork()`` starts the child watcher that its
    ``os.waitpid()`` waits on after the fork returns in the parent, and only
    that first watcher installs libev's ``SIGCHLD`` handler: a child that
    exits before then (a loaded machine may run it to its end first) sends
    its ``SIGCHLD`` to the default disposition, which drops it, and the
    parent's ``os.waitpid()`` waits for ever. With the handler installed
    first, libev reaps the child on the loop's next pass, when the watcher
    is there (as gevent's own ``Popen`` does: see :mod:`._subprocess`).
    Only for the main thread, whose hub has the default loop, the only one
    with child watchers.
    """
    if not monkey.is_object_patched('os', 'waitpid') or get_ident() != MAIN_THREAD_IDENT:
        return      # waitpid is the OS's: nobody must reap behind the caller's back
    hub = get_hub()     # the parent makes it after the fork anyway
    if hub.loop is not None and hub.loop.default:
        hub.loop.install_sigchld()


os.register_at_fork(before=_catch_sigchld_before_fork)
