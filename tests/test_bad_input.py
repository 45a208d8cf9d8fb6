"""Bad input to every public callable and constructor.

One table: each row calls something public with a wrong type or value and
names the exception it must raise and the argument its message must name.
Every call must raise right there (``as_completed`` included, not on the first
``next()``) and leave nothing behind: no callback registered on the valid
objects passed along, no job queued, no worker started, no pool number used.
"""

import gevent.event
import pytest

from gruvi_gevent import (ExecutorPool, FiberPool, Future, PoolBase, ProcessPool, ThreadPool,
                          as_completed, blocking, get_io_pool, wait)
from gruvi_gevent.adapters import ConcurrentFutureWaitable, GeventWaitable

from latches import UndeclaredWaitable

NAN = float('nan')


def generator(ctx):
    yield ctx.future


class Context:
    """The valid objects a bad call is made with, and the checks that they are untouched."""

    def __init__(self):
        self.future = Future()
        self.other = Future()
        self.waitable = UndeclaredWaitable()
        self.event = gevent.event.Event()
        self.fibers = FiberPool(2)
        self.threads = ThreadPool(2)

    def valid(self):
        """A list of valid, pending waitables of every kind."""
        return [self.future, self.waitable, self.event, self.other, self.future]

    def check_untouched(self):
        for future in (self.future, self.other):
            assert not future.done()
            assert future._callback_count() == 0, 'a callback was left on a valid future'
        assert self.waitable.add_count == 0, 'a callback was registered before the error'
        assert self.event.linkcount() == 0
        for pool in (self.fibers, self.threads):
            assert len(pool) == 0, 'a worker was started'
            assert pool._idle(), 'a job was queued'

    def close(self):
        self.fibers.close()
        self.threads.close()


def _map(pool_attr, *args, **kwargs):
    return lambda ctx: getattr(ctx, pool_attr).map(*args, **kwargs)


def _not_iterable_columns(ctx):
    return ctx.fibers.map(abs, [1, 2], 5)


def _failing_column():
    yield 1
    raise LookupError('the iterable failed')


