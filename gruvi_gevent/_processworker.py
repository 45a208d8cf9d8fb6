"""The worker side of ProcessPool, and the messages both sides exchange.

A worker process holds one end of a Unix socketpair; the pool holds the
other. Each side sends one message at a time and waits for the answer: a job
goes out, its outcome comes back. A message is a fixed header (its kind, the
number of out-of-band buffers, the length of the pickle), the lengths of
those buffers, the pickle, then the buffers themselves. Pickles use protocol
5 with out-of-band buffers, so a big ``bytearray`` or NumPy array travels as
itself, never copied into the pickle.

The functions here work with any socket object that has ``sendall`` and
``recv_into``: the worker uses a plain blocking socket, the pool a gevent
socket, on which every wait parks only the calling greenlet.

cloudpickle, when it is installed, pickles the jobs and their outcomes, so
that lambdas, local functions and functions of the main script travel by
value; without it the standard pickle is used.
"""

import pickle
import struct
import traceback
from collections.abc import Callable
from typing import Any

import _socket

from .errors import Error

try:
    import cloudpickle
except ImportError:    # optional: the standard pickle does the rest
    cloudpickle = None

__all__ = ['JOB', 'RESULT', 'RAISED', 'job', 'by_value', 'pack', 'send', 'receive', 'load', 'main']

# The kinds of message.
JOB = 0       # the pool asks: (func, args, kwargs)
RESULT = 1    # the worker answers: the return value
RAISED = 2    # the worker answers: (exception, the worker's traceback as text)

_HEADER = struct.Struct('!BIQ')   # kind, number of out-of-band buffers, pickle length
_LENGTH = struct.Struct('!Q')     # the length of one out-of-band buffer
_PROTOCOL = 5
# Pickles up to this size travel in one piece with their header.
_SMALL = 1 << 16

#: The pickling function: cloudpickle's when it is installed.
dumps: Callable[..., bytes] = pickle.dumps if cloudpickle is None else cloudpickle.dumps


class _OutOfBand:
    """A big ``bytes`` or ``bytearray`` object, pickled out of band.

    Protocol 5 sends only ``PickleBuffer`` objects (NumPy's arrays make
    them) out of band, and the pickler has no hook for ``bytes`` and
    ``bytearray``: arguments and results of those types travel wrapped in
    this, never copied into the pickle (a copy that would hold the hub for
    as long as it takes).
    """

    __slots__ = ('data',)   # the bytes or bytearray object

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return type(self.data), (pickle.PickleBuffer(self.data),)


def _big(value: Any) -> bool:
    return (type(value) is bytes or type(value) is bytearray) and len(value) > _SMALL


