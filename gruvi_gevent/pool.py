"""PoolBase: what the fiber pool and the thread pool share.

Argument checking, names, ``map()``, the context manager and the counters that
``join()`` and ``close()`` wait on. The subclasses supply the workers: where
jobs run, how they are queued, and how a running job is (or is not) cancelled.
"""

import collections
import itertools
import logging
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from contextvars import copy_context
from time import monotonic
from types import TracebackType
from typing import Any, NamedTuple, ParamSpec, TypeVar

from zope.interface import implementer

from . import _exiting as exiting
from ._backpressure import JobBound
from .errors import Timeout
from ._job import EMPTY_CONTEXT, NO_KWARGS, Job
from .future import Future
from .interfaces import IPool
from ._logs import log
from ._wakeup import Waker, check_timeout, new_waker

__all__ = ['PoolBase', 'PoolStats', 'EMPTY_CONTEXT']

T = TypeVar('T')
P = ParamSpec('P')
_Pool = TypeVar('_Pool', bound='PoolBase')

_pool_numbers: 'collections.defaultdict[str, itertools.count[int]]' = \
    collections.defaultdict(itertools.count)


class PoolStats(NamedTuple):
    """A snapshot of a pool's numbers, returned by :meth:`PoolBase.stats`.

    The totals count jobs since the pool was created, by how their futures
    ended. ``_asdict()`` gives a dict ready for JSON.
    """

    workers: int     #: live workers
    idle: int        #: workers waiting for a job
    queued: int      #: jobs submitted and waiting for a worker
    running: int     #: jobs running now
    completed: int   #: jobs that returned a result
    failed: int      #: jobs that raised an exception
    cancelled: int   #: jobs cancelled before or while they ran


def _check_size(maxsize: int | None, minsize: int) -> None:
    if maxsize is not None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError('maxsize must be None or an int, got %r' % (maxsize,))
        if maxsize < 1:
            raise ValueError('maxsize must be None or >= 1, got %r' % (maxsize,))
    if isinstance(minsize, bool) or not isinstance(minsize, int):
        raise TypeError('minsize must be an int, got %r' % (minsize,))
    if minsize < 0:
        raise ValueError('minsize must be >= 0, got %r' % (minsize,))
    if maxsize is not None and minsize > maxsize:
        raise ValueError('minsize must be <= maxsize (%d), got %r' % (maxsize, minsize))


def _check_max_queued(max_queued: int | None, maxsize: int | None) -> None:
    if max_queued is None:
        return
    if isinstance(max_queued, bool) or not isinstance(max_queued, int):
        raise TypeError('max_queued must be None or an int, got %r' % (max_queued,))
    if max_queued < 0:
        raise ValueError('max_queued must be None or >= 0, got %r' % (max_queued,))
    if maxsize is None:
        raise ValueError('max_queued needs a maxsize: a pool without one starts a '
                         'worker for every job and never queues, got maxsize=None')


def _iterate(iterable: Iterable[T], position: int) -> Iterator[T]:
    """Return ``iter(iterable)``; a TypeError for a non-iterable names map()'s argument."""
    try:
        return iter(iterable)
    except TypeError:
        raise TypeError('iterables must all be iterable, got %s at position %d'
                        % (type(iterable).__name__, position)) from None


def _remaining(deadline: float | None) -> float | None:
    """Seconds left until *deadline* (never below 0), or None for no deadline."""
    return None if deadline is None else max(deadline - monotonic(), 0.0)


def _wait_for_next(future: Future[Any], deadline: float | None) -> None:
    """Wait until map()'s next *future* is done; raise Timeout if *deadline*
    passes first. *Switchpoint.*"""
    remaining = _remaining(deadline)
    if remaining == 0 and not future.done():
        raise Timeout('map() timed out')
    future.exception(remaining)


def _cancel_pending(futures: Iterable[Future[Any]]) -> None:
    """Cancel what map() submitted and nobody will collect any more."""
    for future in futures:
        if not future.done():
            future.cancel()


