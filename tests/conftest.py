"""Shared helpers of the test suite.

``CountingWaitable`` is a waitable of the tests' own: it counts the callbacks
registered on it that are still live (added, neither called nor removed), so
that a test can prove that ``wait()`` and ``as_completed()`` leave nothing
behind. ``DeclaredCountingWaitable`` is the same, declared with
``@implementer(IWaitable)``; the plain one only has the two methods.
"""

import threading

import gevent
import pytest
from zope.interface import implementer

from gruvi_gevent.interfaces import IWaitable


class _Handle:
    """The opaque handle of one registration on a CountingWaitable."""

    __slots__ = ('callback', 'args')

    def __init__(self, callback, args):
        self.callback = callback
        self.args = args


class CountingWaitable:
    """An undeclared (duck-typed) waitable that counts its live callbacks."""

    def __init__(self, ready=False):
        self.is_ready = ready
        self.live = {}          # handle -> None, the registrations still owed a call
        self.added = 0          # every add_done_callback call
        self.removed = 0        # remove_done_callback calls that removed something
        self.lock = threading.Lock()

    def __repr__(self):
        return '<%s ready=%s live=%d>' % (type(self).__name__, self.is_ready, len(self.live))

    def add_done_callback(self, callback, *args):
        if not callable(callback):
            raise TypeError('callback must be callable')
        with self.lock:
            self.added += 1
            if not self.is_ready:
                handle = _Handle(callback, args)
                self.live[handle] = None
                return handle
        callback(*args)
        return None

    def remove_done_callback(self, handle):
        if handle is None:
            return
        with self.lock:
            if self.live.pop(handle, 0) is None:
                self.removed += 1

    def set(self):
        """Make the object ready and call (then forget) every live callback."""
        with self.lock:
            if self.is_ready:
                return
            self.is_ready = True
            handles = list(self.live)
            self.live.clear()
        for handle in handles:
            handle.callback(*handle.args)

    @property
    def count(self):
        """The number of live registrations."""
        return len(self.live)


@implementer(IWaitable)
class DeclaredCountingWaitable(CountingWaitable):
    """The same waitable, declared as providing IWaitable."""


@pytest.fixture(params=[CountingWaitable, DeclaredCountingWaitable],
                ids=['undeclared', 'declared'])
def waitable_class(request):
    """The class of a counting waitable: duck-typed, then declared."""
    return request.param


@pytest.fixture
def no_parked_waiters():
    """Fail a test that leaves a greenlet of the main hub parked on a waker.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures('no_parked_waiters')``.
    """
    def parked():
        channel = getattr(gevent.get_hub(), '_gruvi_gevent_channel', None)
        return 0 if channel is None else channel.count
    before = parked()
    yield
    assert parked() == before, 'a waiter of this test is still parked in the hub'


@pytest.fixture
def counting():
    """The undeclared counting waitable class (for tests that need just one kind)."""
    return CountingWaitable
