"""The hub's wake-up channel: cross-thread wake-ups under load leave the loop intact.

The load tests run a script in a fresh interpreter, at the sizes of the bug
report, for 8 seconds each: a watchdog in the script and a timeout on the
subprocess turn a hang into a failure with a stack dump. They check the
loop's reference count (``loop.activecnt``), which a wake-up sent with
``run_callback_threadsafe`` from a pool thread used to corrupt: libev's
``ev_ref()`` in the pool thread raced the hub thread's ``ev_unref()`` of
every expiring timer.
"""

import subprocess
import sys
import textwrap
import threading
import time

import gevent
import pytest

from gruvi_gevent._wakeup import HubChannel, hub_channel

SCRIPT_TIMEOUT = 50
DURATION = 8

LOAD_SCRIPT = '''
    import faulthandler, sys, time
    faulthandler.dump_traceback_later(40, exit=True)
    import gevent
    from gruvi_gevent import blocking

    loop = gevent.get_hub().loop
    callers, sleepers, nap, duration = int(sys.argv[1]), int(sys.argv[2]), \\
        float(sys.argv[3]), float(sys.argv[4])

    def tiny():
        return 1

    def settled_count():
        gevent.sleep(0.05)      # out of any loop callback, timers and all
        return loop.activecnt

    blocking(tiny)              # the pool and its watchers exist from here on
    start = settled_count()
    deadline = time.monotonic() + duration
    calls = []

    def caller():
        n = 0
        while time.monotonic() < deadline:
            blocking(tiny)
            n += 1
        calls.append(n)

    def sleeper():
        while time.monotonic() < deadline + 0.2:
            gevent.sleep(nap)

    greenlets = [gevent.spawn(caller) for _ in range(callers)]
    greenlets += [gevent.spawn(sleeper) for _ in range(sleepers)]
    gevent.joinall(greenlets, raise_error=True)
    end = settled_count()
    started = time.monotonic()
    idle = gevent.wait(timeout=3)
    print(start, end, idle, round(time.monotonic() - started, 3), sum(calls), len(calls))
'''


def run_load(callers, sleepers, nap):
    script = textwrap.dedent(LOAD_SCRIPT)
    proc = subprocess.run([sys.executable, '-c', script, str(callers), str(sleepers), str(nap),
                           str(DURATION)], capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    start, end, idle, waited, calls, finished = proc.stdout.split()
    return int(start), int(end), idle == 'True', float(waited), int(calls), int(finished)


def test_wakeups_from_pool_threads_leave_the_loop_reference_count_alone():
    # 200 greenlets in blocking() while 200 greenlets loop on 0.5 ms sleeps.
    start, end, idle, waited, calls, finished = run_load(200, 200, 0.0005)
    assert finished == 200 and calls > 0
    assert end == start, 'loop.activecnt went from %d to %d' % (start, end)
    assert idle, 'gevent.wait() with nothing left to wait for did not return True'
    assert waited < 1, 'gevent.wait() with nothing left to wait for took %.3f s' % waited


def test_a_thousand_blocking_callers_and_a_ticker_get_no_loop_exit():
    # 1,000 greenlets in blocking() while one greenlet ticks every 1 ms: the
    # lost references used to reach zero, and the ticker's join() raised
    # LoopExit while it was still sleeping.
    start, end, idle, waited, calls, finished = run_load(1000, 1, 0.001)
    assert finished == 1000 and calls > 0
    assert end == start, 'loop.activecnt went from %d to %d' % (start, end)
    assert idle and waited < 1


def test_a_drain_lets_timers_run_between_slices():
    # 300 calls queued at once, each holding the hub 1 ms: drained in one go
    # they would hold a 5 ms timer back by 300 ms.
    channel = hub_channel(gevent.get_hub())
    ran = []
    fired = []

    def slow_call(i):
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass
        ran.append(i)

    def post():
        for i in range(300):
            channel.call(slow_call, i)

    timer = gevent.get_hub().loop.timer(0.005)
    timer.start(lambda: fired.append(len(ran)))
    try:
        thread = threading.Thread(target=post)
        thread.start()
        thread.join()           # blocks the hub: every call is queued before it drains
        with gevent.Timeout(10):
            while len(ran) < 300:
                gevent.sleep(0.001)
    finally:
        timer.close()
    assert ran == list(range(300))
    assert fired and fired[0] < 200, 'the timer waited for %s of 300 calls' % fired


def test_the_channel_is_made_on_its_hubs_thread_only():
    hubs = []
    made = threading.Event()
    done = threading.Event()

    def in_thread():
        hubs.append(gevent.get_hub())
        made.set()
        done.wait(10)
        hubs[0].destroy(destroy_loop=True)

    thread = threading.Thread(target=in_thread)
    thread.start()
    try:
        assert made.wait(10)
        with pytest.raises(RuntimeError, match='own thread'):
            hub_channel(hubs[0])
    finally:
        done.set()
        thread.join()
    assert isinstance(hub_channel(gevent.get_hub()), HubChannel)


def test_a_call_to_a_destroyed_hub_is_dropped():
    channels = []

    def in_thread():
        hub = gevent.get_hub()
        channels.append(hub_channel(hub))
        hub.destroy(destroy_loop=True)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    channels[0].call(pytest.fail, 'ran in a destroyed hub')     # no error, no call


def test_the_keep_alive_reference_is_dropped_once_nobody_waits():
    from gruvi_gevent import blocking
    loop = gevent.get_hub().loop
    channel = hub_channel(gevent.get_hub())
    assert blocking(abs, -1) == 1
    gevent.sleep(0.01)          # out of the drain that woke us
    assert not channel.reffed and channel.count == 0
    before = loop.activecnt
    channel.hold()
    assert loop.activecnt == before + 1
    channel.release()
    assert loop.activecnt == before
