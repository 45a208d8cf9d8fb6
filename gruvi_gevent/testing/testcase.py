"""The conformance kit as a base class of pytest tests: :class:`WaitableConformance`."""

from collections.abc import Callable
from typing import Any

from .conformance import (
    RACE_ROUNDS, check_add_races_ready, check_already_ready, check_as_completed,
    check_callbacks_called_once, check_foreign_handle, check_interface, check_raising_callback,
    check_ready_from_thread, check_remove, check_remove_after_ready, check_remove_releases,
    check_wait)
from .running import DEFAULT_TIMEOUT

__all__ = ['WaitableConformance']


class WaitableConformance:
    """A base class of pytest tests: the conformance kit, one test per check.

    A subclass names its factory and gets the whole set of tests::

        class TestMyThing(WaitableConformance):
            def make(self):
                return MyThing()            # not ready yet

            def make_ready(self, thing):
                thing.finish()

            # optional: called by the kit in native threads; make_ready by default
            def make_ready_from_thread(self, thing):
                thing.finish()

    The base class itself is not collected (``__test__ = False``); subclasses
    are, unless they set ``__test__ = False`` themselves (an abstract
    intermediate class). Class attributes tune the kit: :attr:`timeout`,
    :attr:`require_declaration`, :attr:`race_rounds` and :attr:`threads`.

    The two tests that make objects ready from a native thread call
    :meth:`make_ready_from_thread`, which is :meth:`make_ready` unless the
    subclass overrides it. If that cannot work from another thread, they fail
    and say so; a subclass whose objects are never made ready from another
    thread sets ``threads = False``, and those two tests are then reported as
    skipped, with a reason that says they were not checked.
    """

    __test__ = False

    #: Seconds to wait for each callback or wake-up the kit expects.
    timeout: float = DEFAULT_TIMEOUT
    #: Whether the object must provide IWaitable or adapt to it (False: duck typing is enough).
    require_declaration: bool = True
    #: Rounds of the race between adding callbacks and a native thread making ready.
    race_rounds: int = RACE_ROUNDS
    #: Whether to run the tests that make objects ready from a native thread.
    threads: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if '__test__' not in cls.__dict__:
            cls.__test__ = True

    def make(self) -> Any:
        """Return a new object that is not ready yet."""
        raise NotImplementedError('a WaitableConformance subclass must define make()')

    def make_ready(self, obj: Any) -> object:
        """Make *obj* ready (or start something that soon will)."""
        raise NotImplementedError('a WaitableConformance subclass must define make_ready()')

    def make_ready_from_thread(self, obj: Any) -> object:
        """Make *obj* ready; called by the kit in a native thread of its own.

        By default :meth:`make_ready`: override it if that must not be called
        from another thread.
        """
        return self.make_ready(obj)

    def _run(self, check: Callable[..., None]) -> None:
        check(self.make, self.make_ready, timeout=self.timeout)

    def _run_from_thread(self, check: Callable[..., None], **options: Any) -> None:
        if not self.threads:
            import pytest
            pytest.skip('NOT CHECKED: %s sets threads = False, so %s() did not run: '
                        'readiness from a native thread is not verified'
                        % (type(self).__name__, check.__name__))
        check(self.make, self.make_ready_from_thread, timeout=self.timeout, **options)

    def test_interface(self) -> None:
        """The object provides IWaitable (or adapts to it) and refuses non-callables."""
        check_interface(self.make, self.make_ready, timeout=self.timeout,
                        require_declaration=self.require_declaration)

    def test_callbacks_called_once(self) -> None:
        """Every callback is called exactly once, with its ``*args``."""
        self._run(check_callbacks_called_once)

    def test_remove(self) -> None:
        """A removed callback is not called; removing twice or None is fine."""
        self._run(check_remove)

    def test_already_ready(self) -> None:
        """On a ready object a callback is called at once and the handle is None."""
        self._run(check_already_ready)

    def test_remove_after_ready(self) -> None:
        """Removing a callback that was already called is harmless."""
        self._run(check_remove_after_ready)

    def test_foreign_handle(self) -> None:
        """A handle removes nothing from an object that did not issue it."""
        self._run(check_foreign_handle)

    def test_raising_callback(self) -> None:
        """A callback that raises does not stop the others."""
        self._run(check_raising_callback)

    def test_remove_releases(self) -> None:
        """A removed callback and its arguments are released at once."""
        self._run(check_remove_releases)

    def test_wait(self) -> None:
        """wait() works with the object and leaves nothing registered."""
        self._run(check_wait)

    def test_as_completed(self) -> None:
        """as_completed() works with the object and leaves nothing registered."""
        self._run(check_as_completed)

    def test_ready_from_thread(self) -> None:
        """Readiness brought about in a native thread wakes a waiting greenlet."""
        self._run_from_thread(check_ready_from_thread)

    def test_add_races_ready(self) -> None:
        """Callbacks added while a native thread makes the object ready are all called."""
        self._run_from_thread(check_add_races_ready, rounds=self.race_rounds)
