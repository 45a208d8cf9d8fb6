"""The benchmark keeps working: a --quick run finishes and reports every case.

Timing goals are not asserted here: the machines are shared and noisy, and
the ratios are for people to read (``make bench``), not for a test to gate on.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

# The benchmark lives beside the package, in the repository's root.
ROOT = pathlib.Path(__file__).resolve().parent.parent

# The cases of the performance issue, in table order.
EXPECTED_CASES = [
    'fiberpool-vs-gevent-pool',
    'fiberpool-vs-asyncio',
    'fiberpool-vs-asyncio-await-each',
    'fiberpool-map-vs-imap',
    'threadpool-vs-gevent-threadpool',
    'threadpool-windowed-vs-gevent-threadpool',
    'threadpool-vs-executor',
    'blocking-vs-apply',
    'blocking-vs-apply-batch-anchor',
    'blocking-vs-apply-two-cpus',
    'blocking-vs-apply-unplaced',
    'blocking-100-greenlets-vs-apply',
    'blocking-1000-greenlets-ticker-vs-apply',
    'blocking-context-copy',
    'threadpool-queued-job-memory',
    'as-completed-scaling',
    'future-memory-vs-concurrent',
    'future-memory-vs-asyncio',
    'fiberpool-100k-sleepers',
    'processpool-vs-executor',
    'processpool-speedup',
    'daskpool-vs-dask',
    'lock-vs-gevent-lock',
    'context-per-job',
]

# The only case with nothing to compare with.
NO_ANCHOR = {'fiberpool-100k-sleepers'}

# The serial rows that pin the hub and the pool threads to CPUs of their choosing.
PLACED = {'blocking-vs-apply', 'blocking-vs-apply-batch-anchor', 'blocking-vs-apply-two-cpus'}


@pytest.mark.timeout(150)
def test_quick_run_reports_every_case_with_positive_figures():
    proc = subprocess.run(
        [sys.executable, '-m', 'benchmarks.bench', '--quick', '--rounds', '2', '--json'],
        cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)

    assert report['environment']['quick'] is True
    rows = report['cases']
    assert [row['case'] for row in rows] == EXPECTED_CASES
    for row in rows:
        name = row['case']
        if not row['measured']:
            # Only a row that places threads on CPUs this machine lacks.
            assert name in PLACED and row['note'].startswith('not measurable'), row
            assert len(os.sched_getaffinity(0)) < 2 or not hasattr(os, 'SCHED_BATCH'), row
            continue
        if name in PLACED:
            hub_cpu, pool_cpu = row['details']['cpus']
            assert (hub_cpu == pool_cpu) == (name != 'blocking-vs-apply-two-cpus'), row
        assert row['ours'] > 0, name
        assert row['unit'], name
        assert isinstance(row['passed'], bool), name
        assert row['goal_text'], name
        assert all(value > 0 for value in row['ours_rounds']), name
        if name in NO_ANCHOR:
            assert row['anchor'] is None and row['ratio'] is None, name
        else:
            assert row['anchor'] > 0, name
            assert row['ratio'] > 0, name
            assert all(value > 0 for value in row['anchor_rounds']), name
            # One ratio per round, and their median beside the best.
            assert len(row['anchor_rounds']) == len(row['ours_rounds']), name
            assert row['median_ratio'] > 0, name
    # The concurrency table: every size, job and side, with calls made.
    table = report['concurrency']
    cells = {(row['greenlets'], row['job'], row['side']) for row in table}
    assert cells == {(greenlets, job, side) for greenlets in (1, 10, 100, 1000)
                     for job in ('tiny', 'sleep 1 ms') for side in ('blocking()', 'apply()')}
    for row in table:
        assert row['calls_per_second'] > 0, row
        assert row['call_p99_ms'] >= row['call_p50_ms'] > 0, row
    # The progress line names each case on stderr.
    for name in EXPECTED_CASES:
        assert name in proc.stderr
