"""Shared fixtures of the test suite.

Waitables that count come from the library's own kit: ``RecordingWaitable``
(declared) and ``latches.UndeclaredWaitable`` (the same, duck-typed).
"""

import gevent
import pytest

from gruvi_gevent.testing import RecordingWaitable

from latches import UndeclaredWaitable
from pool_helpers import Gate


@pytest.fixture(params=[UndeclaredWaitable, RecordingWaitable],
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
    return UndeclaredWaitable


@pytest.fixture
def gate(tmp_path):
    """A :class:`pool_helpers.Gate` for :func:`pool_helpers.hold` jobs, closed after the test."""
    gate = Gate(tmp_path / 'gate')
    yield gate
    gate.close()
