"""The zope interfaces of gruvi_gevent: what it means to be waitable, a future, a pool.

Installed as ``gruvi_gevent.interfaces``. Objects that provide :class:`IWaitable`
(or that zope can adapt to it) can be passed to ``gruvi_gevent.wait()`` and
``gruvi_gevent.as_completed()``.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from zope.interface import Attribute, Interface

__all__ = ['IWaitable', 'IFuture', 'IPool']


class IWaitable(Interface):
    """An object that becomes ready once and can tell interested parties when.

    What "ready" means depends on the object: a future is ready when its
    result is set, an event when its flag is set, a fiber when it has
    terminated, a process when the child has exited.

    The rules, all checked by the conformance kit of ``gruvi_gevent.testing``:

    * every callback is called exactly once, with its own arguments, and
      never before the object is ready;
    * handles are private to the object that issued them: passing one to
      another object's :meth:`remove_done_callback` removes none of that
      object's callbacks (it is ignored, or refused with an exception);
    * adding a callback and becoming ready may race from different threads:
      a callback added meanwhile is called, at once or when the object
      becomes ready, never lost;
    * a callback that raises does not stop the others from being called
      (where its error goes is the object's choice: logged, or raised once
      every callback has run);
    * a removed callback is released at once, with its arguments, rather
      than kept until the object becomes ready.
    """

    def add_done_callback(callback: Callable[..., object], *args: Any) -> object:
        """Add a callback that gets called when the object becomes ready.

        The callback is called with the positional arguments *args* provided
        to this method, in the context of whoever makes the object ready.

        The return value is an opaque handle that can be used with
        :meth:`remove_done_callback` to remove the callback.

        If the object is already ready, then the callback is called
        immediately from this method and the return value is ``None``.

        Raises ``TypeError`` if *callback* is not callable.
        """

    def remove_done_callback(handle: object) -> None:
        """Remove a callback that was added by :meth:`add_done_callback`.

        It is not an error to remove a callback that was already removed,
        or to pass ``None`` (the handle of a callback that was called at once).
        """


class IFuture(IWaitable):
    """The state of an asynchronous function call.

    A future progresses from *pending* to *running* (once the pool has
    capacity to run the function) to *done* (once the function completes,
    raises an exception, or is cancelled).
    """

    def running() -> bool:
        """Return whether this future is running."""

    def cancelled() -> bool:
        """Return whether this future was successfully cancelled."""

    def done() -> bool:
        """Return whether this future is done."""

    def cancel() -> bool:
        """Cancel the execution of the async function, if possible.

        This method marks the future as done and sets the ``Cancelled``
        exception. A future that is not running can always be cancelled.
        However when a future is running, the ability to cancel it depends on
        the pool implementation: a fiber pool can cancel running fibers but a
        thread pool cannot.

        Return True if the future could be cancelled, False otherwise.
        """

    def result(timeout: float | None = None) -> Any:
        """Wait for the future to complete and return its result.

        *Switchpoint.* If the function returned normally, its return value is
        returned here. If the function raised an exception, the exception is
        re-raised here. Raises ``Timeout`` if *timeout* seconds pass first and
        ``Cancelled`` if the future was cancelled.
        """

    def exception(timeout: float | None = None) -> BaseException | None:
        """Wait for the async function to complete and return its exception.

        *Switchpoint.* If the function did not raise an exception this returns
        None. Raises ``Timeout`` if *timeout* seconds pass first.
        """


class IPool(Interface):
    """A pool contains a set of workers that execute function calls asynchronously."""

    maxsize = Attribute("The maximum size of this pool: the most workers it "
                        "will create, or None if it can grow without bound.")
    minsize = Attribute("The minimum size of this pool: the number of workers "
                        "it keeps alive even when idle.")
    name = Attribute("The pool name. It shows up in log messages related to "
                     "the pool.")

    def submit(func: Callable[..., Any], *args: Any, **kwargs: Any) -> IFuture:
        """Run *func* asynchronously.

        The function is run in the pool, called with the positional arguments
        *args* and keyword arguments *kwargs*. The return value is a future
        that captures the state and the future result of the call.

        Raises ``TypeError`` if *func* is not callable and ``RuntimeError``
        if the pool is closed.
        """

    def map(func: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None) -> Iterator[Any]:
        """Apply *func* to the elements of the sequences in *iterables*.

        *Switchpoint.* All invocations of *func* are run in the pool. If
        multiple iterables are provided, then *func* must take this many
        arguments, and is applied with one element from each iterable. All
        iterables must yield the same number of elements (``ValueError``
        otherwise). An optional *timeout* may be provided.

        This returns a generator yielding the results in input order.
        """

    def join() -> None:
        """Wait until all jobs in the pool have completed.

        *Switchpoint.* New submissions are not blocked: if work keeps being
        added, this method might never finish.
        """

    def close() -> None:
        """Close the pool and wait for all workers to exit.

        *Switchpoint.* New submissions are refused. Workers exit once the
        queued and running jobs are finished; this method returns after all
        workers have exited.
        """