def job(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What a JOB message carries: big ``bytes`` arguments marked to travel out of band.

    Pass it to :func:`pack` with *by_value* ``by_value(func)``.
    """
    if any(map(_big, args)):
        args = tuple(_OutOfBand(arg) if _big(arg) else arg for arg in args)
    if kwargs and any(map(_big, kwargs.values())):
        kwargs = {key: _OutOfBand(value) if _big(value) else value
                  for key, value in kwargs.items()}
    return func, args, kwargs


def by_value(func: object) -> bool:
    """Whether *func* must travel by value: it belongs to the main script.

    The standard pickle would name it ``__main__.name``, which a worker finds
    only when the main script is a file it can import again.
    """
    return getattr(func, '__module__', None) == '__main__'


def _pickle(obj: object, buffers: list[pickle.PickleBuffer], by_value: bool) -> bytes:
    """The standard pickle where it can (it is several times faster), else cloudpickle."""
    if cloudpickle is not None:
        if not by_value:
            try:
                return pickle.dumps(obj, protocol=_PROTOCOL, buffer_callback=buffers.append)
            except Exception:       # a lambda, a local function, ...
                buffers.clear()
        return cloudpickle.dumps(obj, protocol=_PROTOCOL, buffer_callback=buffers.append)
    return pickle.dumps(obj, protocol=_PROTOCOL, buffer_callback=buffers.append)


def pack(kind: int, obj: object, by_value: bool = False) -> list[Any]:
    """Return the pieces of one message carrying *obj*; raises what pickling raises.

    *by_value*: pickle it with cloudpickle, when installed, from the start.
    """
    buffers: list[pickle.PickleBuffer] = []
    data = _pickle(obj, buffers, by_value)
    raws = [buffer.raw() for buffer in buffers]
    header = _HEADER.pack(kind, len(raws), len(data))
    if raws:
        header += b''.join([_LENGTH.pack(raw.nbytes) for raw in raws])
    if len(data) <= _SMALL:
        return [header + data, *raws]
    return [header, data, *raws]


def send(sock: Any, pieces: list[Any]) -> None:
    """Send one message (see :func:`pack`). *Switchpoint* on a gevent socket."""
    for piece in pieces:
        sock.sendall(piece)


def _receive_exactly(sock: Any, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    position = 0
    while position < size:
        count = sock.recv_into(view[position:])
        if not count:
            raise EOFError('the other end of the socket closed')
        position += count
    return buffer


def receive(sock: Any) -> tuple[int, memoryview, list[bytearray]]:
    """Receive one message: its kind, its pickle and its out-of-band buffers.

    *Switchpoint* on a gevent socket. Raises ``EOFError`` when the other end
    closes (or dies) before a whole message arrived.
    """
    kind, count, size = _HEADER.unpack(_receive_exactly(sock, _HEADER.size))
    body = _receive_exactly(sock, count * _LENGTH.size + size)
    lengths = struct.unpack_from('!%dQ' % count, body) if count else ()
    data = memoryview(body)[count * _LENGTH.size:]
    return kind, data, [_receive_exactly(sock, length) for length in lengths]


def load(data: memoryview, buffers: list[bytearray]) -> Any:
    """Unpickle what :func:`receive` returned."""
    return pickle.loads(data, buffers=buffers)


def name_of(func: object) -> str:
    """A readable name for *func* in error messages."""
    return getattr(func, '__qualname__', None) or repr(func)


def _raised(exc: BaseException, func: object) -> list[Any]:
    """The answer for a job that raised *exc*: the exception and its traceback."""
    text = ''.join(traceback.format_exception(exc))
    try:
        return pack(RAISED, (exc, text))
    except Exception as error:
        substitute = Error('%s raised %s, which cannot be pickled (%s: %s): %s'
                           % (name_of(func), type(exc).__name__, type(error).__name__,
                              error, exc))
        return pack(RAISED, (substitute, text))


def _run(data: memoryview, buffers: list[bytearray]) -> list[Any]:
    """Run one job; return the answer to send back."""
    try:
        func, args, kwargs = load(data, buffers)
    except BaseException as exc:
        error = pickle.UnpicklingError('cannot unpickle the job in the worker process: '
                                       '%s: %s' % (type(exc).__name__, exc))
        error.__cause__ = exc
        return _raised(error, None)
    del data, buffers
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:
        return _raised(exc, func)
    del args, kwargs
    try:
        return pack(RESULT, _OutOfBand(result) if _big(result) else result)
    except Exception as exc:
        unpicklable = pickle.PicklingError('cannot pickle the result of %s (a %s): %s: %s'
                                           % (name_of(func), type(result).__name__,
                                              type(exc).__name__, exc))
        unpicklable.__cause__ = exc
        return _raised(unpicklable, func)


def main(fd: int, setup: bytes | None, max_tasks: int | None) -> None:
    """The worker process: run jobs from the socket *fd* until the pool closes it.

    *setup* is the pickled ``(initializer, initargs)``, or None. A worker whose
    initializer failed answers its first job with that failure and exits.
    After *max_tasks* jobs (None: no limit) it exits; so does the pool's side.
    """
    sock = _socket.socket(fileno=fd)
    failed = None
    if setup is not None:
        try:
            initializer, initargs = pickle.loads(setup)
            initializer(*initargs)
        except BaseException as exc:
            failed = Error('the initializer of the worker process failed: %s: %s'
                           % (type(exc).__name__, exc))
            failed.__cause__ = exc
    done = 0
    while max_tasks is None or done < max_tasks:
        try:
            _kind, data, buffers = receive(sock)
        except EOFError:
            return
        if failed is not None:
            send(sock, _raised(failed, None))
            return
        answer = _run(data, buffers)
        del data, buffers
        send(sock, answer)
        del answer
        done += 1
