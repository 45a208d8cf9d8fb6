"""Backpressure: the bound on a pool's unfinished jobs, and the line of submitters waiting for room.

A pool made with ``max_queued`` holds at most ``maxsize + max_queued`` jobs
that are not done: ``maxsize`` running and ``max_queued`` waiting for a
worker. Each job takes a *place* before it is queued and gives it back when
its future is done (a done callback, so the workers' loops know nothing of
this). A submitter that finds no place parks -- its greenlet only, or its
native thread only -- in a first-come-first-served line. A place given back
goes straight to the submitter at the head of the line, so that nobody who
comes later can take it first, and only that submitter is woken.

Thread-safety: any thread may take and give back places; the state is
guarded by one original OS lock, held for a few lines at a time and never
while parked.
"""

import collections

from .errors import Timeout
from ._wakeup import Waker, allocate_lock, new_waker

__all__ = ['JobBound']

# The states of a ticket in the line, in the order they can happen.
_WAITING = 0     # in the line
_ADMITTED = 1    # handed a place: the submitter owns it now
_REFUSED = 2     # the pool closed while it waited
_GAVE_UP = 3     # its timeout passed, or it was killed, before it got a place


class _Ticket:
    """One submitter waiting in the line."""

    __slots__ = ('waker',   # parks the submitter; called once its state changes
                 'state')   # one of _WAITING .. _GAVE_UP; changed under the lock

    def __init__(self, waker: Waker) -> None:
        self.waker = waker
        self.state = _WAITING


class JobBound:
    """The places of one pool's jobs; see the module docstring."""

    __slots__ = ('limit',       # how many places there are
                 'pool_name',   # for error messages
                 'lock',        # original OS lock guarding the three below
                 'taken',       # places taken by jobs not yet done
                 'line',        # deque of _Tickets waiting for a place, first first
                 'closed')      # the pool closed: no more places for anyone

    def __init__(self, limit: int, pool_name: str) -> None:
        self.limit = limit
        self.pool_name = pool_name
        self.lock = allocate_lock()
        self.taken = 0
        self.line: collections.deque[_Ticket] = collections.deque()
        self.closed = False

    def try_enter(self) -> bool:
        """Take a place if one is free and nobody waits for it; never parks."""
        with self.lock:
            return not self.closed and self._take_free_place()

    def _take_free_place(self) -> bool:
        """Take a place if one is free and nobody waits; the caller holds the lock.

        Raises ``RuntimeError`` when the pool is closed.
        """
        if self.closed:
            raise self._closed_error()
        if not self.line and self.taken < self.limit:
            self.taken += 1
            return True
        return False

    def enter(self, timeout: float | None, what: str = 'submit()') -> None:
        """Take a place, waiting in line while there is none. *Switchpoint.*

        Raises :class:`~gruvi_gevent.Timeout` when *timeout* (seconds; None:
        no limit) passes first, and ``RuntimeError`` when the pool is closed.
        """
        with self.lock:
            if self._take_free_place():
                return
        ticket = _Ticket(new_waker())
        with self.lock:
            # Checked again: a place may have come free meanwhile.
            if self._take_free_place():
                return
            self.line.append(ticket)
        try:
            self._park(ticket, timeout)
        except BaseException:
            # Killed while waiting: a place handed over meanwhile goes back.
            if self._leave(ticket) == _ADMITTED:
                self.release()
            raise
        state = self._leave(ticket)
        if state == _ADMITTED:
            return
        if state == _REFUSED:
            raise self._closed_error()
        raise Timeout('pool %s: %s found no room for a job within %.3g seconds'
                      % (self.pool_name, what, timeout or 0.0))

    @staticmethod
    def _park(ticket: _Ticket, timeout: float | None) -> None:
        """Wait until the ticket leaves the waiting state or *timeout* passes."""
        ticket.waker.wait_for(lambda: ticket.state != _WAITING, timeout)

    def _leave(self, ticket: _Ticket) -> int:
        """Take the ticket out of the line if it still waits; return its final state."""
        with self.lock:
            if ticket.state == _WAITING:
                self.line.remove(ticket)
                ticket.state = _GAVE_UP
            return ticket.state

    def release(self) -> None:
        """Give a place back: to the first in line, if anyone waits. Any thread."""
        with self.lock:
            if not self.line:
                self.taken -= 1
                return
            ticket = self.line.popleft()
            ticket.state = _ADMITTED     # the place passes on: taken stays
        ticket.waker()

    def close(self) -> None:
        """Refuse every submitter in line, and every one to come."""
        with self.lock:
            self.closed = True
            refused = list(self.line)
            self.line.clear()
            for ticket in refused:
                ticket.state = _REFUSED
        for ticket in refused:
            ticket.waker()

    def _closed_error(self) -> RuntimeError:
        return RuntimeError('pool %s is closed' % self.pool_name)
