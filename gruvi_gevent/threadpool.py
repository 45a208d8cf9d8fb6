"""ThreadPool: a pool of OS threads started through ``gevent.threadpool``.

Each worker is one long-lived task spawned on a ``gevent.threadpool.ThreadPool``
(a real OS thread even under monkey patching). The task runs a loop that
takes jobs from an original, C-level ``SimpleQueue`` and completes their
futures itself: a job costs no ``AsyncResult`` and no async watcher, only a
wake-up of whoever waits on its future.

gevent's pools may only be used on their hub's thread: every worker thread
is started by one thread of the library's, the spawner (see
:mod:`gruvi_gevent._spawner`), on its own hub.

No pool thread ever takes a lock that greenlets also take: the pool's lock,
its queue and the futures' lock are original OS primitives. Under monkey
patching, the locks that legacy code running in the pool shares with greenlets
(logging's among them) are the library's own (see :mod:`gruvi_gevent.monkey`).
"""

import itertools
import os
import weakref
from collections.abc import Callable
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from gevent import monkey
from greenlet import getcurrent

from .errors import Error
from ._job import EMPTY_CONTEXT, NO_KWARGS, run_job
from .future import _CANCELLED, _DONE, _FAILED, Future, _run_callbacks
from .pool import PoolBase, PoolStats
from ._spawner import start_thread_soon
from ._wakeup import GreenletWaker, HubChannel, allocate_lock, get_ident, hub_channel, new_waker

if TYPE_CHECKING:
    import queue

__all__ = ['ThreadPool']

T = TypeVar('T')
P = ParamSpec('P')

SimpleQueue: 'type[queue.SimpleQueue[Any]]' = monkey.get_original('_queue', 'SimpleQueue')
Empty: 'type[queue.Empty]' = monkey.get_original('_queue', 'Empty')

_live_pools: 'weakref.WeakSet[ThreadPool]' = weakref.WeakSet()

# The exit marker of an idle thread that _retire() took off the pool's count.
_RETIRED = object()

_get_native_id: Callable[[], int] = monkey.get_original('_thread', 'get_native_id')

# Per-thread storage of the original thread module: a thread's value goes
# when the thread's state is cleared at its exit, even under monkey patching.
_thread_data: Any = monkey.get_original('_thread', '_local')()


class _GoneLock:
    """Kept in a thread's storage: releases an OS lock when the thread is gone.

    What ``threading.Thread.join()`` waits for, for threads that ``threading``
    did not start: the thread's state is cleared at its very end, after
    gevent's epilogue (which destroys the thread's hub, if a job made one).
    """

    __slots__ = ('lock',)   # an OS lock, held until the thread's storage is cleared

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.lock.acquire()

    def __del__(self) -> None:
        self.lock.release()


class _IdleStop:
    """Exit markers that stop a pool's idle threads; see ThreadPool._stop_idle_threads."""

    __slots__ = ('count',       # how many threads are to leave
                 'native_ids',  # OS ids of the threads that took a marker; under the pool's lock
                 'all_taken')   # an OS lock, held until every marker has been taken

    def __init__(self, count: int) -> None:
        self.count = count
        self.native_ids: list[int] = []
        self.all_taken = allocate_lock()
        self.all_taken.acquire()


