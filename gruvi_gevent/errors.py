"""The exceptions of gruvi_gevent.

``Error`` is the base of everything the library raises on its own account.
``Cancelled`` deliberately is *not* an ``Error``: it derives from
``BaseException`` so that a job's ``except Exception:`` does not swallow the
cancellation that is meant to stop it (Gruvi and asyncio made the same choice).
"""

__all__ = ['Error', 'Timeout', 'Cancelled']


class Error(Exception):
    """Base class of the errors raised by gruvi_gevent."""


class Timeout(Error, TimeoutError):
    """A timeout passed before the awaited thing happened.

    Also a :class:`TimeoutError`, so code that catches the builtin catches it.
    """


class Cancelled(BaseException):
    """The asynchronous function call was cancelled.

    ``Future.result()`` of a cancelled future raises it, ``Future.exception()``
    returns it, and a fiber job that is cancelled while running has it raised
    at its current switchpoint.
    """
