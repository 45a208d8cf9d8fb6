"""FiberPool: a pool of long-lived worker greenlets, held in a ``gevent.pool.Group``.

Workers take jobs from a deque; a job costs a couple of greenlet switches, not
a fresh greenlet (about ten times as much). Every bit of pool state is touched
on the hub thread that owns the pool only: ``submit()`` from another native
thread drops the job in an inbox and asks the hub, through the hub's
wake-up channel (:class:`~gruvi_gevent._wakeup.HubChannel`), to move it to the
queue.
"""

import collections
import functools
import logging
import weakref
from contextvars import copy_context
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from gevent import Greenlet, GreenletExit, monkey
from gevent.hub import get_hub
from gevent.pool import Group
from gevent._waiter import Waiter
from greenlet import getcurrent

from .errors import Cancelled
from ._job import EMPTY_CONTEXT, NO_KWARGS, Job, run_job
from .future import _CANCELLED, _DONE, _FAILED, Future, _run_callbacks
from .pool import PoolBase, PoolStats
from ._wakeup import get_ident, hub_channel, run_in_hub

__all__ = ['FiberPool']

T = TypeVar('T')
P = ParamSpec('P')

# What a job raises that goes to its future and then on to kill its worker.
_ESCAPING = (GreenletExit, KeyboardInterrupt, SystemExit)

_IDLE_TIMEOUT = object()


# A per-thread store of the original thread module: its value for a thread
# is dropped when that thread's state is deleted, even under monkey patching.
_thread_local: Any = monkey.get_original('_thread', '_local')


class _Token:
    """Lives as long as the thread that stores it in a ``_thread_local``."""

    __slots__ = ('__weakref__',)   # the pool's weak reference, dead once the thread is gone


class _FiberWorker(Greenlet):
    """A worker greenlet; knows its current job so that cancel() can interrupt it."""

    def __init__(self, run: Callable[[], None]) -> None:
        Greenlet.__init__(self, run)
        self.job: Future[Any] | None = None   # the Future of the job running now, or None
        self.waiter: Any = None   # the Waiter it parks in while idle, or None
        # the canceller given to its jobs' futures
        self.interrupt: Callable[[Future[Any]], None] | None = None
        self.retired = False   # left idle; already taken off the pool's count


