"""A correct thread-safe waitable of the tests' own, and variants broken one way each.

``Latch`` is what a third party would write: it becomes ready once opened,
and every method may be called from any thread. Each subclass breaks one rule
of the IWaitable contract, so that the tests can show the conformance kit
catching it. These tests run without monkey patching: ``threading.Lock`` is
a real OS lock here.

``UndeclaredWaitable`` is the kit's RecordingWaitable without the
declaration: it has both methods but does not say it provides IWaitable
(duck typing, which ``wait()`` accepts).
"""

import threading

from zope.interface import classImplementsOnly, implementer

from gruvi_gevent.interfaces import IWaitable
from gruvi_gevent.testing import RecordingWaitable
from gruvi_gevent._wakeup import get_ident


class UndeclaredWaitable(RecordingWaitable):
    """A RecordingWaitable that does not declare IWaitable."""


# zope would find IWaitable through the base class; cut the declaration off.
classImplementsOnly(UndeclaredWaitable)


@implementer(IWaitable)
class Latch:
    """Ready once opened; add, remove and open are safe from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open = False
        self._callbacks = {}        # handle -> (callback, args), until called or removed

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, 'open' if self._open else 'closed')

    def add_done_callback(self, callback, *args):
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        with self._lock:
            if not self._open:
                return self._register(callback, args)
        callback(*args)
        return None

    def _register(self, callback, args):
        handle = object()
        self._callbacks[handle] = (callback, args)
        return handle

    def remove_done_callback(self, handle):
        with self._lock:
            self._callbacks.pop(handle, None)

    def open(self):
        """Make the latch ready; call the callbacks, then raise the first error of one."""
        with self._lock:
            if self._open:
                return
            self._open = True
            callbacks, self._callbacks = self._callbacks, {}
        self._call(callbacks.values())

    def _call(self, callbacks):
        errors = []
        for callback, args in callbacks:
            try:
                callback(*args)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def open_latch(latch):
    latch.open()


# The four that the kit used to miss.

class CounterHandles(Latch):
    """Handles count per object (0, 1, 2, ...): another latch's handle removes ours."""

    def _register(self, callback, args):
        handle = self._next = getattr(self, '_next', -1) + 1
        self._callbacks[handle] = (callback, args)
        return handle


class NoLock(Latch):
    """No lock: a callback added while another thread opens the latch can be lost."""

    def add_done_callback(self, callback, *args):
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        if self._open:
            callback(*args)
            return None
        return self._register(callback, args)

    def open(self):
        if self._open:
            return
        self._open = True
        callbacks, self._callbacks = self._callbacks, {}
        self._call(callbacks.values())


class RaisingStopsOthers(Latch):
    """A callback that raises stops the ones after it."""

    def _call(self, callbacks):
        for callback, args in callbacks:
            callback(*args)


class KeepsRemoved(Latch):
    """Removal only marks the callback; it stays referenced until the latch opens."""

    def remove_done_callback(self, handle):
        with self._lock:
            if handle in self._callbacks:
                self._removed = getattr(self, '_removed', set()) | {handle}

    def open(self):
        removed = getattr(self, '_removed', set())
        with self._lock:
            for handle in removed:
                self._callbacks.pop(handle, None)
        super().open()


class CallsBeforeReady(Latch):
    """Calls each callback as it is added, ready or not, and still hands out a handle."""

    def _register(self, callback, args):
        callback(*args)
        return object()


class LosesWakeUpFromThread(Latch):
    """Opened in a foreign thread, it only sets a flag: the callbacks wait for the
    owner thread to call add_done_callback again (a polling design)."""

    def __init__(self):
        super().__init__()
        self._owner = get_ident()
        self._flagged = False

    def open(self):
        if get_ident() == self._owner:
            return super().open()
        self._flagged = True

    def add_done_callback(self, callback, *args):
        if self._flagged and get_ident() == self._owner:
            super().open()
        return super().add_done_callback(callback, *args)


# Breaches the kit has always caught.

class CallsTwice(Latch):
    def _call(self, callbacks):
        callbacks = list(callbacks)
        super()._call(callbacks)
        super()._call(callbacks)


class ForgetsRemoval(Latch):
    def remove_done_callback(self, handle):
        pass


class DropsArgs(Latch):
    def add_done_callback(self, callback, *args):
        return super().add_done_callback(callback)


class DropsSecondRegistration(Latch):
    """Keeps one registration per callable (a dict keyed by the callback)."""

    def _register(self, callback, args):
        self._callbacks[callback] = (callback, args)
        return callback


class NotAtOnceWhenReady(Latch):
    def add_done_callback(self, callback, *args):
        if self._open:
            return self._register(callback, args)       # registered, never called
        return super().add_done_callback(callback, *args)


class HandleWhenReady(Latch):
    def add_done_callback(self, callback, *args):
        handle = super().add_done_callback(callback, *args)
        return object() if handle is None else handle


class StaleRemoveRaises(Latch):
    def remove_done_callback(self, handle):
        if handle is not None:
            with self._lock:
                del self._callbacks[handle]


class NoneRemoveRaises(Latch):
    def remove_done_callback(self, handle):
        if handle is None:
            raise TypeError('no handle')
        super().remove_done_callback(handle)


class AcceptsAnyCallback(Latch):
    def add_done_callback(self, callback, *args):
        if not callable(callback):
            return None
        return super().add_done_callback(callback, *args)


class CallsBackWhenNotReady(Latch):
    """Calls every callback at once, ready or not."""

    def add_done_callback(self, callback, *args):
        callback(*args)
        return None


class NeverCallsBack(Latch):
    def open(self):
        with self._lock:
            self._open = True
            self._callbacks.clear()
