"""Making a type of your own waitable with a zope adapter.

``Transfer`` stands for a class of some other library: a download finished by
the library's own thread, which notifies subscribers but knows nothing of
``add_done_callback``. An adapter to ``IWaitable``, registered once, lets
``wait()`` and ``as_completed()`` take transfers as they are, mixed with
futures and gevent objects.
"""

import logging
import threading

from gevent import monkey
from zope.interface import implementedBy, implementer

from gruvi_gevent import FiberPool, as_completed, wait
from gruvi_gevent.adapters import registry
from gruvi_gevent.interfaces import IWaitable

real_sleep = monkey.get_original('time', 'sleep')


# -- the other library's class, used as it is --------------------------------

class Transfer:
    """A transfer that a thread of its own finishes after *seconds*.

    Without *seconds* nothing finishes it but a call of :meth:`finish`.
    """

    def __init__(self, name, seconds=None):
        self.name = name
        self.finished = False
        self._subscribers = {}
        self._lock = threading.Lock()
        if seconds is not None:
            threading.Thread(target=self._run, args=(seconds,), daemon=True).start()

    def __repr__(self):
        return '<Transfer %s>' % self.name

    def _run(self, seconds):
        real_sleep(seconds)
        self.finish()

    def finish(self):
        """Mark the transfer finished and notify the subscribers (any thread)."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            subscribers, self._subscribers = self._subscribers, {}
        for fn in subscribers.values():
            fn()

    def subscribe(self, fn):
        """Call ``fn()`` once finished (at once if it is); return a token."""
        with self._lock:
            if not self.finished:
                token = object()
                self._subscribers[token] = fn
                return token
        fn()
        return None

    def unsubscribe(self, token):
        with self._lock:
            self._subscribers.pop(token, None)


# -- the adapter ----------------------------------------------------------------

class _Subscription:
    """One done callback: called at most once, and also the handle returned for it."""

    __slots__ = ('transfer',   # the transfer subscribed to: only its adapter removes this
                 'callback',   # called once the transfer has finished
                 'args',       # the positional arguments of the callback
                 'active',     # False once called or removed
                 'token')      # the transfer's own token for the subscription

    def __init__(self, transfer, callback, args):
        self.transfer = transfer
        self.callback = callback
        self.args = args
        self.active = True
        self.token = None

    def __call__(self):
        if self.active:
            self.active = False
            # Transfer.finish() stops at the first subscriber that raises:
            # keep the callback's error from stopping the others.
            try:
                self.callback(*self.args)
            except Exception as exc:
                logging.error('done callback %r of %r raised %r', self.callback,
                              self.transfer, exc)


@implementer(IWaitable)
class TransferWaitable:
    """IWaitable for a Transfer: ready when the transfer has finished."""

    def __init__(self, transfer):
        self.transfer = transfer

    def add_done_callback(self, callback, *args):
        if not callable(callback):
            raise TypeError('callback must be callable, got %r' % (callback,))
        subscription = _Subscription(self.transfer, callback, args)
        subscription.token = self.transfer.subscribe(subscription)
        if not subscription.active:    # already finished: it was called at once
            return None
        return subscription

    def remove_done_callback(self, handle):
        if handle is None or handle.transfer is not self.transfer:
            return      # None, or a handle of another transfer: nothing of ours
        handle.active = False
        self.transfer.unsubscribe(handle.token)


registry.register([implementedBy(Transfer)], IWaitable, '', TransferWaitable)


# -- using it -------------------------------------------------------------------

def main():
    assert isinstance(IWaitable(Transfer('probe', 0)), TransferWaitable)

    transfers = [Transfer('big', 0.5), Transfer('small', 0.05), Transfer('medium', 0.25)]
    with FiberPool(name='checks') as pool:
        checksum = pool.submit(sum, range(1000))
        order = [obj for obj in as_completed(transfers + [checksum], timeout=10)]
    print('ready in this order: %s' % ', '.join(
        obj.name if isinstance(obj, Transfer) else 'future' for obj in order))
    assert [obj.name for obj in order if isinstance(obj, Transfer)] == ['small', 'medium', 'big']

    # wait() with a count: the first one of two, the other left pending.
    slow, quick = Transfer('slow', 5), Transfer('quick', 0.05)
    done, pending = wait([slow, quick], count=1, timeout=10)
    assert done == [quick] and pending == [slow]
    assert slow._subscribers == {}, 'wait() removed its callback from the pending transfer'
    print('wait(count=1): %s done, %s pending' % (done[0].name, pending[0].name))
    print('custom_adapter: OK')


if __name__ == '__main__':
    main()
