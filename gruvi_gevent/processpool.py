"""ProcessPool: Python code on every core, in worker processes looked after by greenlets.

Each worker is a ``forkserver`` (or ``spawn``) process holding one end of a
Unix socketpair. On the pool's side a worker is a greenlet of a
:class:`~gruvi_gevent.FiberPool` (the pool's own machinery: queue, idle
timeout, ``close()``, ``join()``) that sends the pickled job over a gevent
socket and parks until the answer arrives: no helper thread, nothing that
monkey patching could turn into a greenlet doing blocking writes. Big
arguments and results travel as pickle protocol 5 out-of-band buffers and
are sent and received in pieces, with the hub serving everyone else between
them (see :mod:`gruvi_gevent._processworker` for the messages).

Why not the ``fork`` start method: a forked worker inherits the parent's hub
and greenlets, and they run in it. Why the processes are started in the
library's spawner thread (:func:`~gruvi_gevent._spawner.call_in_spawner`):
under monkey patching multiprocessing's locks are greenlet locks, and pools
in two threads starting workers would share them between OS threads, which
can hang for good. Everything else about a worker happens in its greenlet.

A worker that dies (``kill -9``) fails only the job it was running, with
:class:`WorkerDied` naming the exit code; the greenlet starts a fresh
process for its next job. A worker found dead when it is given a job (it
died idle) is replaced first, and the job runs on the new one.
"""

import _socket
import atexit
import functools
import logging
import multiprocessing
import multiprocessing.process
import os
import pickle
import signal
import weakref
from collections.abc import Callable, Iterable
from multiprocessing import reduction
from typing import Any, ParamSpec, TypeVar, cast

import gevent
import gevent.select
import gevent.socket
from gevent import GreenletExit, monkey
from greenlet import getcurrent

from . import _processworker as wire
from ._job import NO_KWARGS, Job
from .errors import Cancelled, Error
from .fiberpool import FiberPool
from .future import Future
from .pool import PoolBase
from ._spawner import call_in_spawner
from ._wakeup import allocate_lock

__all__ = ['ProcessPool', 'WorkerDied', 'RemoteTraceback']

T = TypeVar('T')
P = ParamSpec('P')

_START_METHODS = ('forkserver', 'spawn')
# Seconds a worker gets to exit once its socket is closed, before SIGKILL.
_EXIT_TIMEOUT = 5.0
# Polls (5 ms apart) for the exit code of a process whose sentinel fired.
_EXIT_CODE_POLLS = 200

_live_pools: 'weakref.WeakSet[ProcessPool]' = weakref.WeakSet()

if wire.cloudpickle is not None and monkey.is_module_patched('threading'):
    # Imported after patch_all(): cloudpickle's lock for classes pickled by
    # value is a greenlet lock, and submit() pickles in any thread.
    wire.cloudpickle.cloudpickle._DYNAMIC_CLASS_TRACKER_LOCK = allocate_lock()


class WorkerDied(Error):
    """The worker process running the job exited before it answered."""


class RemoteTraceback(Exception):
    """The traceback of a job's exception in its worker process.

    Attached to that exception as its ``__cause__``, so that a printed
    traceback shows where the job failed in the worker.
    """

    def __str__(self) -> str:
        return '\n"""\n%s"""' % self.args[0]


class _PassFd:
    """A file descriptor handed to a worker process as it starts.

    Pickled by ``Process.start()``, which passes the descriptor itself along
    (``reduction.DupFd``); the worker gets the descriptor number.
    """

    __slots__ = ('fd',)   # the descriptor, open in this process

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(dupfd: Any) -> int:
    return dupfd.detach()


class _Worker:
    """One worker process as its greenlet sees it."""

    __slots__ = ('process',   # the multiprocessing Process
                 'sock',      # our end of the socketpair: a gevent socket
                 'tasks')     # jobs it has answered

    def __init__(self, process: Any, fd: int) -> None:
        self.process = process
        self.sock = gevent.socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, fileno=fd)
        self.tasks = 0

    def alive(self) -> bool:
        """Return whether the process still holds its end (no EOF waiting to be read)."""
        sock = self.sock
        sock.settimeout(0.0)
        try:
            return sock.recv(1, _socket.MSG_PEEK) != b''
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            sock.settimeout(None)


