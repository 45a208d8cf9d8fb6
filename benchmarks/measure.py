"""What every benchmark case is made of: rounds, outcomes, cases and checks.

A case is a *measure* function: it takes the :class:`Run` (the size of this
run, its rounds, its progress line) and returns an :class:`Outcome` (our
figure and the anchor's). :class:`Case` is one row of the table in
:mod:`benchmarks.bench`: a measure, its name, its anchor and its goal.
"""

import gc
import statistics
from collections.abc import Callable
from typing import Any

__all__ = ['BenchError', 'check', 'job', 'sum_of_range', 'Outcome', 'Case', 'Measure',
           'Round', 'Run', 'per_job']


class BenchError(Exception):
    """A case computed a wrong result, so its figures would mean nothing."""


def check(what: str, got: object, expected: object) -> None:
    """Raise :class:`BenchError` unless *got* equals *expected*."""
    if got != expected:
        raise BenchError('%s: got %r, expected %r' % (what, got, expected))


def job(i: int) -> int:
    """The trivial job of every timing case: the pools' own cost is what we measure."""
    return i


def sum_of_range(n: int) -> int:
    """The sum of the results of jobs 0 .. n-1."""
    return n * (n - 1) // 2


class Outcome:
    """What a case function measured: our figure, the anchor's, and their unit.

    *ours_rounds* and *anchor_rounds* keep every round's figure (in *unit*);
    *ours* and *anchor* are the best rounds. *anchor* is None for a case that
    has nothing to compare with. *note* is shown next to the row.
    """

    def __init__(self, ours: float, anchor: float | None, unit: str,
                 ours_rounds: list[float] | None = None,
                 anchor_rounds: list[float] | None = None,
                 note: str = '', details: dict[str, Any] | None = None,
                 measured: bool = True) -> None:
        self.ours = ours
        self.anchor = anchor
        self.unit = unit
        self.ours_rounds = ours_rounds or [ours]
        self.anchor_rounds = anchor_rounds or ([] if anchor is None else [anchor])
        self.note = note
        self.details = details or {}
        self.measured = measured    # False: this machine cannot run the case (note says why)

    @classmethod
    def from_rounds(cls, ours_seconds: list[float], anchor_seconds: list[float], unit: str,
                    scale: float, note: str = '',
                    details: dict[str, Any] | None = None) -> 'Outcome':
        """Build an outcome from round times in seconds, each multiplied by *scale*.

        With ``unit='us/job'`` and ``scale=1e6 / jobs`` this gives the time per
        job in microseconds. The best (smallest) round of each side counts.
        """
        ours = [seconds * scale for seconds in ours_seconds]
        anchor = [seconds * scale for seconds in anchor_seconds]
        return cls(min(ours), min(anchor), unit, ours, anchor, note=note, details=details)

    def median_ratio(self) -> float | None:
        """The median of the per-round ratios (round i of ours / round i of the anchor)."""
        pairs = list(zip(self.ours_rounds, self.anchor_rounds))
        ratios = [ours / anchor for ours, anchor in pairs if anchor > 0]
        return statistics.median(ratios) if ratios else None


class Run:
    """What a case function gets: the size of this run, rounds, and progress reports."""

    def __init__(self, quick: bool = False, rounds: int | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.quick = quick
        self.rounds = rounds or (3 if quick else 5)
        self._progress = progress or (lambda text: None)

    def size(self, full: float, quick: float) -> Any:
        """Return *full*, or *quick* in a ``--quick`` run (numbers of jobs, or seconds)."""
        return quick if self.quick else full

    def progress(self, text: str) -> None:
        self._progress(text)

    def alternate(self, ours: Callable[[], float], anchor: Callable[[], float],
                  rounds: int | None = None) -> tuple[list[float], list[float]]:
        """Run ``ours()`` and ``anchor()`` *rounds* times each, alternating,
        and ours first only in odd rounds.

        Each function runs one round and returns the seconds its timed region
        took. Return the two lists of round times. Garbage left by one round
        is collected before the next, so that no round pays for another.
        """
        rounds = rounds or self.rounds
        ours_times: list[float] = []
        anchor_times: list[float] = []
        sides = [('ours', ours, ours_times), ('anchor', anchor, anchor_times)]
        for number in range(1, rounds + 1):
            for label, func, times in (sides if number % 2 else sides[::-1]):
                self.progress('round %d/%d, %s' % (number, rounds, label))
                gc.collect()
                times.append(func())
        return ours_times, anchor_times


# A case's function: measures what its row says.
Measure = Callable[[Run], Outcome]
# A round function of a per-job comparison: takes the number of jobs and
# returns the seconds of its timed region.
Round = Callable[[int], float]


def per_job(ours: Round, theirs: Round, full: int, quick: int, doc: str,
            note: str = '') -> Measure:
    """Return a measure timing ``ours(n)`` against ``theirs(n)``, per job.

    *full* and *quick* are the numbers of jobs of a full and a ``--quick``
    run; *doc* is the row's legend. A new like-for-like comparison is one
    call of this, and one row of the table.
    """
    def measure(run: Run) -> Outcome:
        n = run.size(full, quick)
        ours_times, anchor_times = run.alternate(lambda: ours(n), lambda: theirs(n))
        return Outcome.from_rounds(ours_times, anchor_times, 'us/job', 1e6 / n, note=note,
                                   details={'jobs': n})
    measure.__doc__ = doc
    return measure


class Case:
    """One row of the table: a function that measures, and the goal it is held to.

    *goal_on* says what the goal bounds: ``'ratio'`` (the median ratio
    ours/anchor <= goal), ``'ours'`` (our figure itself <= goal); with no
    *goal* the case passes when it finishes with correct results.
    """

    def __init__(self, name: str, anchor: str, measure: Measure, goal: float | None = None,
                 goal_on: str = 'ratio') -> None:
        self.name = name
        self.anchor = anchor
        self.measure = measure
        self.goal = goal
        self.goal_on = goal_on if goal is not None else None
        self.doc = (measure.__doc__ or '').strip().splitlines()[0]

    def goal_text(self, unit: str) -> str:
        if self.goal is None:
            return 'finishes'
        if self.goal_on == 'ours':
            return 'ours <= %g %s' % (self.goal, unit.split('/')[0])
        return 'ratio <= %g' % self.goal

    def passed(self, outcome: Outcome) -> bool:
        """Whether *outcome* meets this case's goal."""
        if self.goal is None or not outcome.measured:
            return True
        if self.goal_on == 'ours':
            return outcome.ours <= self.goal
        median = outcome.median_ratio()
        return median is not None and median <= self.goal

    def run(self, run: Run) -> dict[str, Any]:
        """Run the case; return its row of the table as a dict."""
        outcome = self.measure(run)
        ratio = None
        if outcome.anchor is not None and outcome.anchor > 0:
            ratio = outcome.ours / outcome.anchor
        return {
            'case': self.name,
            'what': self.doc,
            'anchor_is': self.anchor,
            'ours': outcome.ours,
            'anchor': outcome.anchor,
            'unit': outcome.unit,
            'ratio': ratio,
            'goal': self.goal,
            'goal_on': self.goal_on,
            'goal_text': self.goal_text(outcome.unit),
            'passed': self.passed(outcome),
            'note': outcome.note,
            'rounds': len(outcome.ours_rounds),
            'ours_rounds': outcome.ours_rounds,
            'anchor_rounds': outcome.anchor_rounds,
            'median_ratio': outcome.median_ratio(),
            'details': outcome.details,
            'measured': outcome.measured,
        }
