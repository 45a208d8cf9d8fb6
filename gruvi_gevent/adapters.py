"""Zope adapters that make foreign objects waitable (``IWaitable(obj)``).

Registered here: gevent's ``Greenlet`` (ready when it has finished),
``gevent.event.Event`` (ready when set), ``gevent.event.AsyncResult`` (ready
when it holds a value or an exception), ``gevent.subprocess.Popen`` (ready
when the child has exited and ``returncode`` is set) and
``concurrent.futures.Future`` (ready when done; it may complete in any thread).

Adapters live in :data:`registry`, a zope ``AdapterRegistry`` consulted through
``zope.interface``'s adapter hooks, so ``IWaitable(obj)`` works for every
registered type. A third party registers its own type the ordinary zope way::

    from gruvi_gevent.adapters import registry
    from gruvi_gevent.interfaces import IWaitable
    from zope.interface import implementedBy

    registry.register([implementedBy(MyThing)], IWaitable, '', MyThingWaitable)

The gevent objects call back in their hub, and belong to the thread of that hub.
"""

import concurrent.futures
from collections.abc import Callable
from typing import Any

import gevent.event
import gevent.subprocess
from gevent import Greenlet
from zope.interface import implementedBy, implementer, providedBy
from zope.interface.adapter import AdapterRegistry
from zope.interface.interface import adapter_hooks

from .interfaces import IWaitable
from .future import _Callback, _run_callbacks as run_callbacks

__all__ = ['registry', 'GeventWaitable', 'ConcurrentFutureWaitable']

registry = AdapterRegistry()


def _adapter_hook(interface: Any, obj: object) -> Any:
    factory = registry.lookup1(providedBy(obj), interface, '')
    return None if factory is None else factory(obj)


adapter_hooks.append(_adapter_hook)


class _Link:
    """One done callback of an adapted object; also its handle."""

    __slots__ = ('source',   # the object linked to: only its adapter may remove this
                 'func',     # the callback
                 'args',     # its positional arguments
                 'active')   # False once called or removed

    def __init__(self, source: object, func: Callable[..., object],
                 args: tuple[Any, ...]) -> None:
        self.source = source
        self.func = func
        self.args = args
        self.active = True

    def __call__(self, source: object = None) -> None:
        if not self.active:
            return
        callback = _Callback(self.func, self.args)
        # Spent: a link that stays in the object's list keeps nothing alive.
        self.deactivate()
        # Errors are handled as for a Future's callbacks: logged, and only a
        # KeyboardInterrupt-like BaseException is re-raised, after the call.
        run_callbacks(callback)

    def deactivate(self) -> None:
        """Never call the callback; let go of it and its arguments at once.

        The link itself may stay in a list of the adapted object's that cannot
        be taken back from (a done ``concurrent.futures.Future``, dask).
        """
        self.active = False
        self.func = _ignore
        self.args = ()


def _ignore(*args: object) -> None:
    """The callback of a link that was removed."""


class _Adapter:
    """What every adapter shares: the adapted object, its repr, a checked link."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __repr__(self) -> str:
        return '<%s for %r>' % (type(self).__name__, self.obj)

    @staticmethod
    def _new_link(source: object, callback: Callable[..., object],
                  args: tuple[Any, ...]) -> _Link:
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        return _Link(source, callback, args)


@implementer(IWaitable)
class GeventWaitable(_Adapter):
    """Adapts a gevent object with ``rawlink``/``unlink`` (callbacks run in its hub)."""

    def __init__(self, obj: Any, linkable: Any = None,
                 ready: Callable[[], bool] | None = None) -> None:
        super().__init__(obj)
        self._linkable = obj if linkable is None else linkable
        self._ready = ready or obj.ready

    def add_done_callback(self, callback: Callable[..., object], *args: Any) -> object | None:
        """Call ``callback(*args)`` once the object is ready (at once if it is)."""
        link = self._new_link(self._linkable, callback, args)
        if self._ready():
            link()
            return None
        self._linkable.rawlink(link)
        return link

    def remove_done_callback(self, handle: Any) -> None:
        """Remove a callback added by :meth:`add_done_callback`; None or twice is fine.

        A handle of another object is ignored.
        """
        if handle is None or handle.source is not self._linkable:
            return
        handle.deactivate()
        self._linkable.unlink(handle)


def _event_waitable(event: gevent.event.Event) -> GeventWaitable:
    return GeventWaitable(event, ready=event.is_set)


def _popen_waitable(popen: gevent.subprocess.Popen) -> GeventWaitable:
    return GeventWaitable(popen, linkable=popen.result,
                          ready=lambda: popen.returncode is not None)


@implementer(IWaitable)
class ConcurrentFutureWaitable(_Adapter):
    """Adapts a ``concurrent.futures.Future``; callbacks run in the completing thread.

    ``concurrent.futures`` has no way to remove a callback, so removal takes the
    callback out of the future's list under the future's own lock, but only
    while the future is not done: once it is, the completing thread walks that
    list outside the lock, and taking an entry out would make it skip the next
    one. A callback removed then is only deactivated.
    """

    obj: 'concurrent.futures.Future[Any]'

    def add_done_callback(self, callback: Callable[..., object], *args: Any) -> object | None:
        """Call ``callback(*args)`` once the future is done (at once if it is)."""
        link = self._new_link(self.obj, callback, args)
        future = self.obj
        with future._condition:
            if not future.done():
                # Private, and not in the standard library's type stubs.
                future._done_callbacks.append(link)  # type: ignore[attr-defined]
                return link
        link()
        return None

    def remove_done_callback(self, handle: Any) -> None:
        """Remove a callback added by :meth:`add_done_callback`; None or twice is fine.

        A handle of another object is ignored.
        """
        if handle is None or handle.source is not self.obj:
            return
        handle.deactivate()
        future: 'concurrent.futures.Future[Any]' = self.obj
        with future._condition:
            if future.done():
                return
            try:
                future._done_callbacks.remove(handle)  # type: ignore[attr-defined]
            except ValueError:
                pass


def _register(cls: type, factory: Callable[[Any], object]) -> None:
    registry.register([implementedBy(cls)], IWaitable, '', factory)


_register(Greenlet, GeventWaitable)
_register(gevent.event.Event, _event_waitable)
_register(gevent.event.AsyncResult, GeventWaitable)
_register(gevent.subprocess.Popen, _popen_waitable)
_register(concurrent.futures.Future, ConcurrentFutureWaitable)