class ThreadPool(PoolBase):
    """A pool that uses thread workers (OS threads from ``gevent.threadpool``).

    *maxsize* None means threads are created on demand without a bound.
    ``submit()`` may be called from any native thread; results wake whoever
    waits, in any thread, and a waiting greenlet never blocks its hub.

    **Cancellation:** a pending job can be cancelled, and then never runs. A
    running job cannot be cancelled (``cancel()`` returns False).

    **Exceptions from jobs:** every exception, ``KeyboardInterrupt`` and
    ``SystemExit`` included, goes to the job's future and nowhere else (a
    worker thread has no one else to give it to); the worker stays. Whoever
    calls ``result()`` gets it re-raised, so an unhandled ``SystemExit`` still
    stops the process there.

    **Scheduling:** on Linux the worker threads run under the ``SCHED_BATCH``
    policy (keyword-only *sched_batch*, True by default): a worker woken for
    a job does not preempt the thread that queued it. Under the GIL it could
    not run before that thread -- a hub on its way to park -- lets go of the
    GIL anyway, and the preemption costs two context switches per job: a
    round trip through a worker on the hub's CPU takes a quarter less time.
    Threads and processes started by a job inherit the policy (it shares
    the CPU as fairly as the default; only wake-ups differ); pass
    ``sched_batch=False`` to keep the default policy. Elsewhere it is ignored.
    """

    def __init__(self, maxsize: int | None = None, minsize: int = 0,
                 name: str | None = None, *, max_queued: int | None = None,
                 queue_timeout: float | None = None, sched_batch: bool = True) -> None:
        if not isinstance(sched_batch, bool):
            raise TypeError('sched_batch must be a bool, got %r' % (sched_batch,))
        super().__init__(maxsize, minsize, name, max_queued=max_queued,
                         queue_timeout=queue_timeout)
        self._sched_batch = sched_batch
        self._jobs = SimpleQueue()      # (future, func, args, kwargs, context), or None: exit
        self._outcomes = [0] * (_CANCELLED + 1)   # finished jobs by future state; under _lock
        self._thread_numbers = itertools.count(1)   # numbers the threads (next() is atomic)
        self._reset_state()
        _live_pools.add(self)
        self._register_for_exit()
        for _ in range(minsize):
            with self._lock:
                self._nworkers += 1
            self._spawn_worker()

    def _reset_state(self) -> None:
        self._lock = allocate_lock()    # guards the counters below
        self._nworkers = 0              # live worker threads (started or starting)
        self._unfinished = 0            # jobs submitted and not yet completed
        # worker thread ident -> its running job's Future, or its blocking() job
        self._current: dict[int, Any] = {}
        self._gone: list[Any] = []      # _GoneLock locks of threads that ran here
        self._own_waiters = 0           # pool threads waiting on a pending job of this pool

    def __len__(self) -> int:
        return self._nworkers

    def submit(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if not callable(func):
            self._check_submit(func)
        if self._bound is not None:
            return self._submit_bounded(func, args, kwargs)
        future: Future[T] = Future()
        future._result = self      # its owner, while pending: see _wait_in_own_job
        # Run in a copy of the submitter's context, as asyncio.to_thread does.
        self._enqueue((future, func, args, kwargs or NO_KWARGS,
                       copy_context() or EMPTY_CONTEXT))
        return future

    def _enqueue(self, job: tuple[Any, ...]) -> None:
        with self._lock:
            if self._closing:
                # Checked under the lock: close() counts the threads to stop under it.
                self._check_submit(job[1])
            self._unfinished += 1
            grow = self._unfinished > self._nworkers and self._nworkers < self._limit
            if grow:
                self._nworkers += 1
            # Queued under the lock, so that it is ahead of the exit markers
            # that a concurrent close() queues.
            self._jobs.put(job)
        if grow:
            self._spawn_worker()

    def _call_from_thread(self, func: Callable[..., T], args: tuple[Any, ...],
                          kwargs: dict[str, Any], context: Context) -> T:
        """blocking() from a native thread with no hub: submit, and block that thread."""
        future: Future[T] = Future()
        waker = new_waker()
        future._add(waker)
        job = (future, func, args, kwargs, context)
        try:
            self._enqueue(job)
            waker.wait_for(future.done)
        finally:
            if future._state < _DONE:
                future._remove(waker)
        if future._state == _DONE:
            return future._result
        try:
            return future.result()
        finally:
            # The traceback holds this frame: break future -> exception ->
            # traceback -> frame -> future (job holds the future too).
            del future, job

    submit.__doc__ = PoolBase.submit.__doc__

    def _spawn_worker(self) -> None:
        """Have the spawner start one worker thread; returns at once.

        The caller has counted it in ``_nworkers`` already.
        """
        try:
            start_thread_soon(self._work, self._next_thread_name(), self._worker_not_started,
                              self)
        except BaseException:
            self._worker_not_started()
            raise

    def _next_thread_name(self) -> str:
        """Return the name of the next worker thread: ``<pool name>-<n>``."""
        return '%s-%d' % (self._name, next(self._thread_numbers))

    def _worker_not_started(self) -> None:
        """The OS refused a thread: uncount it, and if no thread is left to
        run the queued jobs, fail them rather than leave them pending."""
        with self._lock:
            self._nworkers -= 1
            stranded = self._nworkers == 0
        if not stranded:
            return
        error = Error('pool %s: cannot start a worker thread' % self._name)
        for owner in self._take_queued():
            fail_job(owner, error)
            with self._lock:
                self._unfinished -= 1
                self._outcomes[_FAILED] += 1
        self._join_wakers.wake_all()
        self._close_wakers.wake_all()

    def _take_queued(self) -> list[Any]:
        """Empty the job queue; return who waits for each job it held (see fail_job)."""
        owners: list[Any] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except Empty:
                return owners
            if job.__class__ is tuple:      # not an exit marker
                owners.append(job if type(job[0]) is HubChannel else job[0])

    def _work(self) -> None:
        """The loop of one worker thread: run jobs until told to exit.

        A job counts as unfinished until its done callbacks have run: the
        thread is busy, so a job submitted meanwhile (by a callback, say)
        makes the pool grow, and join() waits for them.
        """
        ident = get_ident()
        jobs = self._jobs
        current = self._current
        lock = self._lock
        outcomes = self._outcomes
        join_wakers = self._join_wakers
        me = getcurrent()    # this thread's greenlet: its context is the thread's
        if self._sched_batch:
            _use_batch_policy()
        current[ident] = None
        self._note_thread()
        retired = False
        try:
            while True:
                try:
                    # Returns at once while jobs are queued.
                    job = jobs.get(True, self.idle_timeout if self._nworkers > self._minsize
                                   else None)
                except Empty:
                    if not self._retire():
                        continue
                    job = _RETIRED
                if job.__class__ is not tuple:
                    retired = self._leave(job)
                    return
                channel = job[0] if type(job[0]) is HubChannel else None
                if channel is not None:
                    current[ident] = job
                    state, value = _run_blocking_job(job)
                    current[ident] = None
                else:
                    state = self._run_future_job(job, ident, current, me)
                # After a submit() job's done callbacks; before a blocking()
                # caller can resume, with the rest after: that overlaps the
                # hub's wake-up (the woken hub needs the GIL, which this
                # thread lets go of in get()).
                with lock:
                    self._unfinished -= 1
                    outcomes[state] += 1
                    idle = not self._unfinished
                if channel is not None:
                    waiter = job[5]
                    channel.post((waiter.switch, (value,)) if state == _DONE
                                 else (waiter.throw, value))
                    del channel, value, waiter
                    if me.gr_context is not None:
                        me.gr_context = None    # what a job set stays with it
                del job     # an idle thread keeps nothing of its last job
                if idle and join_wakers:
                    join_wakers.wake_all()
        finally:
            current.pop(ident, None)
            self._worker_exited(retired)

    def _run_future_job(self, job: tuple[Any, ...], ident: int, current: dict[int, Any],
                        me: Any) -> int:
        """Run a submit() job and then its done callbacks in this worker thread
        (*me* its greenlet); return the state its future ended in."""
        future = current[ident] = job[0]
        callbacks = run_job(job, None)
        state: int = future._state
        del future, job
        current[ident] = None
        if me.gr_context is not None:
            me.gr_context = None    # what a job set stays with it
        if callbacks:
            try:
                _run_callbacks(callbacks)
            except BaseException:
                # A KeyboardInterrupt or SystemExit from a callback, logged
                # already: this thread has no one to pass it to, and must
                # stay to run the queued jobs.
                pass
            del callbacks
        return state

    def _retire(self) -> bool:
        """After an idle timeout: return whether this thread should exit,
        and if so take it off the pool's count."""
        with self._lock:
            # Enough threads stay for every unfinished job.
            if self._nworkers > self._minsize and self._unfinished < self._nworkers:
                # Leave the count now, so that threads timing out together
                # do not all leave, minsize ones included.
                self._nworkers -= 1
                return True
        return False

    def _leave(self, marker: object) -> bool:
        """A worker took an exit marker: return True if it has left the count already.

        None is close()'s marker; _RETIRED is an idle timeout's; an _IdleStop
        is _stop_idle_threads()'s.
        """
        if isinstance(marker, _IdleStop):
            with self._lock:
                marker.native_ids.append(_get_native_id())
                if len(marker.native_ids) == marker.count:
                    marker.all_taken.release()
            return True
        return marker is _RETIRED

    def _stop_idle_threads(self) -> list[int]:
        """Make every idle worker thread leave; return their OS thread ids.

        Blocks the calling thread (not a switchpoint) until each of them has
        taken its exit marker; they may still be on their way out. Threads
        running a job stay. The pool starts threads again when work comes.
        """
        with self._lock:
            count = self._nworkers - self._unfinished
            if count <= 0:
                return []
            # Leave the count now, so that work submitted from here on starts
            # threads of its own. Queued behind the queued jobs, the markers
            # are taken by threads that have nothing else to do.
            self._nworkers -= count
            marker = _IdleStop(count)
            for _ in range(count):
                self._jobs.put(marker)
        with marker.all_taken:
            return marker.native_ids

    def _worker_exited(self, retired: bool = False) -> None:
        with self._lock:
            if not retired:
                self._nworkers -= 1
            last = self._nworkers == 0 and self._closing
        if last:
            self._close_wakers.wake_all()

    def _begin_close(self) -> None:
        # _closing is set: an _enqueue() from now on raises, and one that
        # checked it before holds the lock until it has counted and queued
        # its job, ahead of these markers.
        with self._lock:
            count = self._nworkers
        for _ in range(count):
            self._jobs.put(None)

    def close(self, timeout: float | None = None) -> bool:
        if not super().close(timeout):
            return False
        self._join_threads()
        return True

    close.__doc__ = PoolBase.close.__doc__

    def _note_thread(self) -> None:
        """In a new worker thread: keep a lock that says when the thread is gone."""
        gone = getattr(_thread_data, 'gone', None)
        if gone is None:
            # gevent may run a second worker loop in a thread: one lock a thread.
            gone = _thread_data.gone = _GoneLock()
        with self._lock:
            self._gone = [lock for lock in self._gone if lock.locked()]
            self._gone.append(gone.lock)

    def _join_threads(self) -> None:
        """Wait until every thread that worked here is gone, not just out of
        the pool's code: gevent's thread epilogue (it destroys the thread's
        hub, if a job made one) must not overlap interpreter finalisation.
        The threads have left the pool by now: this takes microseconds."""
        with self._lock:
            locks, self._gone = self._gone, []
        for lock in locks:
            with lock:
                pass

    def _wait_in_own_job(self, future: Future[Any], timeout: float | None) -> bool:
        """A pool thread (a job, or a done callback) waiting on a pending job of
        its own pool: while some thread of the pool may still take that job,
        wait; when every thread is in such a wait and the pool cannot grow,
        nothing ever would, so raise ``RuntimeError`` at once."""
        if get_ident() not in self._current:
            return False
        with self._lock:
            self._own_waiters += 1
            stuck = (self._nworkers >= self._limit
                     and self._own_waiters >= self._nworkers)
            if stuck:
                self._own_waiters -= 1
        if stuck:
            raise RuntimeError('waiting in pool %s for one of its own pending jobs would '
                               'deadlock: all %d threads of the full pool are waiting on '
                               'it' % (self._name, self._nworkers))
        try:
            future._park(timeout)
        finally:
            with self._lock:
                self._own_waiters -= 1
        return True

    def _thread_idents(self) -> list[int]:
        """Return the idents of the worker threads now in the pool's loop."""
        return list(self._current)

    def _idle(self) -> bool:
        return not self._unfinished

    def stats(self) -> PoolStats:
        # A copy made in C, under the GIL: workers may come and go meanwhile.
        current = list(self._current.values())
        idle = current.count(None)
        running = len(current) - idle
        outcomes = self._outcomes
        return PoolStats(self._nworkers, idle, max(self._unfinished - running, 0),
                         running, outcomes[_DONE], outcomes[_FAILED], outcomes[_CANCELLED])

    stats.__doc__ = PoolBase.stats.__doc__

    def _in_own_job(self) -> bool:
        return get_ident() in self._current

    def _after_fork_in_child(self) -> None:
        """Fail what the parent's threads held; start over with no threads."""
        running = [owner for owner in self._current.values() if owner is not None]
        queued = self._take_queued()
        self._jobs = SimpleQueue()
        self._reset_state()
        for owner in running + queued:
            fail_job(owner, Error('pool %s: the process forked before this job '
                                       'completed; it will not complete in the child'
                                       % self._name))
        # Only the waiters of the thread that forked exist in the child.
        ident = get_ident()
        for wakers in (self._join_wakers, self._close_wakers):
            wakers.keep_only(lambda waker: isinstance(waker, GreenletWaker)
                             and waker.hub.thread_ident == ident)
            wakers.wake_all()


def _use_batch_policy() -> None:
    """Put the calling thread under ``SCHED_BATCH`` if it runs under the default policy.

    A thread under any other policy keeps it: a real-time one (the worker
    would block a real-time hub while it holds the GIL), or an idle or batch
    one that the process chose. Where the OS has no such policy, or refuses
    it, nothing changes: the policy only spares context switches. (A pool's
    threads are its own: no thread serves two pools, so none needs its
    policy put back.)
    """
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def threads_alive() -> int:
    """Return how many worker threads all pools have (started or starting)."""
    return sum(len(pool) for pool in list(_live_pools))


def _run_blocking_job(job: tuple[Any, ...]) -> tuple[int, Any]:
    """Run a blocking() job; return ``(_DONE, result)`` or ``(_FAILED, (type,
    exc, traceback))`` -- the traceback too, which ``greenlet.throw(exc)``
    alone would drop.

    The worker hands the outcome to the caller's waiter through the hub's
    channel. A failed job's traceback holds this frame, so it holds neither
    the waiter (a caller that has left leaves its waiter holding the
    exception: a cycle) nor the user's objects. An empty context is not
    entered: the worker's own is empty between jobs too.
    """
    context, func, args, kwargs = job[1:5]
    del job
    try:
        if context is EMPTY_CONTEXT:
            result = func(*args, **kwargs) if kwargs else func(*args)
        else:
            result = context.run(func, *args, **kwargs) if kwargs else context.run(func, *args)
    except BaseException as exc:
        return _FAILED, (type(exc), exc, exc.__traceback__)
    finally:
        del context, func, args, kwargs
    return _DONE, result


def fail_job(owner: Any, error: BaseException) -> None:
    """Fail a job that will never run: set its Future's exception, or raise
    *error* in the greenlet that waits in blocking() for it."""
    if type(owner) is tuple:
        channel, waiter = owner[0], owner[5]
        channel.call(waiter.throw, type(error), error, None)
    else:
        owner.set_exception(error)


def _after_fork_in_child() -> None:
    for pool in list(_live_pools):
        pool._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
