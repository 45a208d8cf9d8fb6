"""wait() and as_completed(): waiting for many waitables at once.

A waitable is anything with ``add_done_callback(callback, *args)`` and
``remove_done_callback(handle)``: declared with ``@implementer(IWaitable)``,
undeclared (as Gruvi accepted them), or adaptable by zope (``IWaitable(obj)``,
see :mod:`gruvi_gevent.adapters`). Both functions register one callback per
entry, collect the entries in the order they become ready, and remove every
callback they registered when they finish, however they finish. Both are O(n).
"""

import collections
from collections.abc import Collection, Generator
from time import monotonic
from typing import Any, TypeVar

from .errors import Timeout
from .future import Future
from .interfaces import IWaitable
from ._wakeup import Waker, check_timeout, new_waker

__all__ = ['wait', 'as_completed']

T = TypeVar('T')


def _as_waitable(obj: object) -> Any:
    """Return the object to register callbacks with for *obj*, or raise TypeError."""
    if type(obj) is Future:
        return obj
    if callable(getattr(obj, 'add_done_callback', None)) and \
            callable(getattr(obj, 'remove_done_callback', None)):
        return obj
    waitable = IWaitable(obj, None)
    if waitable is None:
        raise TypeError('objects must hold waitables (add_done_callback and '
                        'remove_done_callback, or adaptable to IWaitable); '
                        'got an object of type %s' % type(obj).__name__)
    return waitable


def _check_args(objects: Collection[T], count: int | None, timeout: float | None
                ) -> tuple[list[T], list[Any], int, float | None]:
    """Validate the arguments of wait() and as_completed(); return them normalised."""
    if isinstance(objects, (str, bytes)) or not hasattr(objects, '__len__') \
            or not hasattr(objects, '__iter__'):
        raise TypeError('objects must be a sequence or collection of waitables, '
                        'got %s' % type(objects).__name__)
    objects = list(objects)
    if count is None:
        count = len(objects)
    elif isinstance(count, bool) or not isinstance(count, int):
        raise TypeError('count must be None or an int, got %r' % (count,))
    elif not 0 <= count <= len(objects):
        raise ValueError('count must be between 0 and len(objects) (%d), got %d'
                         % (len(objects), count))
    timeout = check_timeout(timeout)
    waitables = [_as_waitable(obj) for obj in objects]
    return objects, waitables, count, timeout


class _Readiness:
    """The callbacks of one wait: collects indices of entries as they become ready.

    Callbacks may arrive from any thread; ``ready`` is a deque (atomic appends)
    and the waiter is only woken once ``wanted`` entries are ready. ``wanted``
    is set before the waiter re-checks ``ready`` and parks, so no wake-up is lost.
    """

    __slots__ = ('waitables',  # the objects or their adapters, in input order
                 'handles',    # what add_done_callback returned for each
                 'ready',      # indices of ready entries, in the order they became ready
                 'waker',      # parks the waiting greenlet or thread; made on first park
                 'wanted')     # wake the waiter when len(ready) reaches this; 0 if not parked

    def __init__(self, waitables: list[Any]) -> None:
        self.waitables = waitables
        self.handles: list[Any] = []
        self.ready: collections.deque[int] = collections.deque()
        self.waker: Waker | None = None
        self.wanted = 0

    def register(self) -> None:
        append = self.handles.append
        on_ready = self._on_ready
        for index, waitable in enumerate(self.waitables):
            append(waitable.add_done_callback(on_ready, index))

    def _on_ready(self, index: int) -> None:
        ready = self.ready
        ready.append(index)
        if 0 < self.wanted <= len(ready):
            self.waker()  # type: ignore[misc]  # made before wanted is set

    def park(self, wanted: int, deadline: float | None) -> bool:
        """Wait until *wanted* entries are ready; return False if *deadline* passes first."""
        ready = self.ready
        if len(ready) >= wanted:
            return True
        if self.waker is None:
            # Made only now: waiting on objects that are all ready works
            # anywhere, even in a hub callback where parking is impossible.
            self.waker = new_waker()
        self.wanted = wanted
        try:
            return self.waker.wait_for(lambda: len(ready) >= wanted,
                                       None if deadline is None else deadline - monotonic())
        finally:
            self.wanted = 0

    def unregister(self) -> None:
        """Remove every callback; if some removals raise, the first error is
        raised once all the others are done."""
        error: BaseException | None = None
        for waitable, handle in zip(self.waitables, self.handles):
            if handle is not None:
                try:
                    waitable.remove_done_callback(handle)
                except BaseException as exc:
                    if error is None:
                        error = exc
        self.handles = []
        self.waitables = []
        if error is not None:
            try:
                raise error
            finally:
                del error


