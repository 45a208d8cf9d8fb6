"""``subprocess.Popen`` that works in native threads under monkey patching.

gevent's cooperative ``Popen`` watches its child with a libev child watcher,
and libev has those on the default loop only (the main thread's): in any
other thread it raises ``TypeError: child watchers are only available on the
default loop``. Once gevent has installed its ``SIGCHLD`` handling, the
default loop also reaps *every* child (libev calls ``waitpid(-1)``), so a
child that a thread starts by other means can lose its exit status to it.

So :class:`Popen`, installed as ``subprocess.Popen`` (and as the ``Popen``
that gevent's ``run()``, ``call()`` and ``check_output()`` use), is gevent's
class in the main thread and, in any other thread, a :class:`ThreadPopen`:
the standard library's ``Popen`` (a private copy of the module, since gevent
disables the original's ``fork_exec``) that blocks only its own thread on
pipes and waits, and whose fork runs in the main thread's hub, where gevent's
``fork_and_watch`` starts the child watcher before the loop can reap the
child. Its status then comes from gevent's ``os.waitpid``, which knows the
children it watches.
"""

import gc
import importlib.util
import os
import selectors
import subprocess
import time
import types
import weakref
from typing import Any

import gevent.os
import gevent.subprocess
from gevent import monkey
from gevent.hub import MAIN_THREAD_IDENT, Hub

from .future import Future
from ._wakeup import get_ident, run_in_hub

__all__ = ['Popen', 'ThreadPopen']

_GeventPopen: Any = gevent.subprocess.Popen


def _load_stdlib_subprocess() -> Any:
    """Return a fresh copy of the standard library's subprocess module."""
    spec = importlib.util.spec_from_file_location('gruvi_gevent._stdlib_subprocess',
                                                  subprocess.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_stdlib = _load_stdlib_subprocess()
_real_fork_exec = _stdlib._fork_exec

# pid -> Future completed (in the main hub) when that child has exited.
_exits: dict[int, 'Future[None]'] = {}

_main_hub_ref: 'weakref.ref[Any] | None' = None


def _main_hub() -> Any:
    """Return the hub of the default loop (the main thread's), or None if there is none.

    Looked for once among all objects, then remembered.
    """
    global _main_hub_ref
    hub = _main_hub_ref() if _main_hub_ref is not None else None
    if hub is None or hub.loop is None:
        hub = next((obj for obj in gc.get_objects()
                    if isinstance(obj, Hub) and obj.loop is not None and obj.loop.default),
                   None)
        _main_hub_ref = weakref.ref(hub) if hub is not None else None
    return hub


def _fork_exec_watched(*args: Any) -> int:
    """``_posixsubprocess.fork_exec(*args)`` run in the main hub, the child watched there.

    Blocks only the calling thread. With no default loop in the process
    nothing can reap the child behind our back: fork right here.
    """
    hub = _main_hub()
    if hub is None:
        return _real_fork_exec(*args)
    started: Future[int] = Future()
    exited: Future[None] = Future()

    def fork_in_hub() -> None:
        try:
            hub.loop.install_sigchld()
            pid = gevent.os.fork_and_watch(lambda _watcher: exited.set_result(None),
                                           hub.loop, False, lambda: _real_fork_exec(*args))
        except BaseException as exc:
            started.set_exception(exc)
        else:
            _exits[pid] = exited
            started.set_result(pid)

    try:
        run_in_hub(hub, fork_in_hub)
    except RuntimeError:
        # The main hub never waited on another thread, so it has no channel
        # to take calls from one: fork here (its loop may then reap the child).
        return _real_fork_exec(*args)
    return started.result()


class _PollSelector(selectors.PollSelector):
    """A selector on the original ``select.poll``: it blocks only its thread."""

    _selector_cls = monkey.get_original('select', 'poll')


def _with_originals(module: types.ModuleType, names: list[str]) -> types.ModuleType:
    """Return a copy of *module* whose *names* are the originals that gevent saved.

    gevent's ``os.close`` of a pipe defers the close to the calling thread's
    hub, which never runs while the thread blocks reading the pipe's other
    end; gevent's ``time.sleep`` would give the thread a hub in the first place.
    """
    copy = types.ModuleType(module.__name__)
    copy.__dict__.update(module.__dict__)
    for name in names:
        setattr(copy, name, monkey.get_original(module.__name__, name))
    return copy


_stdlib._fork_exec = _fork_exec_watched
_stdlib._USE_POSIX_SPAWN = False     # gevent's posix_spawn watches on the caller's loop
_stdlib._PopenSelector = _PollSelector
_stdlib.os = _with_originals(os, ['close'])
_stdlib.time = _with_originals(time, ['sleep'])


class ThreadPopen(_stdlib.Popen):  # type: ignore[name-defined]
    """The standard library's ``Popen``, for native threads other than the main one."""

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        exited = _exits.get(self.pid)
        if exited is None:
            return super()._try_wait(wait_flags)
        if not wait_flags & os.WNOHANG:
            exited.result()
        # gevent's waitpid: the status its watcher recorded, or (0, 0).
        return os.waitpid(self.pid, os.WNOHANG)

    def _handle_exitstatus(self, sts: int, *args: Any, **kwargs: Any) -> None:
        _exits.pop(self.pid, None)
        super()._handle_exitstatus(sts, *args, **kwargs)


class Popen(_GeventPopen):
    """gevent's ``Popen`` in the main thread; a :class:`ThreadPopen` in any other."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Popen and get_ident() != MAIN_THREAD_IDENT:
            # Not an instance of cls: Python does not call __init__ again.
            return ThreadPopen(*args, **kwargs)
        return super().__new__(cls)


def install() -> None:
    """Make ``subprocess.Popen`` (and gevent's ``run()`` and friends) this module's :class:`Popen`."""
    if monkey.is_object_patched('subprocess', 'Popen') and subprocess.Popen is not Popen:
        subprocess.Popen = Popen      # type: ignore[misc]
        gevent.subprocess.Popen = Popen
