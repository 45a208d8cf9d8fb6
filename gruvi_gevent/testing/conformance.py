"""The conformance checks: does an object honour the whole IWaitable contract?

Each check is a function ``check_...(make, make_ready, *, timeout)``:
``make()`` returns a new object that is *not ready yet*, ``make_ready(obj)``
makes it ready (or starts something that soon will). The checks of
:data:`THREAD_CHECKS` take ``make_ready_from_thread(obj)`` instead, which the
kit calls in native threads of its own. :func:`check_waitable` runs them all.

A check that finds a breach raises ``AssertionError`` naming the rule that
was broken and what to fix; nothing else escapes a check of a broken object,
not even the kit's own timeouts. The rules are those of
:class:`~gruvi_gevent.interfaces.IWaitable`: every callback called once with
its arguments, never before the object is ready, at once on an object that
is ready already; removal forgiving and effective, releasing the callback;
handles private to the object that issued them; a raising callback stopping
no other; adding and becoming ready safe to race from different threads; and
``wait()`` and ``as_completed()`` working and leaving nothing registered.

Every check is a switchpoint: call it from a greenlet of a thread that runs a
gevent hub (the main thread of a test run does), never from inside the hub
itself. The kit never sleeps to wait for something: it waits on the thing
itself, bounded by *timeout*.
"""

import gc
import sys
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from ..errors import Timeout
from ..future import Future
from ..interfaces import IWaitable
from ..waiting import as_completed, wait
from .._wakeup import allocate_lock
from ._harness import (
    SHORT_TIMEOUT, Recorder, Scope, expect_not_ready, expect_nothing_live, expect_registered,
    fail, let_hub_run, wait_result)
from .recording import CountingProxy, waitable_of
from .running import DEFAULT_TIMEOUT, kill, run_in_native_thread, spawn

__all__ = [
    'SHORT_TIMEOUT', 'RACE_ROUNDS', 'CHECKS', 'THREAD_CHECKS', 'check_waitable',
    'check_interface', 'check_callbacks_called_once', 'check_remove', 'check_already_ready',
    'check_remove_after_ready', 'check_foreign_handle', 'check_raising_callback',
    'check_remove_releases', 'check_wait', 'check_as_completed', 'check_ready_from_thread',
    'check_add_races_ready',
]

# The type of the objects that a check's make() returns.
W = TypeVar('W')


def check_interface(make: Callable[[], W], make_ready: Callable[[W], object], *,
                    timeout: float = DEFAULT_TIMEOUT, require_declaration: bool = True) -> None:
    """Check that what *make* returns provides IWaitable (or adapts to it).

    ``zope.interface.verify.verifyObject(IWaitable, ...)`` runs on the object
    itself, or on ``IWaitable(obj)`` for an adapted type. With
    *require_declaration* false an undeclared object that merely has both
    methods passes too (``wait()`` accepts those), verified tentatively.
    Also checks that ``add_done_callback()`` refuses a callback that is not
    callable with ``TypeError``.
    """
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        declared = IWaitable(obj, None) is not None
        if not declared and require_declaration:
            fail('%r neither provides IWaitable nor adapts to it: declare it with '
                 '@implementer(IWaitable) or register an adapter' % (obj,))
        try:
            verifyObject(IWaitable, waitable, tentative=not declared)
        except Invalid as exc:
            fail('%r does not implement IWaitable correctly: %s' % (waitable, exc))
        try:
            handle = waitable.add_done_callback(42)
        except TypeError:
            pass
        else:
            waitable.remove_done_callback(handle)
            fail('add_done_callback() on %r accepted a callback that is not callable'
                 % (obj,))