def _stop_unclaimed(started: 'Future[tuple[Any, int]]') -> None:
    """Stop a worker process whose greenlet was killed while it started.

    Runs where *started* completes: in the spawner thread, which may block.
    """
    if started.exception() is not None:
        return
    process, fd = started.result()
    os.close(fd)        # the worker reads EOF and exits
    process.join(_EXIT_TIMEOUT)
    if process.exitcode is None:
        process.kill()
        process.join(_EXIT_TIMEOUT)


def _failed(exc: BaseException) -> Future[Any]:
    """A future failed already with *exc*: a job that never reached the pool.

    (Its traceback dropped by the caller: it would keep the job's arguments.)
    """
    future: Future[Any] = Future()
    future.set_exception(exc)
    return future


def _exit_description(code: int | None) -> str:
    if code is None:
        return 'with an unknown exit code'
    if code < 0:
        try:
            return 'with code %d (killed by %s)' % (code, signal.Signals(-code).name)
        except ValueError:
            pass
    return 'with code %d' % code


class ProcessPool(FiberPool):
    """A pool of worker processes, for Python code that needs more than one core.

    *maxsize* is the largest number of worker processes (None:
    ``os.cpu_count()``); *minsize* and *name* are as for any pool. Workers
    start on demand and leave after :attr:`idle_timeout` seconds idle, down
    to *minsize*.

    *context* is the start method, ``'forkserver'`` (the default: new workers
    are forked from a small server process, fast and clean) or ``'spawn'`` (a
    fresh interpreter each). ``'fork'`` is refused with ``ValueError``: a
    forked worker would inherit the hub and greenlets of this process, and
    run them. *initializer*, if given, is called with *initargs* in each new
    worker; if it raises, the jobs sent to that worker fail with an
    :class:`~gruvi_gevent.Error` whose cause is its exception. After
    *max_tasks_per_child* jobs a worker exits and a fresh one takes over.
    *max_queued* and *queue_timeout* are as for any pool.

    Functions, arguments and results are pickled: with cloudpickle when it is
    installed (lambdas and local functions work), else with the standard
    pickle (functions of the main script work either way). What cannot be
    pickled fails the job's future at once, with ``pickle.PicklingError``
    naming the function or argument; a result that cannot be pickled fails
    it the same way. A job's own exception reaches its future as itself,
    with the worker's traceback as its ``__cause__`` (a
    :class:`RemoteTraceback`).

    **Cancellation:** a pending job that is cancelled never starts. A running
    job can be cancelled: its worker process is killed (``cancel()`` returns
    True) and replaced.

    **Faults:** a worker that dies fails only the job it was running, with
    :class:`WorkerDied` naming its exit code, and is replaced.

    ``submit()`` may be called from any native thread; the pool's greenlets
    run in the hub of the thread that created it.
    """

    def __init__(self, maxsize: int | None = None, minsize: int = 0,
                 name: str | None = None, *, context: str = 'forkserver',
                 initializer: Callable[..., object] | None = None,
                 initargs: Iterable[Any] = (),
                 max_tasks_per_child: int | None = None,
                 max_queued: int | None = None, queue_timeout: float | None = None) -> None:
        if not isinstance(context, str):
            raise TypeError('context must be a str, got %r' % (context,))
        if context == 'fork':
            raise ValueError("context must not be 'fork': a forked worker inherits this "
                             "process's gevent hub and greenlets, which then run inside "
                             "it; use 'forkserver' or 'spawn'")
        if context not in _START_METHODS:
            raise ValueError("context must be 'forkserver' or 'spawn', got %r" % (context,))
        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be None or callable, got %r' % (initializer,))
        if not isinstance(initargs, (tuple, list)):
            raise TypeError('initargs must be a tuple, got %r' % (initargs,))
        if max_tasks_per_child is not None:
            if isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int):
                raise TypeError('max_tasks_per_child must be None or an int, got %r'
                                % (max_tasks_per_child,))
            if max_tasks_per_child < 1:
                raise ValueError('max_tasks_per_child must be None or >= 1, got %r'
                                 % (max_tasks_per_child,))
        self._context = multiprocessing.get_context(context)
        self._setup = None if initializer is None else _pickle_setup(initializer, initargs)
        self._max_tasks = max_tasks_per_child
        self._workers: dict[Any, _Worker] = {}   # worker greenlet -> its process
        super().__init__((os.cpu_count() or 1) if maxsize is None else maxsize, minsize, name,
                         max_queued=max_queued, queue_timeout=queue_timeout)
        _live_pools.add(self)

    def submit(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._closing or not callable(func):
            self._check_submit(func)
        if self._bound is not None:
            # Takes a place, then packs the job in _submit_admitted().
            return self._submit_bounded(func, args, kwargs)
        try:
            message = self._pack(func, args, kwargs)
        except pickle.PicklingError as exc:
            return _failed(exc.with_traceback(None))
        return super().submit(cast(Callable[..., T], func), message)

    submit.__doc__ = PoolBase.submit.__doc__
    _submit_many = PoolBase._submit_many

    def _submit_admitted(self, func: Callable[..., T], args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Future[T]:
        # submit() and map() of a pool with max_queued, holding a place.
        try:
            message = self._pack(func, args, kwargs)
        except pickle.PicklingError as exc:
            self._bound.release()     # type: ignore[union-attr]
            return _failed(exc.with_traceback(None))
        return super()._submit_admitted(func, (message,), NO_KWARGS)

    def _pack(self, func: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> list[Any]:
        """Return the job's message for a worker; raise ``pickle.PicklingError``
        naming the part that cannot be pickled."""
        try:
            return wire.pack(wire.JOB, wire.job(func, args, kwargs), wire.by_value(func))
        except Exception as exc:
            raise self._pickling_error(func, args, kwargs, exc) from exc

    def _pickling_error(self, func: object, args: tuple[Any, ...], kwargs: dict[str, Any],
                        exc: Exception) -> pickle.PicklingError:
        """The error for a job that cannot be pickled, naming the part that cannot."""
        parts: list[tuple[str, object]] = [('the function %s' % wire.name_of(func), func)]
        parts += [('argument %d (a %s)' % (index, type(arg).__name__), arg)
                  for index, arg in enumerate(args)]
        parts += [('keyword argument %r (a %s)' % (key, type(value).__name__), value)
                  for key, value in kwargs.items()]
        what = 'the job'
        for description, part in parts:
            try:
                wire.dumps(part, protocol=5, buffer_callback=list().append)
            except Exception:
                what = description
                break
        error = pickle.PicklingError('cannot pickle %s of a job of %s for pool %s: %s: %s'
                                     % (what, wire.name_of(func), self._name,
                                        type(exc).__name__, exc))
        error.__cause__ = exc
        return error

    # The worker greenlets.

    def _work(self) -> None:
        try:
            if not self._closing:
                try:
                    self._workers[getcurrent()] = self._start_process()
                except Exception as exc:
                    # The first job will try again, and fail if it cannot.
                    self._log(logging.WARNING, 'cannot start a worker process: %r', exc)
            super()._work()
        finally:
            self._drop_worker(getcurrent())

    def _execute(self, job: Job, canceller: Callable[[Future[Any]], object] | None,
                 escaping: tuple[type[BaseException], ...] = ()) -> Any:
        """Send the job (``args[0]``, packed by submit()) to this greenlet's
        process, and complete its future with the answer; its callbacks run
        here. *Switchpoint.*

        The job's context stays here: a context cannot be sent, and the
        process has its own. Only a ``GreenletExit`` escapes.
        """
        future, func, args = job[0], job[1], job[2]
        del job
        if not future._set_running(canceller):
            return None     # cancelled while it was queued
        current = getcurrent()
        worker = self._workers.get(current)
        try:
            if worker is None or not worker.alive():
                if worker is not None:      # died while idle: costs the job nothing
                    self._stop_process(self._workers.pop(current))
                try:
                    worker = self._workers[current] = self._start_process()
                except Exception as exc:
                    error = Error('pool %s cannot start a worker process: %s: %s'
                                  % (self._name, type(exc).__name__, exc))
                    error.__cause__ = exc
                    future.set_exception(error)
                    return
                if future.done():           # cancelled while the process started
                    return
            message = args[0]
            wire.send(worker.sock, message)
            # The worker loop keeps its last job's arguments while it idles:
            # let go of the (perhaps big) pieces now.
            message.clear()
            kind, data, buffers = wire.receive(worker.sock)
        except Cancelled:
            # cancel() already completed the future; the process is busy with it
            # (or is being stopped already: it died while idle).
            self._drop_worker(current, kill=True)
            return
        except (EOFError, OSError):
            assert worker is not None     # only sending and receiving raise these
            pid = worker.process.pid
            code = self._stop_process(self._workers.pop(current))
            future.set_exception(WorkerDied(
                'worker process %s of pool %s exited %s while running %s'
                % (pid, self._name, _exit_description(code),
                   wire.name_of(func))))
            return
        except GreenletExit as exc:
            future.set_exception(exc)
            self._drop_worker(current, kill=True)     # none if killed as it started
            raise
        self._deliver(future, func, kind, data, buffers)
        worker.tasks += 1
        if self._max_tasks is not None and worker.tasks >= self._max_tasks:
            self._stop_process(self._workers.pop(current))

    def _drop_worker(self, greenlet: Any, kill: bool = False) -> None:
        """Stop the process of worker *greenlet*, if it has one. *Switchpoint.*"""
        worker = self._workers.pop(greenlet, None)
        if worker is not None:
            self._stop_process(worker, kill)

    def _deliver(self, future: Future[Any], func: object, kind: int, data: memoryview,
                 buffers: list[bytearray]) -> None:
        """Complete *future* with the worker's answer."""
        try:
            value = wire.load(data, buffers)
        except Exception as exc:
            error = Error('pool %s cannot unpickle the %s of %s: %s: %s'
                          % (self._name, 'result' if kind == wire.RESULT else 'exception',
                             wire.name_of(func), type(exc).__name__, exc))
            error.__cause__ = exc
            future.set_exception(error)
            return
        if kind == wire.RESULT:
            future.set_result(value)
            return
        error, text = value
        error.__cause__ = RemoteTraceback(text)
        future.set_exception(error)

    # The processes.

    def _start_process(self) -> _Worker:
        """Start a worker process (in the spawner thread) and wait for it. *Switchpoint.*

        A cancel of the job waiting for it does not stop the start: the
        process becomes this greenlet's all the same. A greenlet killed while
        it waits leaves the process to be stopped once it has started.
        """
        started: Future[tuple[Any, int]] = Future()
        call_in_spawner(functools.partial(self._launch, started))
        while True:
            try:
                process, fd = started.result()
            except Cancelled:
                if started.cancelled():
                    raise
                continue
            except BaseException:
                started.add_done_callback(_stop_unclaimed, started)
                raise
            return _Worker(process, fd)

    def _launch(self, started: 'Future[tuple[Any, int]]') -> None:
        # Runs in the spawner thread.
        try:
            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                process = self._context.Process(  # type: ignore[attr-defined]
                    target=wire.main, args=(_PassFd(theirs.fileno()), self._setup,
                                            self._max_tasks),
                    name='%s-worker' % self._name, daemon=True)
                process.start()
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            # multiprocessing polls the children it knows of whenever it starts
            # one, from the spawner thread; this pool reaps its own.
            getattr(multiprocessing.process, '_children').discard(process)
            if monkey.is_object_patched('os', 'close'):
                # gevent's os.close() defers the close to the next pass of this
                # thread's loop, which may sleep for good: until it runs, the
                # worker's end of its sentinel pipe stays open here, and the
                # worker's exit would go unnoticed. A timer makes the loop pass.
                gevent.sleep(0.001)
            started.set_result((process, ours.detach()))
        except BaseException as exc:
            started.set_exception(exc)

    def _stop_process(self, worker: _Worker, kill: bool = False) -> int | None:
        """Close the worker's socket (it exits), wait for it; return its exit code.

        *Switchpoint.* A process that does not exit within a few seconds, or
        any process when *kill* is true, gets SIGKILL.
        """
        process = worker.process
        if kill:
            process.kill()
        worker.sock.close()
        sentinel = process.sentinel
        ready, _, _ = gevent.select.select([sentinel], [], [], _EXIT_TIMEOUT)
        if not ready:
            self._log(logging.WARNING, 'worker process %s did not exit; killing it', process.pid)
            process.kill()
            gevent.select.select([sentinel], [], [], _EXIT_TIMEOUT)
        for _ in range(_EXIT_CODE_POLLS):
            code = process.exitcode
            if code is not None:
                process.close()
                return code
            gevent.sleep(0.005)
        return None


def _pickle_setup(initializer: Callable[..., object], initargs: Iterable[Any]) -> bytes:
    try:
        return wire.dumps((initializer, tuple(initargs)), protocol=5)
    except Exception as exc:
        raise TypeError('initializer and initargs must be picklable, got %r, %r: %s: %s'
                        % (initializer, initargs, type(exc).__name__, exc)) from exc


@atexit.register
def _kill_workers_at_exit() -> None:
    # A pool that was not closed: its workers would run their current job to
    # its end before noticing that this process is gone.
    for pool in list(_live_pools):
        for worker in list(pool._workers.values()):
            try:
                worker.process.kill()
            except Exception:
                pass
