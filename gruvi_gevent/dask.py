"""DaskPool, and ``distributed.Future`` as a waitable: dask.distributed from greenlets.

Optional: install the ``dask`` extra (``pip install gruvi-gevent[dask]``).
Importing this module imports ``distributed`` (most of a second), which is
why the core package does not, and registers an ``IWaitable`` adapter for
``distributed.Future``, so ``wait()`` and ``as_completed()`` take dask's
futures as they are.

dask's own blocking calls (``Client()``, ``LocalCluster()``, ``result()``,
``gather()``) would freeze the hub: make the client through
:func:`~gruvi_gevent.blocking`, and let the pool fetch results. Its futures
are bridged to ours in dask's callback thread, and results are fetched in
batches (one ``gather()`` for every task that finished meanwhile) in an
IO-pool thread; the hub only hands the jobs over (``client.submit()`` does
not wait).

dask cannot run in a monkey-patched process: asyncio tracks the running
event loop per OS thread, and dask's event loop thread is a greenlet there,
sharing the main thread's. :class:`DaskPool` refuses to be made there.
"""

import collections
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import distributed
from gevent import monkey
from zope.interface import implementer

from .adapters import _Adapter, _register
from .blocking import get_io_pool
from .errors import Error
from .executorpool import EnginePool, _EngineFuture
from .interfaces import IWaitable
from .pool import PoolBase

__all__ = ['DaskPool', 'SchedulerLost', 'DaskFutureWaitable']

T = TypeVar('T')

#: dask's reason for the futures it cancels when the scheduler goes away.
_CONNECTION_LOST = 'scheduler-connection-lost'


class SchedulerLost(Error):
    """The client is not connected to the scheduler: the job's outcome is unknown."""


class _DaskJobFuture(_EngineFuture[T]):
    """Our future of a dask task: cancel() never waits for the scheduler."""

    __slots__ = ()

    def cancel(self) -> bool:
        """Cancel the job: ours at once; the task is released off the hub."""
        if not super(_EngineFuture, self).cancel():
            return False
        if self.engine is not None:
            self.cancel_engine()
        return True

    def cancel_engine(self) -> bool:
        # client.cancel() waits for the scheduler: never in the hub.
        assert self.engine is not None
        get_io_pool().submit(self.engine.cancel)
        return True