class _Wakers(list[Waker]):
    """The parked waiters of one condition, all woken when it may have changed.

    A waiter adds itself *before* it checks its condition, so a wake-up sent
    between the check and the park is not lost. A list, so that a worker's
    "is anyone waiting?" is a C-level truth test on its hot path.
    """

    __slots__ = ()

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Park the caller until ``predicate()`` is true, at most *timeout*
        seconds (None: no limit). Return whether it became true. *Switchpoint.*"""
        if predicate():
            return True
        waker = new_waker()
        self.append(waker)
        try:
            return waker.wait_for(predicate, timeout)
        finally:
            self.remove(waker)

    def wake_all(self) -> None:
        """Wake every parked waiter; each checks its condition again."""
        for waker in list(self):
            waker()

    def keep_only(self, keep: Callable[[Waker], bool]) -> None:
        """Forget the waiters for which ``keep(waker)`` is false (after a
        fork: those of threads that do not exist in the child)."""
        self[:] = [waker for waker in self if keep(waker)]


@implementer(IPool)
class PoolBase:
    """Base class for pools.

    A pool contains a set of workers that can execute function calls
    asynchronously.

    The *maxsize* argument specifies the maximum numbers of workers that will
    be created in the pool. If *maxsize* is None then the pool can grow
    without bound.

    Normally the pool starts with zero workers and grows up to *maxsize* on
    demand. The *minsize* parameter can be used to change this behavior an
    make sure that there will always be at least this many workers in the pool.

    The *name* parameter gives a name for this pool. The pool name will show
    up in log messages related to the pool. Without one, the pool gets a
    unique readable name such as ``FiberPool-3``.

    Bad arguments raise ``TypeError`` (wrong type) or ``ValueError`` (wrong
    value), naming the argument.

    Pools are context managers: ``with FiberPool(10) as pool:`` closes the
    pool on exit. ``len(pool)`` is the number of live workers.

    Workers above *minsize* that stay idle for :attr:`idle_timeout` seconds
    (30 by default) exit; more start again on demand.

    **Backpressure:** by default a pool queues every job it is given. With
    the keyword-only *max_queued* (an int >= 0; it needs a *maxsize*) at
    most that many jobs wait for a worker: the pool holds at most
    ``maxsize + max_queued`` jobs that are not done. A ``submit()`` that
    finds no room waits for it -- from a greenlet it parks only that
    greenlet, from a native thread it blocks only that thread -- first come,
    first served. It waits at most *queue_timeout* seconds (None: no limit)
    and then raises :class:`~gruvi_gevent.Timeout`; ``close()`` wakes it
    with ``RuntimeError``. ``map()`` then submits its calls as room appears.
    A job that waits for room in its own full pool may wait for ever, as in
    gevent's ``Pool``.

    **For subclasses:** PoolBase owns the arguments, submit()'s checks and
    backpressure, map(), join() and close(); a subclass owns its workers and
    queue. It provides ``__len__()`` (live workers), ``stats()``, and:

    - ``_enqueue(job)``: queue a job (see ``gruvi_gevent._job``), from
      any thread, raising ``RuntimeError`` through ``_check_submit()`` when
      ``_closing`` is set; ``_submit_many()`` may batch map()'s jobs.
    - ``_idle()``: whether no job is unfinished; join() parks on
      ``_join_wakers`` until it is, and the subclass calls
      ``_join_wakers.wake_all()`` whenever it may have become true (testing
      ``if self._join_wakers:`` first keeps that off the hot path when no
      one waits).
    - ``_begin_close()``: called once by close(), after ``_closing`` is set:
      make every worker exit once the queued jobs have run.
    - ``_no_workers()``: whether the pool is closed (by default: no live
      worker); close() parks on ``_close_wakers`` until it is, and the
      subclass calls ``_close_wakers.wake_all()`` when it may have become true
      (the last worker exited).
    - ``_in_own_job()``: whether the caller runs in one of the pool's
      workers, where join() and close() would deadlock.
    - ``_wait_in_own_job(future, timeout)`` (optional): what a worker does
      instead of parking on a pending job of its own pool.
    - ``_at_exit()`` (optional): what interpreter shutdown does to the pool;
      the subclass calls ``_register_for_exit()`` once its state is ready.
    """

    #: Seconds an idle worker above minsize waits for work before it exits.
    idle_timeout: float = 30.0

    # The class of the futures a bounded submit() makes (see _submit_admitted).
    _future_class: type[Future[Any]] = Future

    def __init__(self, maxsize: int | None = None, minsize: int = 0,
                 name: str | None = None, *, max_queued: int | None = None,
                 queue_timeout: float | None = None) -> None:
        _check_size(maxsize, minsize)
        _check_max_queued(max_queued, maxsize)
        queue_timeout = check_timeout(queue_timeout, 'queue_timeout')
        if name is None:
            kind = type(self).__name__
            name = '%s-%d' % (kind, next(_pool_numbers[kind]) + 1)
        elif not isinstance(name, str):
            raise TypeError('name must be None or a str, got %r' % (name,))
        self._maxsize = maxsize
        # maxsize as a number (sys.maxsize: no bound): one comparison on hot paths.
        self._limit = sys.maxsize if maxsize is None else maxsize
        self._minsize = minsize
        self._name = name
        self._closing = False
        self._join_wakers = _Wakers()    # parked in join(): woken when no job is unfinished
        self._close_wakers = _Wakers()   # parked in close(): woken when the last worker exits
        self._max_queued = max_queued
        self._queue_timeout = queue_timeout
        # The bound on unfinished jobs, or None: submit() checks this one attribute.
        self._bound = None if maxsize is None or max_queued is None else \
            JobBound(maxsize + max_queued, name)

    @property
    def maxsize(self) -> int | None:
        """The maximum size of this pool (None: no bound)."""
        return self._maxsize

    @property
    def minsize(self) -> int:
        """The minimum size of this pool."""
        return self._minsize

    @property
    def name(self) -> str:
        """The pool name."""
        return self._name

    @property
    def max_queued(self) -> int | None:
        """The most jobs that may wait for a worker (None: no bound)."""
        return self._max_queued

    def __repr__(self) -> str:
        return '<%s %r workers=%d maxsize=%s%s>' % (
            type(self).__name__, self._name, len(self), self._maxsize,
            ' closed' if self._closing else '')

    def __enter__(self: _Pool) -> _Pool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        log(level, '%s: ' + msg, self._name, *args, exc_info=exc_info)

    def _check_submit(self, func: object) -> None:
        if self._closing:
            if exiting.began():
                raise RuntimeError('cannot submit to pool %s after interpreter shutdown '
                                   'began' % self._name)
            raise RuntimeError('pool %s is closed' % self._name)
        if not callable(func):
            raise TypeError('func must be callable, got %r' % (func,))

    def submit(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run *func* asynchronously.

        The function is run in the pool which will run it asynchronously. The
        function is called with the positional arguments *args* and keyword
        arguments *kwargs* (*func* is positional-only, so any keyword, ``func``
        and ``self`` included, goes to it), in a copy of the caller's
        :mod:`contextvars` context (as ``asyncio.to_thread`` does; what it
        changes there stays in the copy). May be called from any native thread.

        **Re-entrancy:** a ``FiberPool`` job that waits on a job of its own
        pool that has not started runs it inline, in its own greenlet (as
        gevent's ``Pool.apply()`` does), so a full pool cannot deadlock on
        itself. A ``ThreadPool`` thread (a job, or a done callback) waiting on
        a pending job of its own full pool, when every thread of the pool is
        in such a wait, gets ``RuntimeError`` at once.

        The return value is a :class:`~gruvi_gevent.Future` that captures the
        state and the future result of the asynchronous function call.

        In a pool with *max_queued* this is a *switchpoint*: it waits while
        the pool is full (see the class docstring), and raises
        :class:`~gruvi_gevent.Timeout` after *queue_timeout*.

        Raises ``TypeError`` if *func* is not callable and ``RuntimeError`` if
        the pool is closed or interpreter shutdown has begun.
        """
        raise NotImplementedError

    def _submit_bounded(self, func: Callable[..., T], args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Future[T]:
        """submit() of a pool with *max_queued*: wait for room, then queue. *Switchpoint.*"""
        self._bound.enter(self._queue_timeout)     # type: ignore[union-attr]
        return self._submit_admitted(func, args, kwargs)

    def _submit_admitted(self, func: Callable[..., T], args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Future[T]:
        """Queue a job that holds a place; the place goes back when its future is done."""
        bound: JobBound = self._bound     # type: ignore[assignment]
        if self._closing:
            # Closed while the caller waited for the place.
            bound.release()
            raise RuntimeError('pool %s is closed' % self._name)
        future: Future[T] = self._future_class()
        future._result = self      # its owner, while pending: see _wait_in_own_job
        future._add(bound.release)
        try:
            self._enqueue((future, func, args, kwargs, copy_context() or EMPTY_CONTEXT))
        except BaseException:
            future.cancel()     # gives the place back
            raise
        return future

    def _enqueue(self, job: Job) -> None:
        """Queue *job*, ``(future, func, args, kwargs, context)``, to run in a worker.

        The job runs in a copy of *context*, a snapshot that jobs may share.
        """
        raise NotImplementedError

    def map(self, func: Callable[..., T], /, *iterables: Iterable[Any],
            timeout: float | None = None) -> Generator[T, None, None]:
        """Apply *func* to the elements of the sequences in *iterables*.

        *Switchpoint* (the returned generator waits for each result). All
        invocations of *func* are submitted to the pool at once -- in a pool
        with *max_queued*, as many as there is room for, and more each time a
        result is handed out. If multiple
        iterables are provided, then *func* must take this many arguments, and
        is applied with one element from each iterable. All iterables must
        yield the same number of elements, else ``ValueError`` is raised.

        An optional *timeout* (seconds, counted from this call) may be
        provided: when it passes the generator raises
        :class:`~gruvi_gevent.Timeout`. It covers waiting for room in a pool
        with *max_queued* too. Each call runs in a copy of the caller's
        :mod:`contextvars` context.

        This returns a generator yielding the results in input order. An
        exception from a call is re-raised at its place in the order. When the
        generator stops early (timeout, exception, or the consumer closing it)
        the calls that have not completed are cancelled.
        """
        self._check_submit(func)
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else monotonic() + timeout
        columns = [list(_iterate(iterable, position))
                   for position, iterable in enumerate(iterables)]
        if len({len(column) for column in columns}) > 1:
            raise ValueError('iterables must all have the same length, got lengths %s'
                             % ', '.join(str(len(column)) for column in columns))
        if self._bound is None:
            results = self._results(self._submit_many(func, zip(*columns)), deadline)
        else:
            results = self._fed_results(func, list(zip(*columns)), deadline)
        # Run it up to its first yield, inside the try: a generator closed (or
        # dropped) before it started would skip its finally clause and leave
        # the calls running.
        next(results)
        return results

    def _submit_many(self, func: Callable[..., T],
                     arg_tuples: Iterable[tuple[Any, ...]]) -> list[Future[T]]:
        submit = self.submit
        return [submit(func, *args) for args in arg_tuples]

    @staticmethod
    def _results(futures: list[Future[T]], deadline: float | None
                 ) -> Generator[T, None, None]:
        # Results are handed out in reverse-popped order so the generator
        # drops its reference to each future (and result) as it goes.
        futures.reverse()
        try:
            yield  # type: ignore[misc]  # map()'s priming step: nobody sees this one
            while futures:
                _wait_for_next(futures[-1], deadline)
                # No local keeps the result (nor its future) while the
                # consumer holds the generator between two items.
                yield futures.pop().result()
        finally:
            _cancel_pending(futures)

    def _fed_results(self, func: Callable[..., T], calls: list[tuple[Any, ...]],
                     deadline: float | None) -> Generator[T, None, None]:
        """map()'s generator for a pool with *max_queued*: it submits the
        calls as room appears, and yields their results in order."""
        bound: JobBound = self._bound     # type: ignore[assignment]
        calls.reverse()                 # popped from the end, in input order
        futures: collections.deque[Future[T]] = collections.deque()
        try:
            self._feed(func, calls, futures)
            yield  # type: ignore[misc]  # map()'s priming step: nobody sees this one
            while futures or calls:
                if not futures:
                    # None of ours is in the pool: wait in line for room.
                    bound.enter(_remaining(deadline), 'map()')
                    futures.append(self._submit_admitted(func, calls.pop(), NO_KWARGS))
                _wait_for_next(futures[0], deadline)
                self._feed(func, calls, futures)
                # As in _results: no local keeps what was yielded.
                yield futures.popleft().result()
        finally:
            _cancel_pending(futures)

    def _feed(self, func: Callable[..., T], calls: list[tuple[Any, ...]],
              futures: 'collections.deque[Future[T]]') -> None:
        """Submit as many of map()'s *calls* as there is room for now; never parks."""
        bound: JobBound = self._bound     # type: ignore[assignment]
        while calls and bound.try_enter():
            futures.append(self._submit_admitted(func, calls.pop(), NO_KWARGS))

    def join(self, timeout: float | None = None) -> bool:
        """Wait until all jobs in the pool have completed.

        *Switchpoint.* With a *timeout* (seconds) wait at most that long.
        Return True if the pool went idle, False if the timeout passed first
        (as gevent's ``Pool.join(timeout)`` does). New submissions are not blocked. This means that if you
        continue adding work via :meth:`submit` or :meth:`map` then this
        method might never finish. Called in one of the pool's own jobs it
        raises ``RuntimeError``: it would wait for that job itself.

        "Completed" means every job's future is done and the done callbacks
        that its worker runs have returned: a worker running callbacks is
        busy (a job submitted meanwhile makes the pool grow, if it may).
        """
        timeout = check_timeout(timeout)
        self._check_not_in_own_job('join')
        return self._join_wakers.wait_until(self._idle, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Close the pool and wait for all workers to exit.

        *Switchpoint.* New submissions will be blocked (``submit()`` and
        ``map()`` raise ``RuntimeError``). Queued and running jobs are
        finished; workers exit after that. This method returns True after all
        workers have exited. With a *timeout* (seconds) it waits at most that
        long and returns False if workers are still busy then: they are not
        abandoned, they finish their jobs and exit, and a later ``close()``
        or ``join()`` waits for them again. Called in one of the pool's own
        jobs it raises ``RuntimeError``: it would wait for that job itself.
        """
        timeout = check_timeout(timeout)
        self._check_not_in_own_job('close')
        if not self._closing:
            self._closing = True
            self._log(logging.DEBUG, 'closing')
            if self._bound is not None:
                self._bound.close()
            self._begin_close()
        if not self._close_wakers.wait_until(self._no_workers, timeout):
            return False
        self._log(logging.DEBUG, 'closed')
        return True

    def __len__(self) -> int:
        """Return the number of live workers."""
        raise NotImplementedError

    def stats(self) -> PoolStats:
        """Return a :class:`PoolStats` snapshot of the pool, for monitoring.

        Cheap enough to call on every request: it reads counters the pool
        keeps anyway, takes no lock and never switches. It may be called from
        any thread. Each figure is read as it is at that instant, without
        stopping the pool, so figures read together may be a job apart.
        Every pool of the library provides it.
        """
        raise NotImplementedError('%s does not keep stats' % type(self).__name__)

    def _register_for_exit(self) -> None:
        """Have :meth:`_at_exit` called at interpreter shutdown; a pool made
        once shutdown has begun is born closed. For a subclass's
        ``__init__``, once the pool's state is ready."""
        exiting.register(self)
        self._closing = exiting.began()

    def _check_not_in_own_job(self, method: str) -> None:
        if self._in_own_job():
            raise RuntimeError('%s() called in a job of pool %s would wait for that '
                               'job itself' % (method, self._name))

    def _in_own_job(self) -> bool:
        """Return whether the caller runs in one of this pool's workers."""
        raise NotImplementedError

    def _at_exit(self) -> None:
        """Called at interpreter shutdown (see :mod:`gruvi_gevent._exiting`).

        The default, as ``concurrent.futures`` does: close the pool, so that
        what was submitted runs to completion before the interpreter goes.
        """
        self.close()

    def _wait_in_own_job(self, future: Future[Any], timeout: float | None) -> bool:
        """Called before the caller parks on *future*, pending in this pool.

        Return True once the pool has waited (or run the job) itself; raise if
        waiting would deadlock. The default: False, the caller parks.
        """
        return False

    def _idle(self) -> bool:
        """Return whether no job is unfinished (what join() waits for)."""
        raise NotImplementedError

    def _no_workers(self) -> bool:
        """Return whether the closing pool is closed (what close() waits for)."""
        return len(self) == 0

    def _begin_close(self) -> None:
        """Make every worker exit once the queued jobs have run; called once."""
        raise NotImplementedError
