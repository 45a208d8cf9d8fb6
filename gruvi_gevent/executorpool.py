"""ExecutorPool: any ``concurrent.futures.Executor`` behind the pool API.

The engine (the standard library's executors, loky, dask's
``client.get_executor()``, ...) runs the jobs; this module hands them over
and bridges each engine future to one of ours, whose waiters are woken
without polling and without blocking the hub. Jobs are handed to the engine
in the hub thread that created the pool (submit() from another thread asks
that hub to do it), so that an engine whose locks monkey patching turned
into greenlet locks is only ever entered from that one thread. *maxsize*
bounds how many jobs the engine holds at once; the rest wait here, where
cancelling them is certain.
"""

import collections
import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, Union

import gevent
from gevent import monkey
from gevent._hub_local import get_hub_if_exists
from gevent.hub import get_hub
from greenlet import getcurrent

from .blocking import blocking
from .future import _CANCELLED, _DONE, _FAILED, NOTHING_TO_INTERRUPT, Future
from .pool import PoolBase, PoolStats
from ._job import EMPTY_CONTEXT, Job
from ._wakeup import allocate_lock, get_ident, hub_channel, run_in_hub

__all__ = ['ExecutorPool', 'EnginePool']

T = TypeVar('T')
P = ParamSpec('P')

Executor = concurrent.futures.Executor
ExecutorOrFactory = Union[Executor, Callable[[], Executor]]


class _EngineFuture(Future[T]):
    """Our future of a job handed to an engine: cancel() asks the engine."""

    __slots__ = ('engine',)   # the engine's future once the job is handed over, else None

    def __init__(self) -> None:
        super().__init__()
        self.engine: 'concurrent.futures.Future[T] | None' = None

    def cancel(self) -> bool:
        """Cancel the job: certain while it waits in the pool, up to the engine after.

        Return True if it was cancelled: ``cancel()`` of the engine's future
        decides once the job is handed over (the standard library's executors
        cannot stop a job that has started).
        """
        engine = self.engine
        if engine is None:
            return super().cancel()
        if not self.cancel_engine():
            return False
        # The engine's done callback may have cancelled this one already.
        super().cancel()
        return True

    def cancel_engine(self) -> bool:
        """Ask the engine to cancel the job; return its answer."""
        assert self.engine is not None
        return bool(self.engine.cancel())