def check_callbacks_called_once(make: Callable[[], W], make_ready: Callable[[W], object], *,
                                timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that every registered callback is called exactly once, with its ``*args``.

    Registers callbacks with and without arguments, and one callable twice
    with different arguments (each registration is called once, with its own
    arguments), then makes the object ready.
    """
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        with_args = Recorder()
        no_args = Recorder()
        twice = Recorder(expected=2)
        handle = waitable.add_done_callback(with_args, 'one', 2, None)
        expect_not_ready(obj, handle, with_args)
        waitable.add_done_callback(no_args)
        waitable.add_done_callback(twice, 'first')
        waitable.add_done_callback(twice, 'second')
        scope.ready(obj)
        what = 'a callback registered on %r was not called after make_ready()' % (obj,)
        with_args.wait(timeout, what)
        no_args.wait(timeout, what)
        twice.wait(timeout, what)
        let_hub_run()
        if with_args.calls != [('one', 2, None)]:
            fail('callback(*args) registered on %r: expected one call with '
                 "('one', 2, None), got %r" % (obj, with_args.calls))
        if no_args.calls != [()]:
            fail('callback registered without args on %r: expected one call with (), '
                 'got %r' % (obj, no_args.calls))
        if sorted(twice.calls) != [('first',), ('second',)]:
            fail('one callable registered twice on %r: expected one call per '
                 "registration, ('first',) and ('second',), got %r" % (obj, twice.calls))


def check_remove(make: Callable[[], W], make_ready: Callable[[W], object], *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a removed callback is not called, and that removal is forgiving.

    Removing a handle twice, or removing None, is not an error. Removing one of
    two registrations of the same callable removes only that one.
    """
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        removed = Recorder()
        kept = Recorder()
        same = Recorder()
        handle = waitable.add_done_callback(removed, 'removed')
        expect_not_ready(obj, handle, removed)
        waitable.add_done_callback(kept, 'kept')
        same_first = waitable.add_done_callback(same, 'first')
        waitable.add_done_callback(same, 'second')
        try:
            waitable.remove_done_callback(handle)
            waitable.remove_done_callback(same_first)
        except Exception as exc:
            fail('remove_done_callback() on %r raised %r' % (obj, exc))
        for stale in (handle, None):
            try:
                waitable.remove_done_callback(stale)
            except Exception as exc:
                fail('remove_done_callback(%r) on %r raised %r; removing a handle '
                     'twice, or None, must be harmless' % (stale, obj, exc))
        scope.ready(obj)
        kept.wait(timeout, 'a callback registered on %r was not called after '
                           'make_ready()' % (obj,))
        same.wait(timeout, 'the remaining registration of a callable registered '
                           'twice on %r was not called' % (obj,))
        let_hub_run()
        if removed.calls:
            fail('a callback removed from %r was called: %r' % (obj, removed.calls))
        if kept.calls != [('kept',)]:
            fail('callback registered on %r: expected one call with (\'kept\',), '
                 'got %r' % (obj, kept.calls))
        if same.calls != [('second',)]:
            fail('one callable registered twice on %r, the first registration '
                 "removed: expected only ('second',), got %r" % (obj, same.calls))


def check_already_ready(make: Callable[[], W], make_ready: Callable[[W], object], *,
                        timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a callback added to a ready object is called at once, and gets None.

    "At once" means before ``add_done_callback()`` returns, in the caller's
    context. The object is asked again through a fresh ``waitable_of(obj)``,
    so that an adapter must read the object's state, not remember its own.
    """
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        scope.ready_and_wait(obj, waitable)
        for source in (waitable, waitable_of(obj)):
            recorder = Recorder()
            handle = source.add_done_callback(recorder, 'now', 2)
            if recorder.calls != [('now', 2)]:
                fail("add_done_callback(callback, 'now', 2) on %r, which is ready: "
                     "expected callback('now', 2) to be called at once, got %r"
                     % (obj, recorder.calls))
            if handle is not None:
                fail('add_done_callback() on %r, which is ready, returned %r instead '
                     'of None' % (obj, handle))
            try:
                source.remove_done_callback(handle)
            except Exception as exc:
                fail('remove_done_callback(None) on %r raised %r' % (obj, exc))
            let_hub_run()
            if len(recorder.calls) != 1:
                fail('a callback added to %r, which is ready, was called %d times'
                     % (obj, len(recorder.calls)))


def check_remove_after_ready(make: Callable[[], W], make_ready: Callable[[W], object], *,
                             timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that removing a callback after it was called is harmless (also twice)."""
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        recorder = Recorder()
        handle = waitable.add_done_callback(recorder, 'x')
        expect_not_ready(obj, handle, recorder)
        scope.ready(obj)
        recorder.wait(timeout, 'a callback registered on %r was not called after '
                               'make_ready()' % (obj,))
        for _ in range(2):
            try:
                waitable.remove_done_callback(handle)
            except Exception as exc:
                fail('remove_done_callback() on %r after its callback was called '
                     'raised %r' % (obj, exc))
        let_hub_run()
        if recorder.calls != [('x',)]:
            fail("callback registered on %r: expected one call with ('x',), got %r"
                 % (obj, recorder.calls))


def _expect_killed_cleanly(call: Callable[[], object], name: str, who: str,
                           proxy: CountingProxy, obj: object,
                           proxies: tuple[CountingProxy, ...], timeout: float) -> None:
    """*Switchpoint.* Park a greenlet in ``call()`` (*name*, as *who*) on *proxy*
    (for *obj*) and kill it: it must die, and leave nothing registered."""
    greenlet, outcome = spawn(call)
    try:
        expect_registered(proxy, outcome, timeout, who)
    finally:
        died = kill(greenlet, timeout)
    if not died:
        fail('a greenlet parked in %s on %r did not die when killed' % (name, obj))
    expect_nothing_live(proxies, 'after the greenlet in %s was killed' % name)


def check_wait(make: Callable[[], W], make_ready: Callable[[W], object], *,
               timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that ``wait()`` works with the objects and leaves nothing registered.

    A greenlet parked in ``wait(count=1)`` is woken when one object is made
    ready; a ``wait()`` that times out returns what is ready so far; a waiter
    that is killed cleans up; objects already ready count at once, duplicates
    as several entries; and the objects themselves (not proxies or adapters)
    come back when they are passed in.
    """
    with Scope(make, make_ready, timeout) as scope:
        first, p1 = scope.proxy()
        second, p2 = scope.proxy()
        proxies = (p1, p2)

        greenlet, outcome = spawn(wait, [p1, p2], count=1, timeout=timeout)
        try:
            expect_registered(p1, outcome, timeout, 'wait([a, b], count=1)')
            expect_registered(p2, outcome, timeout, 'wait([a, b], count=1)')
            scope.ready(first)
            done, pending = wait_result(
                outcome, timeout + 1, 'a greenlet in wait() did not return after '
                'make_ready(%r)' % (first,))
        finally:
            kill(greenlet, timeout)
        if not done:
            fail('a greenlet in wait([a, b], count=1) was not woken within %.3g seconds '
                 'after make_ready(a), a being %r' % (timeout, first))
        if done != [p1] or pending != [p2]:
            fail('wait([a, b], count=1) after a was made ready: expected ([a], [b]), '
                 'got (%r, %r)' % (done, pending))
        expect_nothing_live(proxies, 'after wait() returned')

        done, pending = wait([p2], timeout=SHORT_TIMEOUT)
        if done or pending != [p2]:
            fail('wait([b], timeout=%s) for an object that is not ready: expected '
                 '([], [b]), got (%r, %r)' % (SHORT_TIMEOUT, done, pending))
        expect_nothing_live(proxies, 'after wait() timed out')

        _expect_killed_cleanly(lambda: wait([p2]), 'wait()', 'wait([b])', p2, second,
                               proxies, timeout)

        scope.ready(second)
        done, pending = wait([p1, p2, p1], timeout=timeout)
        if pending or sorted(map(id, done)) != sorted(map(id, [p1, p2, p1])):
            fail('wait([a, b, a]) on objects made ready: expected all three entries '
                 'done, got (%r, %r)' % (done, pending))
        expect_nothing_live(proxies, 'after wait() on objects already ready')

        done, pending = wait([first, second], timeout=timeout)
        if pending or len(done) != 2 or {id(obj) for obj in done} != {id(first), id(second)}:
            fail('wait([a, b]) on objects made ready: expected the objects passed in '
                 'as done, got (%r, %r)' % (done, pending))


def check_as_completed(make: Callable[[], W], make_ready: Callable[[W], object], *,
                       timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that ``as_completed()`` works with the objects and leaves nothing registered.

    A consumer gets each object as it is made ready, in that order; a consumer
    that stops early, one that times out and one that is killed all leave
    nothing registered; the objects themselves come back when passed in.
    """
    with Scope(make, make_ready, timeout) as scope:
        first, p1 = scope.proxy()
        second, p2 = scope.proxy()
        third, p3 = scope.proxy()
        proxies = (p1, p2, p3)

        outcome: Future[Any]
        got: list[CountingProxy] = []
        first_got: Future[CountingProxy] = Future()

        def consume() -> None:
            for obj in as_completed([p1, p2], timeout=timeout):
                got.append(obj)
                first_got.set_result(obj)

        greenlet, outcome = spawn(consume)
        try:
            expect_registered(p1, outcome, timeout, 'as_completed([a, b])')
            expect_registered(p2, outcome, timeout, 'as_completed([a, b])')
            scope.ready(first)
            wait_result(first_got, timeout, 'as_completed() did not yield an object '
                         'after make_ready(%r)' % (first,))
            if got != [p1]:
                fail('as_completed([a, b]) after a was made ready: expected a first, '
                     'got %r' % (got,))
            scope.ready(second)
            wait_result(outcome, timeout + 1, 'as_completed() did not finish after '
                         'both objects were made ready')
        finally:
            kill(greenlet, timeout)
        if got != [p1, p2]:
            fail('as_completed([a, b]) made ready a then b: expected [a, b], got %r'
                 % (got,))
        expect_nothing_live(proxies, 'after as_completed() finished')

        generator = as_completed([p1, p3], timeout=timeout)
        try:
            obj = next(generator)
        except Timeout:
            fail('as_completed([a, b]) with a ready did not yield a')
        finally:
            generator.close()
        if obj is not p1:
            fail('as_completed([a, b]) with a ready yielded %r, not a' % (obj,))
        expect_nothing_live(proxies, 'after the consumer of as_completed() stopped early')

        generator = as_completed([p3], timeout=SHORT_TIMEOUT)
        try:
            next(generator)
        except Timeout:
            pass
        else:
            fail('as_completed([b], timeout=%s) on an object that is not ready did '
                 'not raise Timeout' % SHORT_TIMEOUT)
        finally:
            generator.close()
        expect_nothing_live(proxies, 'after as_completed() timed out')

        _expect_killed_cleanly(lambda: list(as_completed([p3])), 'as_completed()',
                               'as_completed([b])', p3, third, proxies, timeout)

        scope.ready(third)
        done = list(as_completed([first, third], timeout=timeout))
        if len(done) != 2 or {id(obj) for obj in done} != {id(first), id(third)}:
            fail('as_completed([a, b]) on objects made ready: expected the objects '
                 'passed in, got %r' % (done,))


def check_foreign_handle(make: Callable[[], W], make_ready: Callable[[W], object], *,
                         timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a handle removes nothing from an object that did not issue it.

    Two objects get three callbacks each; then each is handed the other's
    handles to remove. That must remove none of its own callbacks (it may
    ignore such a handle, or refuse it with an exception): handles are
    private to the object that issued them. Handles that count per object
    (0, 1, 2, ...) break this rule.
    """
    with Scope(make, make_ready, timeout) as scope:
        pair = [scope.new(), scope.new()]
        recorders = [Recorder(expected=3), Recorder(expected=3)]
        handles: list[list[object]] = [[], []]
        for (obj, waitable), recorder, issued in zip(pair, recorders, handles):
            for number in range(3):
                issued.append(waitable.add_done_callback(recorder, number))
            expect_not_ready(obj, issued[0], recorder)
        for (obj, waitable), foreign in zip(pair, reversed(handles)):
            for handle in foreign:
                try:
                    waitable.remove_done_callback(handle)
                except Exception:
                    pass        # refusing a foreign handle is fine
        for obj, _ in pair:
            scope.ready(obj)
        for (obj, _), (other, _), recorder in zip(pair, reversed(pair), recorders):
            try:
                recorder.arrived.result(timeout)
            except Timeout:
                fail('remove_done_callback() on %r, given the handles that %r issued, '
                     'removed %d of its own callbacks (they were not called after '
                     'make_ready() within %.3g seconds): handles are private to the '
                     'object that issued them; make each one unique (an object of its '
                     'own, not a per-object counter)'
                     % (obj, other, 3 - len(recorder.calls), timeout))


class _RaisedOnPurpose(Exception):
    """The error of the raising callback of :func:`check_raising_callback`."""


def _raise_on_purpose(name: str) -> None:
    raise _RaisedOnPurpose('callback %r raised this on purpose (the conformance kit '
                           'checks that the others are still called)' % (name,))


def check_raising_callback(make: Callable[[], W], make_ready: Callable[[W], object], *,
                           timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a callback that raises does not stop the others.

    Registers a callback, then one that raises, then another, and makes the
    object ready: both others must be called. Where the error goes is the
    object's choice (logged, or raised by ``make_ready()`` once every
    callback has run); a ``wait()`` that registered after a raising callback
    must still be woken.
    """
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        before, after = Recorder(), Recorder()
        handle = waitable.add_done_callback(before, 'before')
        expect_not_ready(obj, handle, before)
        waitable.add_done_callback(_raise_on_purpose, 'raising')
        waitable.add_done_callback(after, 'after')
        try:
            scope.ready(obj)
        except _RaisedOnPurpose:
            pass
        for recorder, where in ((before, 'before'), (after, 'after')):
            try:
                recorder.arrived.result(timeout)
            except Timeout:
                fail('a callback registered on %r %s one that raised was not called '
                     'within %.3g seconds after make_ready(): a callback that raises must '
                     'not stop the others (catch its error, report it, call the rest)'
                     % (obj, where, timeout))


class _Token:
    """An argument of a callback, to tell whether the object still holds it."""


def check_remove_releases(make: Callable[[], W], make_ready: Callable[[W], object], *,
                          timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that a removed callback, and its arguments, are let go at once.

    Not when the object becomes ready: an object that keeps them until then
    keeps alive whatever they reference (a finished job, the frame of a
    greenlet that stopped waiting) for as long as it stays pending. The kit
    drops its own references, collects garbage and looks through weak
    references.
    """
    with Scope(make, make_ready, timeout) as scope:
        obj, waitable = scope.new()
        callback, argument = Recorder(), _Token()
        handle = waitable.add_done_callback(callback, argument)
        expect_not_ready(obj, handle, callback)
        held: dict[str, weakref.ref[Any]] = {'the callback': weakref.ref(callback),
                                             'its argument': weakref.ref(argument)}
        waitable.remove_done_callback(handle)
        del callback, argument, handle
        gc.collect()
        kept = [name for name, ref in held.items() if ref() is not None]
        if kept:
            fail('%r still references %s after remove_done_callback(), before it is '
                 'ready: a removed callback must be released at once, with its '
                 'arguments, not kept until the object is ready' % (obj, ' and '.join(kept)))


# The two checks that make objects ready from a native thread.

#: Rounds of :func:`check_add_races_ready` by default: each makes an object
#: and races a native thread that makes it ready against callbacks being added.
RACE_ROUNDS = 300

# At most this many callbacks are added in one round of the race.
_RACE_ADDS = 5000

_THREAD_HINT = (
    'make_ready_from_thread() defaults to make_ready(), which must then be safe to '
    'call from another thread; if it is not, pass (or define) a make_ready_from_thread '
    'that is, or turn the thread checks off with threads=False, knowing that they are '
    'then not run')


def _thread_time(timeout: float) -> float:
    """Seconds a native thread of the kit gets to start, or to return.

    At least DEFAULT_TIMEOUT, whatever the check's *timeout*: a loaded
    machine can be slow to schedule a new thread, which says nothing about
    the object under test.
    """
    return max(timeout, DEFAULT_TIMEOUT)


def _thread_returned(thread: Future[Any], obj: object, timeout: float, during: str) -> None:
    """*Switchpoint.* Wait for the native thread that made *obj* ready; fail if it raised."""
    try:
        wait_result(thread, _thread_time(timeout), 'make_ready_from_thread(%r), called in '
                                                   'a native thread, did not return' % (obj,))
    except AssertionError:
        raise
    except Exception as exc:
        fail('make_ready_from_thread(%r) raised %r in a native thread%s. %s'
             % (obj, exc, during, _THREAD_HINT))


def check_ready_from_thread(make: Callable[[], W], make_ready_from_thread: Callable[[W], object],
                            *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Check that readiness brought about in a native thread wakes a waiting greenlet.

    A greenlet parks in ``wait()`` on the object; the kit starts a native OS
    thread that calls ``make_ready_from_thread(obj)``. The greenlet must be
    woken with nothing else to poke the hub, callbacks must still be called
    once with their arguments, and nothing may stay registered.
    """
    with Scope(make, make_ready_from_thread, timeout) as scope:
        obj, proxy = scope.proxy()
        waitable = proxy._waitable
        recorder = Recorder()
        handle = waitable.add_done_callback(recorder, 'thread', 3)
        expect_not_ready(obj, handle, recorder)

        greenlet, outcome = spawn(wait, [proxy], timeout=timeout)
        try:
            expect_registered(proxy, outcome, timeout, 'wait([a])')
            scope.mark_ready(obj)
            thread = run_in_native_thread(make_ready_from_thread, obj)
            _thread_returned(thread, obj, timeout, '')
            done, pending = wait_result(
                outcome, timeout + 1, 'a greenlet in wait() did not return after '
                'make_ready_from_thread(%r)' % (obj,))
        finally:
            kill(greenlet, timeout)
        if done != [proxy] or pending:
            fail('a greenlet waiting in wait() on %r was not woken within %.3g seconds '
                 'when a native thread made it ready: got (%r, %r)'
                 % (obj, timeout, done, pending))
        recorder.wait(timeout, 'a callback registered on %r was not called after it '
                               'was made ready in a native thread' % (obj,))
        let_hub_run()
        if recorder.calls != [('thread', 3)]:
            fail("callback registered on %r, made ready in a native thread: expected "
                 "one call with ('thread', 3), got %r" % (obj, recorder.calls))
        expect_nothing_live([proxy], 'after wait() returned')


def check_add_races_ready(make: Callable[[], W], make_ready_from_thread: Callable[[W], object],
                          *, timeout: float = DEFAULT_TIMEOUT, rounds: int = RACE_ROUNDS) -> None:
    """Check that callbacks added while a native thread makes the object ready are all called.

    *rounds* times: make an object, start a native thread that calls
    ``make_ready_from_thread(obj)``, and meanwhile add callbacks from the
    calling greenlet as fast as possible until the thread has returned. Every
    callback must then be called exactly once, at once or when the object
    becomes ready. One that is never called means that adding and becoming
    ready are not atomic with respect to each other: guard both with one lock.
    For the duration, the interpreter's switch interval is shortened so that
    the two threads really interleave.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with Scope(make, make_ready_from_thread, timeout) as scope:
            for _ in range(rounds):
                _race(scope, make_ready_from_thread, timeout)
    finally:
        sys.setswitchinterval(interval)


def _race(scope: Scope, make_ready_from_thread: Callable[[Any], object], timeout: float) -> None:
    """One round of :func:`check_add_races_ready`."""
    obj, waitable = scope.new()
    recorder = Recorder(expected=_RACE_ADDS + 1)
    scope.mark_ready(obj)
    started = allocate_lock()
    started.acquire()
    go: list[bool] = []

    def racer() -> object:
        # Start making ready only once the calling thread is adding: a thread
        # slow to start (a loaded machine) would otherwise find the race over.
        started.release()
        deadline = monotonic() + _thread_time(timeout)
        while not go and monotonic() < deadline:
            pass
        return make_ready_from_thread(obj)

    thread = run_in_native_thread(racer)
    if not started.acquire(timeout=_thread_time(timeout)):
        fail('a native thread of the kit did not start within %.3g seconds'
             % (_thread_time(timeout),))
    go.append(True)
    added = 0
    try:
        while added < _RACE_ADDS and not thread.done():
            waitable.add_done_callback(recorder, added)
            added += 1
    except Exception as exc:
        thread.exception(timeout)
        fail('add_done_callback() on %r raised %r while a native thread made it ready: '
             'adding and becoming ready may race from different threads (a lock shared '
             'with native threads must be a real OS lock, also under monkey patching)'
             % (obj, exc))
    _thread_returned(thread, obj, timeout, ' while the calling thread added callbacks')
    waitable.add_done_callback(recorder, added)      # one more, once it returned
    recorder.expect(added + 1)
    try:
        recorder.arrived.result(timeout)
    except Timeout:
        fail('%d of %d callbacks added to %r while a native thread made it ready were '
             'never called (waited %.3g seconds): add_done_callback() and becoming ready '
             'may race from different threads; make them atomic (one lock around the '
             'ready check and the registration, and around becoming ready)'
             % (added + 1 - len(recorder.calls), added + 1, obj, timeout))
    let_hub_run()
    if sorted(recorder.calls) != [(number,) for number in range(added + 1)]:
        fail('callbacks added to %r while a native thread made it ready: expected one '
             'call each, got %d calls for %d callbacks'
             % (obj, len(recorder.calls), added + 1))


#: The checks that need no native thread, in the order :func:`check_waitable`
#: runs them; each is called as ``check(make, make_ready, timeout=...)``.
CHECKS: tuple[Callable[..., None], ...] = (
    check_interface,
    check_callbacks_called_once,
    check_remove,
    check_already_ready,
    check_remove_after_ready,
    check_foreign_handle,
    check_raising_callback,
    check_remove_releases,
    check_wait,
    check_as_completed,
)

#: The checks that make objects ready from a native thread; each is called as
#: ``check(make, make_ready_from_thread, timeout=...)``.
THREAD_CHECKS: tuple[Callable[..., None], ...] = (
    check_ready_from_thread,
    check_add_races_ready,
)


def check_waitable(make: Callable[[], W], make_ready: Callable[[W], object],
                   make_ready_from_thread: Callable[[W], object] | None = None, *,
                   timeout: float = DEFAULT_TIMEOUT, require_declaration: bool = True,
                   threads: bool = True, race_rounds: int = RACE_ROUNDS) -> None:
    """Run the whole conformance kit on the waitables that *make* returns.

    *Switchpoint.* *make()* must return a new object that is not ready yet;
    *make_ready(obj)* makes it ready, or starts something that will (the kit
    waits up to *timeout* seconds for each expected callback or wake-up).
    *make_ready_from_thread(obj)* is called by the kit in native threads of
    its own and must make *obj* ready from there; by default it is
    *make_ready* itself. *threads* false skips the checks of
    :data:`THREAD_CHECKS`, for objects that are never made ready from another
    thread. Raises ``AssertionError`` on the first breach of the contract.
    *require_declaration*: see :func:`check_interface`; *race_rounds*: the
    *rounds* of :func:`check_add_races_ready`.

    Each check makes fresh objects and leaves every one of them ready.
    """
    for check in CHECKS:
        if check is check_interface:
            check(make, make_ready, timeout=timeout, require_declaration=require_declaration)
        else:
            check(make, make_ready, timeout=timeout)
    if threads:
        from_thread = make_ready_from_thread or make_ready
        check_ready_from_thread(make, from_thread, timeout=timeout)
        check_add_races_ready(make, from_thread, timeout=timeout, rounds=race_rounds)
