"""The ``gruvi_gevent`` logger, and :func:`log`, callable from any thread.

Records are logged where they are made, pool threads included. Under
``gevent.monkey.patch_all()`` that is safe because the library swaps the
locks of ``logging`` and its handlers for locks that greenlets and native
threads can share (see :mod:`gruvi_gevent.monkey`); gevent's own would hang
a pool thread.
"""

import logging
from typing import Any

__all__ = ['logger', 'log']

logger = logging.getLogger('gruvi_gevent')


def log(level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
    """Log *msg % args* at *level* on the ``gruvi_gevent`` logger, from any thread."""
    logger.log(level, msg, *args, exc_info=exc_info)
