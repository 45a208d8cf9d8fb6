"""What a type checker must infer from the public annotations.

Not a test module (pytest does not collect it, and nothing here is meant to
run): ``make typecheck``, and so ``make test``, runs mypy over this file and
the package. Each ``assert_type(value, T)`` fails the check unless mypy
infers exactly ``T`` for *value*. A line that must be *refused* carries a
``# type: ignore[code]``: mypy is configured to report unused ignores, so if
such a line ever type-checks, the ignore is unused and the check fails.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from gruvi_gevent import (
    Cancelled, FiberPool, Future, PoolBase, ThreadPool, Timeout, as_completed,
    blocking, get_cpu_pool, get_io_pool, wait,
)
from gruvi_gevent.testing import (
    CountingProxy, RecordingWaitable, WaitableConformance, check_waitable,
    run_in_greenlet, run_in_native_thread, waitable_of,
)

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value, expected_type):
        return value


def answer() -> int:
    return 42


def encode(text: str, repeat: int = 1) -> bytes:
    return text.encode() * repeat


def describe(number: int) -> str:
    return str(number)


def add(a: int, b: float) -> float:
    return a + b


def check_submit(fibers: FiberPool, threads: ThreadPool, pool: PoolBase) -> None:
    # submit() returns a Future of the function's return type, from any pool.
    assert_type(fibers.submit(answer), Future[int])
    assert_type(threads.submit(answer), Future[int])
    assert_type(pool.submit(answer), Future[int])
    assert_type(fibers.submit(encode, 'x'), Future[bytes])
    assert_type(threads.submit(encode, 'x', repeat=3), Future[bytes])
    assert_type(fibers.submit(lambda: 'text'), Future[str])
    assert_type(fibers.submit(answer).result(), int)
    assert_type(threads.submit(encode, 'x').result(timeout=1.5), bytes)

    # The arguments are checked against the function's parameters.
    fibers.submit(encode, 1)            # type: ignore[arg-type]
    threads.submit(encode)              # type: ignore[call-arg]
    fibers.submit(answer, 'extra')      # type: ignore[call-arg]
    threads.submit(encode, 'x', times=2)  # type: ignore[call-arg]


def check_map(pool: FiberPool) -> None:
    results = pool.map(describe, [1, 2, 3], timeout=10)
    assert_type(results, Generator[str, None, None])
    for text in results:
        assert_type(text, str)
    assert_type(list(pool.map(add, [1, 2], [0.5, 1.5])), list[float])


def check_pool_attributes() -> None:
    with FiberPool(10, name='workers') as fibers:
        assert_type(fibers, FiberPool)
        assert_type(fibers.maxsize, int | None)
        assert_type(fibers.minsize, int)
        assert_type(fibers.name, str)
        assert_type(len(fibers), int)
        assert_type(fibers.join(), bool)
    with ThreadPool(minsize=1) as threads:
        assert_type(threads, ThreadPool)
        assert_type(threads.idle_timeout, float)
        assert_type(threads.close(), bool)
    FiberPool(maxsize='ten')            # type: ignore[arg-type]


def check_blocking() -> None:
    assert_type(get_io_pool(), ThreadPool)
    assert_type(get_cpu_pool(), ThreadPool)
    assert_type(blocking(answer), int)
    assert_type(blocking(encode, 'x', repeat=2), bytes)
    assert_type(get_io_pool().submit(answer), Future[int])
    blocking(encode)                    # type: ignore[call-arg]
    blocking(encode, b'x')              # type: ignore[arg-type]


def check_future() -> None:
    future: Future[int] = Future()
    assert_type(future.done(), bool)
    assert_type(future.running(), bool)
    assert_type(future.cancelled(), bool)
    assert_type(future.cancel(), bool)
    assert_type(future.set_running(can_cancel=True), bool)
    future.set_result(1)
    future.set_exception(Cancelled())
    future.set_exception(Timeout('late'))
    assert_type(future.result(), int)
    assert_type(future.exception(), BaseException | None)
    handle = future.add_done_callback(print, 'done')
    future.remove_done_callback(handle)
    future.rawlink(lambda done: assert_type(done, Future[int]))

    future.set_result('one')            # type: ignore[arg-type]
    future.set_exception('boom')        # type: ignore[arg-type]
    untyped = Future()                  # type: ignore[var-annotated]


def check_wait(first: Future[int], second: Future[int],
               other: concurrent.futures.Future[str]) -> None:
    done, pending = wait([first, second], count=1, timeout=5)
    assert_type(done, list[Future[int]])
    assert_type(pending, list[Future[int]])
    for future in as_completed([first, second], timeout=5):
        assert_type(future, Future[int])
        assert_type(future.result(), int)
    generator = as_completed((first, second))
    assert_type(generator, Generator[Future[int], None, None])
    generator.close()
    # Any mix of waitables: the objects come back as the common type.
    mixed_done, _ = wait([first, other])
    assert_type(mixed_done, list[object])
    wait([first], count='all')          # type: ignore[arg-type]


def check_testing_helpers() -> None:
    assert_type(run_in_greenlet(answer), int)
    assert_type(run_in_greenlet(encode, 'x', timeout=None), bytes)
    assert_type(run_in_native_thread(answer), Future[int])
    assert_type(run_in_native_thread(encode, 'x', repeat=2), Future[bytes])
    run_in_native_thread(encode)        # type: ignore[call-arg]

    waitable = RecordingWaitable()
    assert_type(waitable.ready, bool)
    assert_type(waitable.make_ready(), bool)
    assert_type(waitable.make_ready_from_thread(), Future[bool])
    assert_type(waitable.live_count, int)
    assert_type(waitable.wait_registered(1, timeout=2), None)
    proxy = CountingProxy(waitable)
    assert_type(proxy.stray_calls, int)
    assert_type(waitable_of(proxy), Any)

    # The kit's make_ready() takes what make() returns.
    check_waitable(RecordingWaitable, RecordingWaitable.make_ready,
                   lambda obj: obj.make_ready(), timeout=5)
    check_waitable(Future, Future.cancel)


def make_ready_text(text: str) -> None:
    pass


def check_kit_mismatch() -> None:
    check_waitable(RecordingWaitable, make_ready_text)  # type: ignore[misc]


class CheckConformance(WaitableConformance):
    """A conformance test class as a user writes one type-checks as it is."""

    timeout = 2.0

    def make(self) -> RecordingWaitable:
        return RecordingWaitable()

    def make_ready(self, obj: RecordingWaitable) -> None:
        obj.make_ready()

    def make_ready_from_thread(self, obj: RecordingWaitable) -> None:
        obj.make_ready()
