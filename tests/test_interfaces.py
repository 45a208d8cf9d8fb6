"""The zope interfaces, and the classes that declare them."""

import concurrent.futures

import gevent
import gevent.event
import pytest
from zope.interface.verify import verifyClass, verifyObject

from gruvi_gevent import Future
from gruvi_gevent.adapters import ConcurrentFutureWaitable, GeventWaitable
from gruvi_gevent.interfaces import IFuture, IPool, IWaitable


def test_ifuture_extends_iwaitable():
    assert IFuture.extends(IWaitable)


@pytest.mark.parametrize('iface, names', [
    (IWaitable, {'add_done_callback', 'remove_done_callback'}),
    (IFuture, {'add_done_callback', 'remove_done_callback', 'running', 'cancelled', 'done',
               'cancel', 'result', 'exception'}),
    (IPool, {'maxsize', 'minsize', 'name', 'submit', 'map', 'join', 'close'}),
], ids=['IWaitable', 'IFuture', 'IPool'])
def test_interface_names(iface, names):
    assert set(iface.names(all=True)) == names


def _cases(*cases):
    return [pytest.param(*case, id='%s.%s' % (case[0].__name__, case[1])) for case in cases]


@pytest.mark.parametrize('iface, name, signature', _cases(
    (IWaitable, 'add_done_callback', '(callback, *args)'),
    (IWaitable, 'remove_done_callback', '(handle)'),
    (IFuture, 'running', '()'),
    (IFuture, 'cancelled', '()'),
    (IFuture, 'done', '()'),
    (IFuture, 'cancel', '()'),
    (IFuture, 'result', '(timeout=None)'),
    (IFuture, 'exception', '(timeout=None)'),
    (IPool, 'submit', '(func, *args, **kwargs)'),
    (IPool, 'join', '()'),
    (IPool, 'close', '()'),
))
def test_method_signatures(iface, name, signature):
    assert iface[name].getSignatureString() == signature


def test_future_provides_ifuture():
    assert verifyClass(IFuture, Future)
    assert verifyClass(IWaitable, Future)
    assert verifyObject(IFuture, Future())
    assert verifyObject(IWaitable, Future())


def _gevent_waitables():
    return [GeventWaitable(gevent.event.Event()),
            GeventWaitable(gevent.event.AsyncResult()),
            GeventWaitable(gevent.Greenlet(lambda: None))]


def test_gevent_waitable_provides_iwaitable():
    assert verifyClass(IWaitable, GeventWaitable)
    for waitable in _gevent_waitables():
        assert verifyObject(IWaitable, waitable)


def test_concurrent_future_waitable_provides_iwaitable():
    assert verifyClass(IWaitable, ConcurrentFutureWaitable)
    waitable = ConcurrentFutureWaitable(concurrent.futures.Future())
    assert verifyObject(IWaitable, waitable)


@pytest.mark.parametrize('make', [
    gevent.event.Event, gevent.event.AsyncResult, lambda: gevent.Greenlet(lambda: None),
    concurrent.futures.Future,
], ids=['Event', 'AsyncResult', 'Greenlet', 'concurrent-Future'])
def test_adapted_objects_verify(make):
    assert verifyObject(IWaitable, IWaitable(make()))


def test_future_is_its_own_waitable():
    future = Future()
    assert IWaitable(future) is future
    assert IFuture(future) is future