def wait(objects: Collection[T], count: int | None = None,
         timeout: float | None = None) -> tuple[list[T], list[T]]:
    """Wait for one or more waitable objects.

    *Switchpoint.* This method waits until *count* elements from the sequence
    of waitable objects *objects* have become ready. If *count* is None (the
    default), then wait for all objects to become ready.

    What "ready" means depends on the object type. A waitable object is an
    object that implements the ``add_done_callback()`` and
    ``remove_done_callback()`` methods, or that zope can adapt to
    ``IWaitable``. This includes:

    * ``Future`` - a future is ready when its result is set.
    * ``gevent.event.Event`` - an event is ready when its internal flag is set.
    * ``gevent.event.AsyncResult`` - ready when it holds a value or an exception.
    * ``gevent.Greenlet`` (a fiber) - ready when it has terminated.
    * ``gevent.subprocess.Popen`` (a process) - ready when the child has exited.
    * ``concurrent.futures.Future`` - ready when it is done.

    Return a tuple ``(done, pending)``: *done* lists the objects in the order
    they became ready, *pending* the rest in input order. The same object
    passed several times counts as several entries. If *timeout* passes first,
    return what is ready so far (nothing is raised).

    Raises ``TypeError`` for an object that is not waitable and ``ValueError``
    for a *count* below 0 or above ``len(objects)``, before waiting starts.
    """
    objects, waitables, count, timeout = _check_args(objects, count, timeout)
    if count == 0:
        return [], objects
    deadline = None if timeout is None else monotonic() + timeout
    readiness = _Readiness(waitables)
    try:
        readiness.register()
        readiness.park(count, deadline)
    finally:
        readiness.unregister()
    order = list(readiness.ready)[:count]
    chosen = set(order)
    done = [objects[index] for index in order]
    pending = [obj for index, obj in enumerate(objects) if index not in chosen]
    return done, pending


def as_completed(objects: Collection[T], count: int | None = None,
                 timeout: float | None = None) -> Generator[T, None, None]:
    """Wait for one or more waitable objects, yielding them as they become ready.

    *Switchpoint.* This is the iterator/generator version of :func:`wait`: it
    yields each object (the object passed in, never an adapter) as it becomes
    ready, up to *count* of them. If *timeout* passes first it raises
    :class:`Timeout`. The consumer may stop early; closing the generator
    removes every callback it registered.

    The arguments are checked at the call, before anything is registered.
    """
    objects, waitables, count, timeout = _check_args(objects, count, timeout)
    return _as_completed(objects, waitables, count, timeout)


def _take(items: list[Any], index: int) -> Any:
    """Return ``items[index]`` and put None in its place."""
    item = items[index]
    items[index] = None
    return item


def _as_completed(objects: list[T], waitables: list[Any], count: int,
                  timeout: float | None) -> Generator[T, None, None]:
    if count == 0:
        return
    deadline = None if timeout is None else monotonic() + timeout
    readiness = _Readiness(waitables)
    try:
        readiness.register()
        ready = readiness.ready
        handles = readiness.handles
        yielded = 0
        while True:
            while ready:
                # Dropped once yielded: the generator keeps only what is pending.
                index = ready.popleft()
                handle = handles[index]
                if handle is not None:
                    handles[index] = None
                    waitables[index].remove_done_callback(handle)
                waitables[index] = None
                yield _take(objects, index)
                yielded += 1
                if yielded == count:
                    return
            if not readiness.park(1, deadline):
                # park() only gives up with a deadline, so timeout is a number.
                raise Timeout('%d of %d objects ready after %.3g seconds'
                              % (yielded, count, timeout))  # type: ignore[str-format]
    finally:
        readiness.unregister()