# (id, call, exception, name the message must contain)
CASES = [
    # Future
    ('Future-args', lambda ctx: Future(1), TypeError, None),
    ('result-timeout-str', lambda ctx: ctx.future.result(timeout='1'), TypeError, 'timeout'),
    ('result-timeout-negative', lambda ctx: ctx.future.result(timeout=-1), ValueError, 'timeout'),
    ('result-timeout-nan', lambda ctx: ctx.future.result(timeout=NAN), ValueError, 'timeout'),
    ('result-timeout-minus-inf', lambda ctx: ctx.future.result(timeout=float('-inf')),
     ValueError, 'timeout'),
    ('result-timeout-bool', lambda ctx: ctx.future.result(timeout=True), TypeError, 'timeout'),
    ('exception-timeout-str', lambda ctx: ctx.future.exception(timeout='1'), TypeError,
     'timeout'),
    ('exception-timeout-negative', lambda ctx: ctx.future.exception(timeout=-0.5), ValueError,
     'timeout'),
    ('exception-timeout-nan', lambda ctx: ctx.future.exception(timeout=NAN), ValueError,
     'timeout'),
    ('add_done_callback-none', lambda ctx: ctx.future.add_done_callback(None), TypeError,
     'callback'),
    ('add_done_callback-int', lambda ctx: ctx.future.add_done_callback(42, 1), TypeError,
     'callback'),
    ('remove_done_callback-foreign', lambda ctx: ctx.future.remove_done_callback(object()),
     TypeError, 'handle'),
    ('remove_done_callback-callable', lambda ctx: ctx.future.remove_done_callback(print),
     TypeError, 'handle'),
    ('set_exception-str', lambda ctx: ctx.future.set_exception('boom'), TypeError, 'exception'),
    ('set_exception-class', lambda ctx: ctx.future.set_exception(ValueError), TypeError,
     'exception'),
    ('set_exception-none', lambda ctx: ctx.future.set_exception(None), TypeError, 'exception'),
    ('rawlink-none', lambda ctx: ctx.future.rawlink(None), TypeError, 'callback'),

    # wait() and as_completed(): the objects
    ('wait-int', lambda ctx: wait(5), TypeError, 'objects'),
    ('wait-none', lambda ctx: wait(None), TypeError, 'objects'),
    ('wait-single-future', lambda ctx: wait(ctx.future), TypeError, 'objects'),
    ('wait-str', lambda ctx: wait('ab'), TypeError, 'objects'),
    ('wait-bytes', lambda ctx: wait(b'ab'), TypeError, 'objects'),
    ('wait-generator', lambda ctx: wait(generator(ctx)), TypeError, 'objects'),
    ('wait-iterator', lambda ctx: wait(iter(ctx.valid())), TypeError, 'objects'),
    ('wait-none-in-list', lambda ctx: wait(ctx.valid() + [None]), TypeError, 'objects'),
    ('wait-object-in-list', lambda ctx: wait(ctx.valid() + [object()]), TypeError, 'objects'),
    ('wait-half-waitable', lambda ctx: wait(ctx.valid() + [HalfWaitable()]), TypeError,
     'objects'),
    ('as_completed-int', lambda ctx: as_completed(5), TypeError, 'objects'),
    ('as_completed-none', lambda ctx: as_completed(None), TypeError, 'objects'),
    ('as_completed-generator', lambda ctx: as_completed(generator(ctx)), TypeError, 'objects'),
    ('as_completed-none-in-list', lambda ctx: as_completed(ctx.valid() + [None]), TypeError,
     'objects'),
    ('as_completed-str-in-list', lambda ctx: as_completed(ctx.valid() + ['x']), TypeError,
     'objects'),

    # wait() and as_completed(): count and timeout
    ('wait-count-str', lambda ctx: wait(ctx.valid(), count='1'), TypeError, 'count'),
    ('wait-count-float', lambda ctx: wait(ctx.valid(), count=1.0), TypeError, 'count'),
    ('wait-count-bool', lambda ctx: wait(ctx.valid(), count=True), TypeError, 'count'),
    ('wait-count-negative', lambda ctx: wait(ctx.valid(), count=-1), ValueError, 'count'),
    ('wait-count-too-big', lambda ctx: wait(ctx.valid(), count=6), ValueError, 'count'),
    ('wait-timeout-str', lambda ctx: wait(ctx.valid(), timeout='1'), TypeError, 'timeout'),
    ('wait-timeout-negative', lambda ctx: wait(ctx.valid(), timeout=-1), ValueError, 'timeout'),
    ('wait-timeout-nan', lambda ctx: wait(ctx.valid(), timeout=NAN), ValueError, 'timeout'),
    ('as_completed-count-str', lambda ctx: as_completed(ctx.valid(), count='2'), TypeError,
     'count'),
    ('as_completed-count-negative', lambda ctx: as_completed(ctx.valid(), count=-2),
     ValueError, 'count'),
    ('as_completed-count-too-big', lambda ctx: as_completed(ctx.valid(), count=99),
     ValueError, 'count'),
    ('as_completed-timeout-negative', lambda ctx: as_completed(ctx.valid(), timeout=-1),
     ValueError, 'timeout'),
    ('as_completed-timeout-nan', lambda ctx: as_completed(ctx.valid(), timeout=NAN),
     ValueError, 'timeout'),
    ('as_completed-timeout-list', lambda ctx: as_completed(ctx.valid(), timeout=[1]),
     TypeError, 'timeout'),

    # Pool constructors
    ('FiberPool-maxsize-zero', lambda ctx: FiberPool(0), ValueError, 'maxsize'),
    ('FiberPool-maxsize-negative', lambda ctx: FiberPool(-3), ValueError, 'maxsize'),
    ('FiberPool-maxsize-str', lambda ctx: FiberPool('3'), TypeError, 'maxsize'),
    ('FiberPool-maxsize-float', lambda ctx: FiberPool(2.5), TypeError, 'maxsize'),
    ('FiberPool-maxsize-bool', lambda ctx: FiberPool(True), TypeError, 'maxsize'),
    ('FiberPool-minsize-negative', lambda ctx: FiberPool(2, -1), ValueError, 'minsize'),
    ('FiberPool-minsize-str', lambda ctx: FiberPool(2, '1'), TypeError, 'minsize'),
    ('FiberPool-minsize-none', lambda ctx: FiberPool(2, None), TypeError, 'minsize'),
    ('FiberPool-minsize-above-maxsize', lambda ctx: FiberPool(2, 3), ValueError, 'minsize'),
    ('FiberPool-name-int', lambda ctx: FiberPool(2, name=7), TypeError, 'name'),
    ('FiberPool-name-bytes', lambda ctx: FiberPool(2, name=b'io'), TypeError, 'name'),
    ('ThreadPool-maxsize-zero', lambda ctx: ThreadPool(0), ValueError, 'maxsize'),
    ('ThreadPool-maxsize-str', lambda ctx: ThreadPool('4'), TypeError, 'maxsize'),
    ('ThreadPool-maxsize-nan', lambda ctx: ThreadPool(NAN), TypeError, 'maxsize'),
    ('ThreadPool-minsize-float', lambda ctx: ThreadPool(4, 1.0), TypeError, 'minsize'),
    ('ThreadPool-minsize-above-maxsize', lambda ctx: ThreadPool(1, 2), ValueError, 'minsize'),
    ('ThreadPool-minsize-above-maxsize-keyword',
     lambda ctx: ThreadPool(maxsize=1, minsize=5), ValueError, 'minsize'),
    ('ThreadPool-name-list', lambda ctx: ThreadPool(name=['x']), TypeError, 'name'),
    ('ProcessPool-maxsize-zero', lambda ctx: ProcessPool(0), ValueError, 'maxsize'),
    ('ProcessPool-context-fork', lambda ctx: ProcessPool(context='fork'), ValueError,
     'context'),
    ('ProcessPool-initializer-int', lambda ctx: ProcessPool(initializer=1), TypeError,
     'initializer'),
    ('ProcessPool-max_tasks_per_child-zero', lambda ctx: ProcessPool(max_tasks_per_child=0),
     ValueError, 'max_tasks_per_child'),
    ('ExecutorPool-none', lambda ctx: ExecutorPool(None), TypeError, 'executor_or_factory'),
    ('ExecutorPool-maxsize-zero', lambda ctx: ExecutorPool(_no_executor, 0), ValueError,
     'maxsize'),
    ('PoolBase-maxsize-zero', lambda ctx: PoolBase(0), ValueError, 'maxsize'),
    ('PoolBase-name-int', lambda ctx: PoolBase(name=1), TypeError, 'name'),
    ('FiberPool-max-queued-negative', lambda ctx: FiberPool(2, max_queued=-1), ValueError,
     'max_queued'),
    ('FiberPool-max-queued-str', lambda ctx: FiberPool(2, max_queued='5'), TypeError,
     'max_queued'),
    ('FiberPool-max-queued-without-maxsize', lambda ctx: FiberPool(max_queued=5), ValueError,
     'max_queued'),
    ('ThreadPool-max-queued-bool', lambda ctx: ThreadPool(2, max_queued=True), TypeError,
     'max_queued'),
    ('ThreadPool-max-queued-float', lambda ctx: ThreadPool(2, max_queued=1.5), TypeError,
     'max_queued'),
    ('ThreadPool-queue-timeout-negative',
     lambda ctx: ThreadPool(2, max_queued=1, queue_timeout=-1), ValueError, 'queue_timeout'),
    ('FiberPool-queue-timeout-str', lambda ctx: FiberPool(2, max_queued=1, queue_timeout='1'),
     TypeError, 'queue_timeout'),
    ('PoolBase-max-queued-negative', lambda ctx: PoolBase(1, max_queued=-2), ValueError,
     'max_queued'),
    ('ProcessPool-max-queued-str', lambda ctx: ProcessPool(2, max_queued='1'), TypeError,
     'max_queued'),
    ('ExecutorPool-max-queued-without-maxsize',
     lambda ctx: ExecutorPool(_no_executor, max_queued=1), ValueError, 'max_queued'),
    ('ExecutorPool-queue-timeout-nan',
     lambda ctx: ExecutorPool(_no_executor, 1, max_queued=1, queue_timeout=float('nan')),
     ValueError, 'queue_timeout'),
    ('ThreadPool-sched-batch-int', lambda ctx: ThreadPool(1, sched_batch=1), TypeError,
     'sched_batch'),

    # submit(), map(), blocking()
    ('FiberPool-submit-none', lambda ctx: ctx.fibers.submit(None), TypeError, 'func'),
    ('FiberPool-submit-str', lambda ctx: ctx.fibers.submit('abs', 1), TypeError, 'func'),
    ('ThreadPool-submit-none', lambda ctx: ctx.threads.submit(None), TypeError, 'func'),
    ('ThreadPool-submit-int', lambda ctx: ctx.threads.submit(3, 4, key=5), TypeError, 'func'),
    ('FiberPool-map-func', _map('fibers', None, [1, 2]), TypeError, 'func'),
    ('ThreadPool-map-func', _map('threads', 'abs', [1, 2]), TypeError, 'func'),
    ('FiberPool-map-not-iterable', _map('fibers', abs, 5), TypeError, 'iterables'),
    ('ThreadPool-map-not-iterable', _map('threads', abs, None), TypeError, 'iterables'),
    ('FiberPool-map-second-not-iterable', _not_iterable_columns, TypeError, 'iterables'),
    ('FiberPool-map-lengths', _map('fibers', pow, [1, 2], [1]), ValueError, 'iterables'),
    ('ThreadPool-map-lengths', _map('threads', pow, [1], [1, 2, 3]), ValueError, 'iterables'),
    ('ThreadPool-map-failing-iterable', _map('threads', abs, _failing_column()), LookupError,
     None),
    ('FiberPool-map-timeout-negative', _map('fibers', abs, [1], timeout=-1), ValueError,
     'timeout'),
    ('ThreadPool-map-timeout-nan', _map('threads', abs, [1], timeout=NAN), ValueError,
     'timeout'),
    ('ThreadPool-map-timeout-str', _map('threads', abs, [1], timeout='1'), TypeError,
     'timeout'),
    ('blocking-none', lambda ctx: blocking(None), TypeError, 'func'),
    ('blocking-str', lambda ctx: blocking('print', 1), TypeError, 'func'),

    # The adapters of gevent's and the stdlib's objects
    ('GeventWaitable-callback', lambda ctx: GeventWaitable(ctx.event).add_done_callback(1),
     TypeError, 'callback'),
    ('ConcurrentFutureWaitable-callback',
     lambda ctx: ConcurrentFutureWaitable(_cf_future()).add_done_callback(None),
     TypeError, 'callback'),
]


