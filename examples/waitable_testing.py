"""Testing a waitable with gruvi_gevent.testing.

Two ways to run the conformance kit on the ``Transfer`` adapter of
``custom_adapter.py``:

* as plain functions: :func:`check_waitable` runs every check and raises
  ``AssertionError`` at the first breach of the contract;
* as pytest tests: a subclass of :class:`WaitableConformance` names the
  factory and gets one test per check.

And :class:`RecordingWaitable`, for testing code that *waits* on things: here
a ``first_ready()`` helper, checked to leave no callback registered.

Run as a program, it does the first, then runs pytest on this file.
"""

import sys

import gevent

from gruvi_gevent import wait
from gruvi_gevent.testing import RecordingWaitable, WaitableConformance, check_waitable

from custom_adapter import Transfer


def finish(transfer):
    transfer.finish()


# 1. The kit as plain functions: raises AssertionError on a breach.

def check_transfers():
    check_waitable(make=lambda: Transfer('under test'), make_ready=finish,
                   make_ready_from_thread=finish, timeout=5)


# 2. The kit as pytest tests: one test per check.

class TestTransfer(WaitableConformance):
    timeout = 5

    def make(self):
        return Transfer('under test')        # not finished yet

    def make_ready(self, transfer):
        transfer.finish()

    def make_ready_from_thread(self, transfer):
        transfer.finish()                     # called by the kit in a native thread


# 3. RecordingWaitable: testing code that waits on things.

def first_ready(objects, timeout):
    """The code under test: return the first of *objects* to become ready, or None."""
    done, pending = wait(objects, count=1, timeout=timeout)
    return done[0] if done else None


def test_first_ready_cleans_up():
    slow, quick = RecordingWaitable(), RecordingWaitable()
    waiter = gevent.spawn(first_ready, [slow, quick], 5)
    slow.wait_registered()                   # the waiter is parked in wait() now
    quick.make_ready_from_thread().result(5)
    assert waiter.get(timeout=5) is quick
    assert slow.live_count == 0 and slow.remove_count == 1   # its callback was removed
    assert quick.call_count == 1


def test_first_ready_times_out():
    never = RecordingWaitable()
    assert first_ready([never], timeout=0.01) is None
    assert never.live_count == 0


if __name__ == '__main__':
    import pytest

    check_transfers()
    print('check_waitable: the Transfer adapter honours the IWaitable contract')
    status = pytest.main(['-q', '-p', 'no:cacheprovider', __file__])
    if status != 0:
        sys.exit(status)
    print('waitable_testing: OK')
