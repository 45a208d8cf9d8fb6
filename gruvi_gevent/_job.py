"""The job a pool runs: its layout, and the one function that runs it.

A job is a plain tuple ``(future, func, args, kwargs, context)`` -- no object
of its own, so a queued job stays small. :func:`run_job` is its one runner,
shared by every pool whose workers run jobs themselves: set the future
running, call the function in a copy of the job's context, settle the future
with the outcome, and keep nothing of the user's objects afterwards.
"""

from collections.abc import Callable
from contextvars import Context
from typing import Any

from .future import _DONE, _FAILED, Future, _run_callbacks

__all__ = ['Job', 'EMPTY_CONTEXT', 'NO_KWARGS', 'run_job']

# A job: (future, func, args, kwargs, the context it runs in a copy of).
Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], Context]

# Every job runs in a copy of its submitter's contextvars context, made
# fresh as it starts, so that what the job changes stays in that copy. A
# queued job keeps the snapshot it was submitted with, or this one when the
# submitter's context is empty: then it keeps no object of its own, which the
# garbage collector would visit for as long as the job waits, and its worker
# runs it straight in its own context, empty between jobs (a worker drops
# whatever a job set there). Never entered.
EMPTY_CONTEXT = Context()

# The keyword arguments of every job that has none: one shared empty dict
# keeps a queued job 64 bytes smaller. Never mutated (a job gets them as
# **kwargs, a copy).
NO_KWARGS: dict[str, Any] = {}


def run_job(job: Job, canceller: Callable[[Future[Any]], object] | None,
            escaping: tuple[type[BaseException], ...] = ()) -> Any:
    """Run *job* and settle its future; return the future's done callbacks,
    for the caller to run once its own bookkeeping allows (None if there are
    none, or if the job was cancelled before it started and so never ran).

    *canceller* is the future's while it runs (see ``Future._set_running``).
    Any exception of the job goes to its future; one of the *escaping* types
    is re-raised too, after the callbacks have run. *Switchpoint* only where
    the job's function is one.
    """
    future, func, args, kwargs, context = job
    del job
    if not future._set_running(canceller):
        return None       # cancelled while it was queued
    try:
        if context is EMPTY_CONTEXT:
            # The worker's own context is empty between jobs too.
            result = func(*args, **kwargs)
        else:
            result = context.copy().run(func, *args, **kwargs)
    except BaseException as exc:
        callbacks = future._settle(_FAILED, exc)
        if isinstance(exc, escaping):
            if callbacks:
                _run_callbacks(callbacks)
            raise
        return callbacks
    else:
        return future._settle(_DONE, result)
    finally:
        # A failed job's traceback holds this frame: it must not hold the
        # future too (future -> exception -> traceback -> frame -> future),
        # nor keep the user's objects alive after the job.
        del future, func, args, kwargs, context
