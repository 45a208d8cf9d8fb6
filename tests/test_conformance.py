"""The conformance kit catches what it exists to catch.

A correct thread-safe waitable of the tests' own (``latches.Latch``) passes
every check; each variant broken in one way fails, with an AssertionError
naming the broken rule, both the check aimed at it and the whole kit.
"""

import pytest

from gruvi_gevent.testing import (
    DEFAULT_TIMEOUT, WaitableConformance, check_add_races_ready, check_already_ready,
    check_as_completed, check_callbacks_called_once, check_foreign_handle, check_interface,
    check_raising_callback, check_ready_from_thread, check_remove, check_remove_after_ready,
    check_remove_releases, check_wait, check_waitable)

from latches import (
    AcceptsAnyCallback, CallsBackWhenNotReady, CallsBeforeReady, CallsTwice, CounterHandles,
    DropsArgs, DropsSecondRegistration, ForgetsRemoval, HandleWhenReady, KeepsRemoved, Latch,
    LosesWakeUpFromThread, NeverCallsBack, NoLock, NoneRemoveRaises, NotAtOnceWhenReady,
    RaisingStopsOthers, StaleRemoveRaises, open_latch)

# The kit's timeout where it is expected to give up (a broken waitable).
BROKEN_TIMEOUT = 0.3


class TestLatch(WaitableConformance):
    """The correct latch passes every test, the thread tests by their default."""

    def make(self):
        return Latch()

    def make_ready(self, latch):
        latch.open()


def test_latch_passes_check_waitable():
    check_waitable(Latch, open_latch, timeout=DEFAULT_TIMEOUT)


BROKEN = [
    # The four that escaped every check.
    (CounterHandles, check_foreign_handle, 'given the handles that .* issued, removed 3 of '
                                           'its own callbacks.*handles are private'),
    (NoLock, check_add_races_ready, 'while a native thread made it ready.*may race from '
                                    'different threads'),
    (RaisingStopsOthers, check_raising_callback, 'after one that raised was not called.*'
                                                 'must not stop the others'),
    (KeepsRemoved, check_remove_releases, 'still references the callback and its argument '
                                          'after remove_done_callback.*must be released'),
    # Calling back before it is ready fails wait() and as_completed() with
    # an AssertionError, not the kit's own Timeout.
    (CallsBeforeReady, check_wait, 'returned before anything was made ready.*called back '
                                   'before it was ready'),
    (CallsBeforeReady, check_as_completed, 'returned before anything was made ready'),
    (CallsBeforeReady, check_callbacks_called_once, 'make\\(\\) must return an object that '
                                                    'is not ready'),
    (LosesWakeUpFromThread, check_ready_from_thread, 'was not woken within .* when a native '
                                                     'thread'),
    # Those the kit always caught.
    (CallsTwice, check_callbacks_called_once, 'expected one call'),
    (ForgetsRemoval, check_remove, 'removed from .* was called'),
    (DropsArgs, check_callbacks_called_once, 'expected one call with'),
    (DropsSecondRegistration, check_callbacks_called_once, 'was not called'),
    (NotAtOnceWhenReady, check_already_ready, 'to be called at once'),
    (HandleWhenReady, check_already_ready, 'instead of None'),
    (StaleRemoveRaises, check_remove, 'removing a handle twice'),
    (StaleRemoveRaises, check_remove_after_ready, 'after its callback was called'),
    (NoneRemoveRaises, check_remove, 'remove_done_callback\\(None\\)'),
    (AcceptsAnyCallback, check_interface, 'not callable'),
    (CallsBackWhenNotReady, check_callbacks_called_once, 'make\\(\\) must return an object '
                                                         'that is not ready'),
    (NeverCallsBack, check_callbacks_called_once, 'was not called after make_ready'),
    (NeverCallsBack, check_wait, 'was not woken within'),
    (NeverCallsBack, check_as_completed, 'did not yield'),
]


@pytest.mark.parametrize('cls, check, message', BROKEN,
                         ids=['%s-%s' % (cls.__name__, check.__name__)
                              for cls, check, message in BROKEN])
def test_broken_latch_fails_the_check(cls, check, message):
    with pytest.raises(AssertionError, match='(?s)' + message):
        check(cls, open_latch, timeout=BROKEN_TIMEOUT)


@pytest.mark.parametrize('cls', sorted({cls for cls, _, _ in BROKEN}, key=lambda c: c.__name__),
                         ids=lambda cls: cls.__name__)
def test_broken_latch_fails_check_waitable(cls):
    with pytest.raises(AssertionError):
        check_waitable(cls, open_latch, timeout=BROKEN_TIMEOUT)


def test_thread_checks_pass_what_happens_in_one_thread():
    """LosesWakeUpFromThread passes every check made in the owner thread."""
    check_waitable(LosesWakeUpFromThread, open_latch, timeout=DEFAULT_TIMEOUT, threads=False)


def test_thread_checks_say_when_make_ready_cannot_run_in_a_thread():
    def refuses_threads(latch, owner=Latch()._lock):
        raise RuntimeError('only the owner thread may open this latch')

    with pytest.raises(AssertionError, match="raised RuntimeError.*in a native thread.*"
                                             "defaults to make_ready.*threads=False"):
        check_ready_from_thread(Latch, refuses_threads, timeout=BROKEN_TIMEOUT)
