"""PoolBase: what the fiber pool and the thread pool share.

Argument checking, names, ``map()``, the context manager and the counters that
``join()`` and ``close()`` wait on. The subclasses supply the workers: where
jobs run, how they are queued, and how a running job is (or is not) cancelled.
"""

import collections
import itertools
from collections.abc import Callable, Generator, Iterable, Iterator
from time import monotonic
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from zope.interface import implementer

from .errors import Timeout
from .future import Future
from .interfaces import IPool
from .logs import log
from .wakeup import Waker, check_timeout, new_waker

__all__ = ['PoolBase']

T = TypeVar('T')
P = ParamSpec('P')
_Pool = TypeVar('_Pool', bound='PoolBase')

_pool_numbers: 'collections.defaultdict[str, itertools.count[int]]' = \
    collections.defaultdict(itertools.count)


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


def _iterate(iterable: Iterable[T], position: int) -> Iterator[T]:
    """Return ``iter(iterable)``; a TypeError for a non-iterable names map()'s argument."""
    try:
        return iter(iterable)
    except TypeError:
        raise TypeError('iterables must all be iterable, got %s at position %d'
                        % (type(iterable).__name__, position)) from None


class _Wakers:
    """A list of parked waiters, all woken when some condition may have changed.

    A waiter adds itself *before* it checks its condition, so a wake-up sent
    between the check and the park is not lost.
    """

    __slots__ = ('wakers',)

    def __init__(self) -> None:
        self.wakers: list[Waker] = []

    def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Park the caller until ``predicate()`` is true. *Switchpoint.*"""
        if predicate():
            return
        waker = new_waker()
        self.wakers.append(waker)
        try:
            while not predicate():
                waker.wait()
        finally:
            self.wakers.remove(waker)

    def wake_all(self) -> None:
        for waker in list(self.wakers):
            waker()


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
    """

    #: Seconds an idle worker above minsize waits for work before it exits.
    idle_timeout: float = 30.0

    def __init__(self, maxsize: int | None = None, minsize: int = 0,
                 name: str | None = None) -> None:
        _check_size(maxsize, minsize)
        if name is None:
            kind = type(self).__name__
            name = '%s-%d' % (kind, next(_pool_numbers[kind]) + 1)
        elif not isinstance(name, str):
            raise TypeError('name must be None or a str, got %r' % (name,))
        self._maxsize = maxsize
        self._minsize = minsize
        self._name = name
        self._closing = False
        self._join_wakers = _Wakers()    # parked in join(): woken when no job is unfinished
        self._close_wakers = _Wakers()   # parked in close(): woken when the last worker exits

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
            raise RuntimeError('pool %s is closed' % self._name)
        if not callable(func):
            raise TypeError('func must be callable, got %r' % (func,))

    def submit(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run *func* asynchronously.

        The function is run in the pool which will run it asynchronously. The
        function is called with the positional arguments *args* and keyword
        arguments *kwargs*. May be called from any native thread.

        The return value is a :class:`~gruvi_gevent.Future` that captures the
        state and the future result of the asynchronous function call.

        Raises ``TypeError`` if *func* is not callable and ``RuntimeError`` if
        the pool is closed.
        """
        raise NotImplementedError

    def map(self, func: Callable[..., T], *iterables: Iterable[Any],
            timeout: float | None = None) -> Generator[T, None, None]:
        """Apply *func* to the elements of the sequences in *iterables*.

        *Switchpoint* (the returned generator waits for each result). All
        invocations of *func* are submitted to the pool at once. If multiple
        iterables are provided, then *func* must take this many arguments, and
        is applied with one element from each iterable. All iterables must
        yield the same number of elements, else ``ValueError`` is raised.

        An optional *timeout* (seconds, counted from this call) may be
        provided: when it passes the generator raises
        :class:`~gruvi_gevent.Timeout`.

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
        futures = self._submit_many(func, zip(*columns))
        results = self._results(futures, deadline)
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
                future = futures[-1]
                if deadline is None:
                    result = future.result()
                else:
                    remaining = deadline - monotonic()
                    if not future.done() and remaining <= 0:
                        raise Timeout('map() timed out')
                    result = future.result(max(remaining, 0))
                futures.pop()
                yield result
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()

    def join(self) -> None:
        """Wait until all jobs in the pool have completed.

        *Switchpoint.* New submissions are not blocked. This means that if you
        continue adding work via :meth:`submit` or :meth:`map` then this
        method might never finish. Called in one of the pool's own jobs it
        raises ``RuntimeError``: it would wait for that job itself.

        "Completed" means every job's future is done. In a ``ThreadPool`` the
        done callbacks of the last jobs may still be running in their pool
        threads when this returns (a worker settles its books first and runs
        the callbacks last, which keeps the hot path short).
        """
        self._check_not_in_own_job('join')
        self._join_wakers.wait_until(self._idle)

    def close(self) -> None:
        """Close the pool and wait for all workers to exit.

        *Switchpoint.* New submissions will be blocked (``submit()`` and
        ``map()`` raise ``RuntimeError``). Queued and running jobs are
        finished; workers exit after that. This method returns after all
        workers have exited. A second call returns at once. Called in one of
        the pool's own jobs it raises ``RuntimeError``: it would wait for that
        job itself.
        """
        if self._closing:
            return
        self._check_not_in_own_job('close')
        self._closing = True
        self._log(10, 'closing')
        self._begin_close()
        self._close_wakers.wait_until(self._no_workers)
        self._log(10, 'closed')

    def __len__(self) -> int:
        """Return the number of live workers."""
        raise NotImplementedError

    def _check_not_in_own_job(self, method: str) -> None:
        if self._in_own_job():
            raise RuntimeError('%s() called in a job of pool %s would wait for that '
                               'job itself' % (method, self._name))

    def _in_own_job(self) -> bool:
        """Return whether the caller runs in one of this pool's workers."""
        raise NotImplementedError

    def _idle(self) -> bool:
        raise NotImplementedError

    def _no_workers(self) -> bool:
        return len(self) == 0

    def _begin_close(self) -> None:
        raise NotImplementedError
