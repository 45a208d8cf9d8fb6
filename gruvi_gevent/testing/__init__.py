"""Testing helpers: a conformance kit for waitables, and waitables that count.

Three kinds of helpers live here, for test suites that write or use
waitables; every public name is importable from ``gruvi_gevent.testing``:

* **The conformance kit** (:mod:`~gruvi_gevent.testing.conformance`) checks
  that an object honours the whole :class:`~gruvi_gevent.interfaces.IWaitable`
  contract. It needs functions of yours: ``make()`` returns a new object that
  is *not ready yet*, and ``make_ready(obj)`` makes it ready (or starts
  something that soon will). Two checks also make objects ready from native
  threads of the kit's own, through ``make_ready_from_thread(obj)``, which is
  ``make_ready`` unless you give one. :func:`check_waitable` runs every check;
  each check is also a function of its own. A check that finds a breach raises
  ``AssertionError`` naming the broken rule. For pytest, subclass
  :class:`WaitableConformance` (:mod:`~gruvi_gevent.testing.testcase`) and
  get one test per check::

      from gruvi_gevent.testing import WaitableConformance

      class TestMyThing(WaitableConformance):
          def make(self):
              return MyThing()

          def make_ready(self, thing):
              thing.finish()

* **Waitables that count** (:mod:`~gruvi_gevent.testing.recording`):
  :class:`RecordingWaitable`, a waitable of its own for people testing code
  that waits on things, which counts every add and remove, knows how many
  registrations are live, and becomes ready when told to, optionally from a
  native thread; and :class:`CountingProxy`, which wraps any waitable and
  counts the registrations made through it.
* **Running code elsewhere** (:mod:`~gruvi_gevent.testing.running`):
  :func:`run_in_greenlet` runs a function in a fresh greenlet with a hard
  timeout, :func:`run_in_native_thread` in a real OS thread (even under monkey
  patching), returning a :class:`~gruvi_gevent.Future`.

Every check, and every helper that waits, is a switchpoint: call them from a
greenlet of a thread that runs a gevent hub (the main thread of a test run
does), never from inside the hub itself.
"""

from .conformance import (
    CHECKS, RACE_ROUNDS, SHORT_TIMEOUT, THREAD_CHECKS, check_add_races_ready,
    check_already_ready, check_as_completed, check_callbacks_called_once, check_foreign_handle,
    check_interface, check_raising_callback, check_ready_from_thread, check_remove,
    check_remove_after_ready, check_remove_releases, check_wait, check_waitable)
from .recording import CountingProxy, RecordingWaitable, waitable_of
from .running import DEFAULT_TIMEOUT, run_in_greenlet, run_in_native_thread
from .testcase import WaitableConformance

__all__ = [
    'DEFAULT_TIMEOUT', 'SHORT_TIMEOUT', 'RACE_ROUNDS',
    'check_waitable', 'check_interface', 'check_callbacks_called_once', 'check_remove',
    'check_already_ready', 'check_remove_after_ready', 'check_foreign_handle',
    'check_raising_callback', 'check_remove_releases', 'check_wait', 'check_as_completed',
    'check_ready_from_thread', 'check_add_races_ready', 'CHECKS', 'THREAD_CHECKS',
    'WaitableConformance', 'RecordingWaitable', 'CountingProxy',
    'waitable_of', 'run_in_greenlet', 'run_in_native_thread',
]
