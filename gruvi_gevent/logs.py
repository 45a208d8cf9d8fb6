"""The ``gruvi_gevent`` logger, and logging that is safe from native threads.

Under ``monkey.patch_all()`` a logging handler's lock is a greenlet lock, and
a native thread that takes a greenlet lock also taken by greenlets can hang
for good. So code that may run in a pool thread never logs there: it calls
:func:`log`, which hands the record to the main thread's hub when the
process is monkey-patched and the caller is a native thread with no hub.
"""

import collections
import logging
from typing import Any

from gevent import monkey
from gevent._hub_local import get_hub_if_exists

from .wakeup import hub_channel


__all__ = ['logger', 'log', 'note_hub']

logger = logging.getLogger('gruvi_gevent')

_main_hub: Any = None      # the hub of the main thread, once known
# (level, msg, args, exc_info) waiting for the main hub
_relayed: 'collections.deque[tuple[int, str, tuple[Any, ...], Any]]' = collections.deque()


def _flush() -> None:
    while _relayed:
        level, msg, args, exc_info = _relayed.popleft()
        logger.log(level, msg, *args, exc_info=exc_info)


def note_hub(hub: Any) -> None:
    """Remember *hub* as the relay for native threads if it is the main thread's."""
    global _main_hub
    if hub.main_hub:
        hub_channel(hub)    # made on the hub's thread, for _flush from other threads
        _main_hub = hub


def log(level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
    """Log *msg % args* at *level* on the ``gruvi_gevent`` logger, from any thread.

    In a monkey-patched process, a record made anywhere but in the main
    thread's hub is handed to that hub, once it is known (see :func:`note_hub`).
    """
    if not logger.isEnabledFor(level):
        return
    if not monkey.is_module_patched('threading'):
        logger.log(level, msg, *args, exc_info=exc_info)
        return
    hub = get_hub_if_exists()
    if hub is not None and hub.main_hub:
        note_hub(hub)
        logger.log(level, msg, *args, exc_info=exc_info)
        return
    main_hub = _main_hub
    if main_hub is None or main_hub.loop is None:
        # No hub to hand the record to: log here and hope for the best.
        logger.log(level, msg, *args, exc_info=exc_info)
        return
    _relayed.append((level, msg, args, exc_info))
    hub_channel(main_hub).call(_flush)