class EnginePool(PoolBase):
    """What the pools over foreign engines share: hand-over, bounds, counting.

    Subclasses say how a job is handed to the engine (:meth:`_engine_submit`,
    returning the engine's future) and how its outcome comes back
    (:meth:`_link`; by default the engine future's ``add_done_callback``
    calls :meth:`_bridge`), and call :meth:`_finished` once per job.
    """

    #: The class of the futures that submit() returns.
    _future_class = _EngineFuture

    def __init__(self, maxsize: int | None = None, name: str | None = None, *,
                 max_queued: int | None = None, queue_timeout: float | None = None) -> None:
        super().__init__(maxsize, 0, name, max_queued=max_queued, queue_timeout=queue_timeout)
        hub = get_hub()
        self._hub = hub
        self._ident = hub.thread_ident
        hub_channel(hub)    # made here: submit() and the engine's threads call in
        self._lock = allocate_lock()   # guards the counters below
        self._inflight = 0        # jobs the engine holds
        self._unfinished = 0      # jobs submitted and not yet completed
        self._outcomes = [0] * (_CANCELLED + 1)   # completed jobs by future state
        # (future, func, args, kwargs) not yet handed over; any thread appends
        self._queue: collections.deque[tuple[_EngineFuture[Any], Callable[..., Any],
                                             tuple[Any, ...], dict[str, Any]]] = \
            collections.deque()

    def __len__(self) -> int:
        return self._inflight

    def submit(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._closing or not callable(func):
            self._check_submit(func)
        if self._bound is not None:
            return self._submit_bounded(func, args, kwargs)
        future: _EngineFuture[T] = self._future_class()
        self._enqueue((future, func, args, kwargs, EMPTY_CONTEXT))
        return future

    def _enqueue(self, job: Job) -> None:
        """Queue *job* for the engine; from any thread. The engine runs it in
        a context of its own: the job's is not used."""
        future, func, args, kwargs, _ = job
        assert isinstance(future, _EngineFuture)     # made by submit() as _future_class
        with self._lock:
            self._unfinished += 1
        self._queue.append((future, func, args, kwargs))
        if get_ident() == self._ident:
            self._hand_over()
        else:
            run_in_hub(self._hub, self._hand_over)

    submit.__doc__ = PoolBase.submit.__doc__

    def _hand_over(self) -> None:
        """Hand queued jobs to the engine while it has room. In the pool's hub thread."""
        queue = self._queue
        while queue and self._inflight < self._limit:
            future, func, args, kwargs = queue.popleft()
            if not future._set_running(NOTHING_TO_INTERRUPT):       # cancelled while it waited
                self._finished(future, False)
                continue
            with self._lock:
                self._inflight += 1
            try:
                engine = self._engine_submit(func, args, kwargs)
            except BaseException as exc:
                try:
                    future.set_exception(exc)
                finally:
                    self._finished(future, True)    # whatever its done callbacks raise
                continue
            future.engine = engine
            if future.cancelled():
                future.cancel_engine()
            self._link(future, engine)

    def _engine_submit(self, func: Callable[..., T], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _link(self, future: _EngineFuture[Any], engine: Any) -> None:
        engine.add_done_callback(functools.partial(self._bridge, future))

    def _bridge(self, future: _EngineFuture[Any], engine: Any) -> None:
        raise NotImplementedError

    def _finished(self, future: Future[Any], handed_over: bool) -> None:
        """Count the job of *future*, settled by now, as completed; call once
        per job, from any thread."""
        with self._lock:
            if handed_over:
                self._inflight -= 1
            self._unfinished -= 1
            idle = not self._unfinished
            self._outcomes[future._state] += 1
        if self._queue and handed_over:
            run_in_hub(self._hub, self._hand_over)
        if idle:
            self._join_wakers.wake_all()
            self._close_wakers.wake_all()

    def stats(self) -> PoolStats:
        """Return a :class:`~gruvi_gevent.PoolStats` snapshot of the pool, for monitoring.

        The engine's own workers are not the pool's to count: ``workers`` and
        ``running`` are the jobs the engine holds (some may wait inside it),
        ``idle`` is 0 and ``queued`` the jobs waiting here for the engine to
        have room. Takes no lock and never switches; any thread.
        """
        inflight = self._inflight
        outcomes = self._outcomes
        return PoolStats(inflight, 0, len(self._queue), inflight,
                         outcomes[_DONE], outcomes[_FAILED], outcomes[_CANCELLED])

    def _begin_close(self) -> None:
        pass     # queued jobs are still handed over and run

    def _idle(self) -> bool:
        return not self._unfinished

    _no_workers = _idle

    def _in_own_job(self) -> bool:
        return False


class ExecutorPool(EnginePool):
    """A pool whose jobs run in a ``concurrent.futures.Executor``.

    *executor_or_factory* is an executor, or a function that returns one;
    given a function, the pool makes its executor on first use, and replaces
    it with a new one when it breaks (``concurrent.futures.BrokenExecutor``,
    e.g. a process pool whose worker was killed): the jobs that the broken
    executor held fail with its error, the next submit works. *maxsize*
    bounds the jobs handed to the executor at once (None: no bound);
    ``len(pool)`` is how many it holds now. *max_queued* and
    *queue_timeout* bound the jobs waiting here, as for any pool.

    **Cancellation:** a job still waiting in the pool can always be
    cancelled; once handed over, ``cancel()`` asks the executor and returns
    its answer (True only if it could stop the job).

    :meth:`close` waits for the jobs without blocking the hub, then shuts the
    executor down off the hub (in an IO-pool thread; under monkey patching,
    where the standard executors' threads are greenlets, in a greenlet).
    """

    def __init__(self, executor_or_factory: ExecutorOrFactory, maxsize: int | None = None,
                 name: str | None = None, *, max_queued: int | None = None,
                 queue_timeout: float | None = None) -> None:
        if isinstance(executor_or_factory, Executor):
            executor, factory = executor_or_factory, None
        elif callable(executor_or_factory):
            executor, factory = None, executor_or_factory
        else:
            raise TypeError('executor_or_factory must be a concurrent.futures.Executor or a '
                            'function returning one, got %r' % (executor_or_factory,))
        super().__init__(maxsize, name, max_queued=max_queued, queue_timeout=queue_timeout)
        self._executor: Executor | None = executor
        self._factory = factory
        self._broken = False      # the executor reported BrokenExecutor: replace it

    def _engine_submit(self, func: Callable[..., T], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> 'concurrent.futures.Future[T]':
        if self._executor is None or (self._broken and self._factory is not None):
            self._replace_executor()
        assert self._executor is not None
        try:
            return self._executor.submit(func, *args, **kwargs)
        except concurrent.futures.BrokenExecutor:
            if self._factory is None:
                raise
            self._replace_executor()
            return self._executor.submit(func, *args, **kwargs)

    def _replace_executor(self) -> None:
        assert self._factory is not None
        old = self._executor
        if old is not None:
            self._log(logging.INFO, 'replacing the broken executor %r', old)
            old.shutdown(wait=False)
        executor = self._factory()
        if not isinstance(executor, Executor):
            raise TypeError('the executor factory of pool %s must return a '
                            'concurrent.futures.Executor, got %r' % (self._name, executor))
        self._executor = executor
        self._broken = False

    def _bridge(self, future: _EngineFuture[Any], engine: 'concurrent.futures.Future[Any]'
                ) -> None:
        """Copy the engine's outcome to our future. In whatever thread completed it."""
        try:
            if engine.cancelled():
                Future.cancel(future)   # ours only: the engine's is cancelled already
            else:
                exc = engine.exception()
                if exc is None:
                    future.set_result(engine.result())
                else:
                    if isinstance(exc, concurrent.futures.BrokenExecutor):
                        self._broken = True
                    future.set_exception(exc)
        finally:
            self._finished(future, True)    # whatever its done callbacks raise

    def close(self, timeout: float | None = None) -> bool:
        if not super().close(timeout):
            return False
        # Once, by the first close() to see the pool closed.
        executor, self._executor = self._executor, None
        if executor is not None:
            _shutdown(executor)
        return True

    close.__doc__ = PoolBase.close.__doc__


def _shutdown(executor: Executor) -> None:
    """``executor.shutdown(wait=True)``, off the hub. *Switchpoint.*"""
    hub = get_hub_if_exists()
    if hub is None or getcurrent() is hub:
        executor.shutdown(wait=True)
    elif monkey.is_module_patched('threading'):
        # The executor's threads are greenlets and its locks greenlet locks:
        # its waits are cooperative in a greenlet, and must stay in this thread.
        gevent.spawn(executor.shutdown, True).get()
    else:
        blocking(executor.shutdown, True)
