"""Every program in examples/, and every complete code block of the docs, runs.

Each example runs as a subprocess with a timeout, as a user would run it from
the source tree: it must exit with status 0, print its expected line and
write no traceback to stderr (gevent prints the tracebacks of greenlets that
die of an exception without failing the process, so the exit status alone
would not catch them).

The docs' ``code-block:: python`` blocks are complete programs too, except
those marked ``:class: fragment``; each runs the same way.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / 'examples'
DOCS = ROOT / 'docs'
TIMEOUT = 60

# A line each example must print (a regular expression, matched per line).
# An example that is not listed must still exit 0 and print something.
EXPECTED = {
    'demo.py': r'^\(c\) ',
    'fanout.py': r'^fanout: OK$',
    'blocking_calls.py': r'^blocking_calls: OK$',
    'wait_mix.py': r'^wait_mix: OK$',
    'server.py': r'^server: OK$',
    'threads.py': r'^threads: OK$',
    'custom_adapter.py': r'^custom_adapter: OK$',
    'waitable_testing.py': r'^waitable_testing: OK$',
    'scaling.py': r'^scaling: OK$',
    'dask_mix.py': r'^dask_mix: OK$',
    'health.py': r'^health: OK$',
}


def run_python(args, cwd):
    env = dict(os.environ)
    env.pop('PYTHONWARNINGS', None)
    proc = subprocess.run([sys.executable] + args, cwd=str(cwd), env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT)
    report = 'exit status %s\n--- stdout\n%s\n--- stderr\n%s' % (
        proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 0, report
    assert 'Traceback' not in proc.stderr, report
    return proc.stdout, report


def example_files():
    return sorted(path.name for path in EXAMPLES.glob('*.py'))


def test_examples_exist():
    names = example_files()
    for required in ('demo.py', 'fanout.py', 'blocking_calls.py', 'wait_mix.py'):
        assert required in names


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize('name', example_files())
def test_example_runs(name):
    stdout, report = run_python([str(EXAMPLES / name)], ROOT)
    expected = EXPECTED.get(name)
    if expected is None:
        assert stdout.strip(), report
    else:
        assert re.search(expected, stdout, re.MULTILINE), \
            'expected a line matching %r\n%s' % (expected, report)


@pytest.fixture
def health_server():
    """examples/health.py serving on 127.0.0.1: yields its port; stopped and reaped after."""
    env = dict(os.environ)
    env.pop('PYTHONWARNINGS', None)
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / 'health.py'), '--serve'],
                            cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()     # the server prints its port once it listens
        match = re.match(r'^listening on 127\.0\.0\.1:(\d+)$', line.strip())
        assert match, 'unexpected first line %r; stderr: %s' % (
            line, proc.stderr.read() if proc.poll() is not None else '')
        yield int(match.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()


def fetch_json(port, path):
    url = 'http://127.0.0.1:%d%s' % (port, path)
    with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
        assert reply.headers['Content-Type'] == 'application/json'
        return json.loads(reply.read())


@pytest.mark.timeout(TIMEOUT + 30)
def test_health_endpoint_serves_pool_stats(health_server):
    before = fetch_json(health_server, '/health')
    assert set(before) == {'Io', 'Cpu', 'backends'}
    assert before['backends'] == {'workers': 0, 'idle': 0, 'queued': 0, 'running': 0,
                                  'completed': 0, 'failed': 0, 'cancelled': 0}
    for _ in range(3):
        assert fetch_json(health_server, '/order')['answer'] == 42
    after = fetch_json(health_server, '/health')
    assert after['backends']['completed'] == 3
    assert after['Io']['completed'] >= before['Io']['completed'] + 3
    assert after['Io']['workers'] >= 1 and after['Io']['failed'] == 0


_BLOCK = re.compile(r'^\.\. code-block:: python\n((?:   :[^\n]*\n)*)\n((?:(?:   [^\n]*)?\n)+)',
                    re.MULTILINE)


def doc_code_blocks():
    blocks = []
    for path in sorted(DOCS.rglob('*.rst')):
        if '_build' in path.parts:
            continue
        text = path.read_text()
        for number, match in enumerate(_BLOCK.finditer(text), 1):
            options, body = match.groups()
            if 'fragment' in options:
                continue
            code = '\n'.join(line[3:] for line in body.splitlines())
            name = '%s#%d' % (path.relative_to(DOCS), number)
            blocks.append(pytest.param(code, id=name))
    return blocks


def test_docs_have_runnable_blocks():
    assert len(doc_code_blocks()) >= 2


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize('code', doc_code_blocks())
def test_doc_code_block_runs(code, tmp_path):
    script = tmp_path / 'snippet.py'
    script.write_text(code)
    run_python([str(script)], tmp_path)
