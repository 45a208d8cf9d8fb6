"""Naming a pool thread, for ``threading`` and, where the platform allows, for the OS.

Pool threads are raw threads started by ``gevent.threadpool``: ``threading``
meets them only when something asks for ``threading.current_thread()`` (a log
record does), and then calls them ``Dummy-1``, ``Dummy-2``, ... and keeps them
in ``threading.enumerate()`` for good. :func:`run_named` gives the thread its
pool's name for as long as a worker runs in it, so that ``threading.enumerate()``,
log records (``%(threadName)s``) and stack dumps show ``Io-1``, and takes it
out of ``threading``'s table again when the worker exits. On Linux the OS
thread gets the name too (what ``top -H``, ``ps -L`` and ``py-spy dump``
show), cut to the 15 bytes the kernel keeps.
"""

import ctypes
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ['run_named', 'os_thread_name']

# Linux keeps 16 bytes of a thread's name (TASK_COMM_LEN), the last one a NUL.
_OS_NAME_BYTES = 15


def _load_setname() -> Callable[[bytes], object] | None:
    """Return a function that names the calling OS thread, or None where we cannot."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(None)
        setname = libc.pthread_setname_np
        self_ = libc.pthread_self
    except (OSError, AttributeError):
        return None
    self_.restype = ctypes.c_ulong
    self_.argtypes = ()
    setname.restype = ctypes.c_int
    setname.argtypes = (ctypes.c_ulong, ctypes.c_char_p)
    return lambda name: setname(self_(), name)


_setname = _load_setname()


def os_thread_name(name: str) -> bytes:
    """Return *name* cut to what the OS keeps; a trailing ``-<n>`` is kept whole."""
    encoded = name.encode('utf-8', 'replace')
    if len(encoded) <= _OS_NAME_BYTES:
        return encoded
    head, sep, number = encoded.rpartition(b'-')
    tail = sep + number if sep and number.isdigit() and len(number) < 8 else b''
    head = (head if tail else encoded)[:_OS_NAME_BYTES - len(tail)]
    # Do not leave half of a UTF-8 character behind.
    head = head.decode('utf-8', 'ignore').encode('utf-8')
    return head + tail


def run_named(name: str, func: Callable[[], Any]) -> None:
    """Call ``func()`` in the calling thread, known as *name* while it runs."""
    ident = threading.get_ident()
    existing = threading._active.get(ident)    # type: ignore[attr-defined]
    thread = threading.current_thread()
    old_name = thread.name
    thread.name = name
    if _setname is not None:
        _setname(os_thread_name(name))
    try:
        func()
    finally:
        if existing is None:
            # Made just now for this thread: the table would keep it for good.
            threading._active.pop(ident, None)    # type: ignore[attr-defined]
        else:
            thread.name = old_name