class HalfWaitable:
    """Has add_done_callback but no remove_done_callback: not a waitable."""

    def add_done_callback(self, callback, *args):
        raise AssertionError('must not be called')


def _no_executor():
    raise AssertionError('a refused pool must not make its executor')


def _cf_future():
    import concurrent.futures
    return concurrent.futures.Future()


@pytest.fixture
def ctx():
    context = Context()
    yield context
    context.close()


def _next_number(cls):
    pool = cls(1)
    number = int(pool.name.rsplit('-', 1)[1])
    pool.close()
    return number


@pytest.mark.parametrize('call, exc_type, name',
                         [pytest.param(call, exc, name, id=case_id)
                          for case_id, call, exc, name in CASES])
def test_bad_input(ctx, call, exc_type, name):
    io_threads = len(get_io_pool())
    numbers = {cls: _next_number(cls) for cls in (FiberPool, ThreadPool)}
    with pytest.raises(exc_type) as info:
        call(ctx)
    if name is not None:
        assert name in str(info.value), 'the message does not name %r: %s' % (name, info.value)
    ctx.check_untouched()
    assert len(get_io_pool()) == io_threads
    # A failed constructor used no pool number.
    for cls, number in numbers.items():
        assert _next_number(cls) == number + 1


def test_table_covers_every_public_callable():
    import gruvi_gevent
    covered = {case_id.split('-')[0] for case_id, _, _, _ in CASES}
    # The pool factories and stop_idle_threads() take no arguments at all;
    # the exceptions are classes. PoolStats is a snapshot the pools make, not
    # an API that takes input.
    exempt = {'get_io_pool', 'get_cpu_pool', 'get_process_pool', 'stop_idle_threads',
              'Error', 'Timeout', 'Cancelled', 'PoolStats'}
    needed = {'Future', 'wait', 'as_completed', 'FiberPool', 'ThreadPool', 'PoolBase',
              'ProcessPool', 'ExecutorPool', 'blocking'}
    assert set(gruvi_gevent.__all__) - exempt == needed
    for name in needed:
        assert name in covered, name


@pytest.mark.parametrize('bad', [pytest.param(5, id='int'), pytest.param(None, id='none'),
                                 pytest.param([None], id='none-in-list')])
def test_as_completed_raises_at_the_call_not_on_next(ctx, bad):
    # The generator is never created, so nothing can be registered later either.
    with pytest.raises(TypeError):
        as_completed(bad)
    ctx.check_untouched()


def test_valid_calls_after_bad_ones_still_work(ctx):
    # The objects passed along with the bad one are fully usable afterwards.
    with pytest.raises(TypeError):
        wait([ctx.future, ctx.other, None])
    ctx.future.set_result(1)
    ctx.other.set_result(2)
    done, pending = wait([ctx.future, ctx.other], timeout=10)
    assert done == [ctx.future, ctx.other] and pending == []
    assert ctx.fibers.submit(abs, -1).result(timeout=10) == 1
    assert list(ctx.threads.map(abs, [-1, -2], timeout=10)) == [1, 2]