class FiberPool(PoolBase):
    """A pool that uses fiber workers (gevent greenlets).

    Jobs run in greenlets of the hub thread that created the pool, at most
    *maxsize* at once. ``submit()`` may be called from any native thread.

    **Cancellation:** a pending job that is cancelled never starts. A running
    job can be cancelled: :class:`~gruvi_gevent.Cancelled` is raised inside it
    at its current switchpoint, and the pool keeps its capacity. As with
    gevent's ``kill()``, a job that was already due to resume from that
    switchpoint (after ``gevent.sleep(0)``, say) runs on, and gets the
    ``Cancelled`` at its next one; its result is discarded either way.

    **Exceptions from jobs:** an ``Exception`` goes to the job's future and
    nowhere else. ``GreenletExit`` (the worker was killed, e.g. by
    ``gevent.killall``) goes to the future, and the worker exits and is
    replaced. ``KeyboardInterrupt`` and ``SystemExit`` go to the future and
    are then re-raised in the worker, so that gevent's hub passes them on to
    the main greenlet as it does for any greenlet: the process can still stop.
    The worker is replaced.
    """

    def __init__(self, maxsize: int | None = None, minsize: int = 0,
                 name: str | None = None, *, max_queued: int | None = None,
                 queue_timeout: float | None = None) -> None:
        super().__init__(maxsize, minsize, name, max_queued=max_queued,
                         queue_timeout=queue_timeout)
        self._hub = hub = get_hub()
        self._loop = hub.loop
        self._channel = hub_channel(hub)     # for calls from other threads
        self._ident = hub.thread_ident
        self._thread_data = _thread_local()      # its thread's token, while the thread lives
        self._thread_data.token = token = _Token()
        self._thread_alive = weakref.ref(token)  # dead once the hub's thread has exited
        self._group = Group()
        self._group.greenlet_class = _FiberWorker
        self._queue: collections.deque[Job] = collections.deque()   # jobs to run
        self._inbox: collections.deque[Job] = collections.deque()   # submitted from other threads
        self._drain_asked = False   # a _drain_inbox call is on its way to the hub
        self._idle_workers: list[_FiberWorker] = []   # idle workers, most recent last
        self._nworkers = 0
        self._unfinished = 0                 # jobs queued or running
        self._outcomes = [0] * (_CANCELLED + 1)   # finished jobs, by their future's state
        self._closed = False                 # closing, and every worker has exited
        self._register_for_exit()
        for _ in range(minsize):
            self._spawn_worker()

    def __len__(self) -> int:
        return self._nworkers

    def submit(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._closing or not callable(func):
            self._check_submit(func)
        if self._bound is not None:
            return self._submit_bounded(func, args, kwargs)
        future: Future[T] = Future()
        future._result = self      # its owner, while pending: see _wait_in_own_job
        # Run in a copy of the submitter's context, as asyncio.to_thread does.
        self._enqueue((future, func, args, kwargs, copy_context() or EMPTY_CONTEXT))
        return future

    def _enqueue(self, job: Job) -> None:
        if get_ident() != self._ident:
            self._check_hub()
            self._inbox.append(job)
            if not self._drain_asked:
                # One drain asked for at a time; it takes everything queued.
                self._drain_asked = True
                self._channel.call(self._drain_inbox)
            return
        if self._hub.loop is None:
            self._check_hub()
        self._queue.append(job)
        self._unfinished += 1
        if self._idle_workers or self._nworkers < self._limit:
            self._dispatch()

    def _check_hub(self) -> None:
        """Raise RuntimeError if no hub will ever run this pool's jobs."""
        if self._hub.loop is None:
            raise RuntimeError('pool %s: its hub was destroyed' % self._name)
        if self._thread_alive() is None:
            raise RuntimeError('pool %s: the thread of its hub has exited' % self._name)

    def _submit_many(self, func: Callable[..., T],
                     arg_tuples: Iterable[tuple[Any, ...]]) -> list[Future[T]]:
        """map()'s submissions in one go: one count update, one wake-up per worker."""
        if get_ident() != self._ident:
            return super()._submit_many(func, arg_tuples)
        futures: list[Future[T]] = []
        append_future = futures.append
        append_job = self._queue.append
        context = copy_context() or EMPTY_CONTEXT    # one snapshot: no switch in between
        for args in arg_tuples:
            future: Future[T] = Future()
            future._result = self
            append_future(future)
            append_job((future, func, args, NO_KWARGS, context))
        self._unfinished += len(futures)
        for _ in range(len(futures)):
            if not (self._idle_workers or self._nworkers < self._limit):
                break
            self._dispatch()
        return futures

    submit.__doc__ = PoolBase.submit.__doc__

    def _dispatch(self) -> None:
        """Make sure a worker will look at the queue: wake an idle one or start one."""
        idle = self._idle_workers
        if idle:
            worker = idle.pop()
            self._loop.run_callback(worker.waiter.switch, None)
        elif self._nworkers < self._limit:
            self._spawn_worker()

    def _drain_inbox(self) -> None:
        # Cleared first: a job added from now on asks for a drain of its own.
        self._drain_asked = False
        inbox = self._inbox
        try:
            while inbox:
                if self._closed:
                    inbox.popleft()[0].cancel()
                    continue
                # Counted before it leaves the inbox: join() in another thread
                # must never see it in neither place.
                self._unfinished += 1
                self._queue.append(inbox.popleft())
                self._dispatch()
        finally:
            # A done callback of a cancelled job may raise (KeyboardInterrupt):
            # the jobs behind it still get drained, in the next loop pass.
            if inbox:
                self._loop.run_callback(self._drain_inbox)

    def _spawn_worker(self) -> None:
        worker = self._group.spawn(self._work)
        worker.interrupt = functools.partial(run_in_hub, self._hub, self._deliver_cancel, worker)
        worker.rawlink(self._worker_exited)
        self._nworkers += 1

    @staticmethod
    def _deliver_cancel(worker: _FiberWorker, future: Future[Any]) -> None:
        # Runs in the hub. The worker may have finished that job meanwhile.
        if worker.job is future and not worker.dead:
            worker.throw(Cancelled())

    def _work(self) -> None:
        worker = getcurrent()
        queue = self._queue
        join_wakers = self._join_wakers
        while True:
            while queue:
                try:
                    self._run_job(worker, queue.popleft())
                finally:
                    # Also when the worker dies of a KeyboardInterrupt or
                    # SystemExit, raised by the job or by a done callback.
                    if worker.gr_context is not None:
                        worker.gr_context = None    # what a job set stays with it
                    if not self._unfinished and join_wakers:
                        join_wakers.wake_all()
            if self._closing or not self._park(worker):
                return

    def _run_job(self, worker: _FiberWorker, job: Job) -> None:
        """Run *job* in *worker* and count it finished. *Switchpoint.*"""
        future = worker.job = job[0]
        try:
            callbacks = self._execute(job, worker.interrupt, _ESCAPING)
            del job     # an idle worker keeps nothing of its last job
            if callbacks:
                _run_callbacks(callbacks)
        finally:
            worker.job = None
            self._unfinished -= 1
            self._outcomes[future._state] += 1
            del future

    # Runs a job in the worker that calls it: sets its future running, and
    # returns the callbacks to run once it has settled it (see run_job). A
    # subclass may run jobs elsewhere.
    _execute = staticmethod(run_job)

    def _park(self, worker: _FiberWorker) -> bool:
        """Wait idle for a job. Return False if the worker should exit."""
        waiter = worker.waiter = Waiter(self._hub)
        self._idle_workers.append(worker)
        timer = None
        if self._nworkers > self._minsize:
            # Unref'd: an idle pool must not keep gevent.wait() waiting.
            timer = self._loop.timer(self.idle_timeout, ref=False)
            timer.start(waiter.switch, _IDLE_TIMEOUT)
        try:
            woken = waiter.get()
        except BaseException:
            # Killed while idle: nobody may hand it a job from now on.
            if worker in self._idle_workers:
                self._idle_workers.remove(worker)
            raise
        finally:
            worker.waiter = None
            if timer is not None:
                timer.close()
        if woken is _IDLE_TIMEOUT:
            if worker not in self._idle_workers:
                # A job or close() claimed this worker as its timer fired.
                return True
            self._idle_workers.remove(worker)
            if self._queue or self._nworkers <= self._minsize:
                return True
            # Leave the count now, so that workers timing out together do not
            # all leave (and the minsize ones get replaced).
            worker.retired = True
            self._nworkers -= 1
            return False
        return True

    def _worker_exited(self, worker: _FiberWorker) -> None:
        # Runs in the hub after any worker death: normal exit, kill, or error.
        if not worker.retired:
            self._nworkers -= 1
        if worker in self._idle_workers:
            self._idle_workers.remove(worker)
        if worker.exception is not None and not isinstance(worker.exception, GreenletExit):
            self._log(logging.DEBUG, 'worker died of %r; replacing it', worker.exception)
        # A worker that retired left an empty queue: jobs queued since then
        # went to the workers that _dispatch woke or started for them.
        need = 0 if worker.retired else len(self._queue)
        if not self._closing:
            need = max(need, self._minsize - self._nworkers)
        while need > 0 and self._nworkers < self._limit:
            self._spawn_worker()
            need -= 1
        if self._nworkers == 0 and self._closing:
            self._closed = True
            self._close_wakers.wake_all()

    def _begin_close(self) -> None:
        if get_ident() != self._ident:
            self._channel.call(self._wake_idle_for_close)
        else:
            self._wake_idle_for_close()

    def _wake_idle_for_close(self) -> None:
        idle = self._idle_workers
        while idle:
            self._loop.run_callback(idle.pop().waiter.switch, None)
        if self._nworkers == 0:
            if self._queue:
                self._spawn_worker()
            else:
                self._closed = True
                self._close_wakers.wake_all()

    def _no_workers(self) -> bool:
        # Not just len(self) == 0: jobs submitted from other threads may still
        # be on their way to the queue, and close() lets them run first.
        return self._closed

    def _idle(self) -> bool:
        return not self._unfinished and not self._inbox

    def stats(self) -> PoolStats:
        queued = len(self._queue)
        outcomes = self._outcomes
        return PoolStats(self._nworkers, len(self._idle_workers), queued + len(self._inbox),
                         max(self._unfinished - queued, 0),
                         outcomes[_DONE], outcomes[_FAILED], outcomes[_CANCELLED])

    stats.__doc__ = PoolBase.stats.__doc__

    def _in_own_job(self) -> bool:
        return getcurrent() in self._group

    def _wait_in_own_job(self, future: Future[Any], timeout: float | None) -> bool:
        """A job waiting on a job of its own pool that has not started runs it
        itself, in its own greenlet, as gevent's ``Pool.apply()`` does: a full
        pool would deadlock otherwise."""
        worker = getcurrent()
        if worker not in self._group:
            return False
        queue = self._queue
        for index, job in enumerate(queue):
            if job[0] is future:
                break
        else:
            return False     # running, or still in the inbox: wait for it
        del queue[index]
        outer = worker.job
        try:
            self._run_job(worker, job)
        finally:
            worker.job = outer
        return True

    def _at_exit(self) -> None:
        """Interpreter shutdown: no greenlet runs again; say what is dropped."""
        self._closing = True
        dropped = self._unfinished + len(self._inbox)
        if dropped:
            self._log(logging.WARNING, '%d job(s) not done at interpreter exit are dropped',
                      dropped)
