"""gruvi_gevent: Gruvi's futures API on gevent.

Asynchronous function calls: submit work to a :class:`FiberPool` (greenlets)
or a :class:`ThreadPool` (OS threads), get a :class:`Future` back, and wait on
futures and gevent's own objects with :func:`wait` and :func:`as_completed`.
"""

from .errors import Cancelled, Error, Timeout
from .future import Future
from .waiting import as_completed, wait
from . import adapters  # noqa: F401  (registers the IWaitable adapters)

__all__ = ['Future', 'wait', 'as_completed', 'Error', 'Timeout', 'Cancelled']