class DaskPool(EnginePool):
    """A pool whose jobs are tasks of a dask.distributed cluster.

    *client* is a connected ``distributed.Client``; *submit_kwargs* go to
    every ``client.submit()`` (``resources=``, ``retries=``, ...), with
    ``pure=False`` unless given: every submit is a new task, as with the
    other pools. *maxsize* bounds the tasks the cluster holds at once for
    this pool (None: no bound); *max_queued* and *queue_timeout* bound the
    jobs waiting here, as for any pool. ``close()`` waits for the jobs; the
    client stays yours.

    **Errors:** a task's exception reaches its future with dask's traceback;
    a task that killed its workers fails with dask's ``KilledWorker``. When
    the client loses the scheduler, every job it held fails with
    :class:`SchedulerLost`, and a submit while it is not connected fails the
    same way at once.

    **Cancellation:** ``cancel()`` of a job returns True unless it is done:
    our future is cancelled at once and the task released (dask stops it if
    it has not started).

    Raises ``RuntimeError`` in a monkey-patched process (see the module).
    """

    _future_class = _DaskJobFuture

    def __init__(self, client: distributed.Client, maxsize: int | None = None,
                 name: str | None = None, *, max_queued: int | None = None,
                 queue_timeout: float | None = None, **submit_kwargs: Any) -> None:
        if monkey.is_module_patched('threading'):
            raise RuntimeError(
                'DaskPool cannot work in a monkey-patched process: asyncio keeps its '
                'running event loop per OS thread, and under patch_all() the thread '
                "that runs dask's event loop is a greenlet of this thread, so dask's "
                'clusters never start and its calls return coroutines. Use DaskPool '
                'in an unpatched process, or ProcessPool here')
        if not isinstance(client, distributed.Client):
            raise TypeError('client must be a distributed.Client, got %r' % (client,))
        super().__init__(maxsize, name, max_queued=max_queued, queue_timeout=queue_timeout)
        self._client = client
        self._submit_kwargs = {'pure': False, **submit_kwargs}
        # (future, dask future) of tasks done and not yet settled; any thread appends
        self._done: collections.deque[tuple[_EngineFuture[Any], Any]] = collections.deque()
        self._fetching = False    # a batch fetch is under way (under self._lock)

    @property
    def client(self) -> distributed.Client:
        """The client that the jobs are submitted through."""
        return self._client

    def _engine_submit(self, func: Callable[..., T], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
        status = self._client.status
        if status != 'running':
            raise SchedulerLost('pool %s: the client is not connected to the scheduler '
                                '(status %r)' % (self._name, status))
        if kwargs:
            # The task's keyword arguments and submit()'s own must not mix.
            func = functools.partial(func, **kwargs)
        return self._client.submit(func, *args, **self._submit_kwargs)

    def _bridge(self, future: _EngineFuture[Any], task: Any) -> None:
        """Queue a finished task for the next batch. In dask's callback thread."""
        self._done.append((future, task))
        with self._lock:
            start = not self._fetching
            self._fetching = True
        if start:
            get_io_pool().submit(self._fetch)

    def _fetch(self) -> None:
        """Settle finished tasks, one ``gather()`` per batch. In an IO-pool thread."""
        while True:
            with self._lock:
                if not self._done:
                    self._fetching = False
                    return
            batch = []
            while self._done:
                batch.append(self._done.popleft())
            finished: list[tuple[_EngineFuture[Any], Any]] = []
            others: list[tuple[_EngineFuture[Any], Any]] = []
            for future, task in batch:
                ready = task.status == 'finished' and not future.done()
                (finished if ready else others).append((future, task))
            try:
                # Not for an empty list: gather() waits for the scheduler even
                # then, for as long as a lost one takes to give up on.
                values = self._client.gather([task for _, task in finished]) \
                    if finished else []
            except BaseException:
                others += finished      # find out task by task
            else:
                for (future, _), value in zip(finished, values):
                    _quietly(future.set_result, value)
                    self._finished(future, True)
            del finished
            for future, task in others:
                _quietly(self._settle, future, task)

    def _settle(self, future: _EngineFuture[Any], task: Any) -> None:
        try:
            if future.done():
                return
            if task.status == 'cancelled':
                reason = getattr(getattr(task._state, 'exception', None), 'reason', None)
                if reason == _CONNECTION_LOST:
                    future.set_exception(SchedulerLost(
                        'pool %s: the client lost the connection to the scheduler while '
                        'it held this task; its outcome is unknown' % self._name))
                else:
                    future.cancel()
                return
            try:
                value = task.result()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(value)
        finally:
            self._finished(future, True)

    close = PoolBase.close


def _quietly(settle: Callable[..., object], *args: Any) -> None:
    """Settle a job in the result fetcher, an IO-pool thread.

    A ``KeyboardInterrupt`` or ``SystemExit`` that a done callback raised
    (logged already) has nobody here to go to, and must not leave the other
    jobs unsettled, nor the fetcher marked busy for good.
    """
    try:
        settle(*args)
    except BaseException:
        pass


@implementer(IWaitable)
class DaskFutureWaitable(_Adapter):
    """Adapts a ``distributed.Future``: callbacks run in dask's callback thread."""

    def add_done_callback(self, callback: Callable[..., object], *args: Any) -> object | None:
        """Call ``callback(*args)`` once the task is done (at once if it is)."""
        link = self._new_link(self.obj, callback, args)
        if self.obj.done():
            link()
            return None
        # dask calls it even if the task finished since the check above.
        self.obj.add_done_callback(link)
        return link

    def remove_done_callback(self, handle: Any) -> None:
        """Remove a callback added by :meth:`add_done_callback`; None or twice is fine.

        dask cannot take a callback back: a removed one is deactivated, and
        lets go of the callback and its arguments. A handle of another future
        is ignored.
        """
        if handle is not None and handle.source is self.obj:
            handle.deactivate()


_register(distributed.Future, DaskFutureWaitable)
