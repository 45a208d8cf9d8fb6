"""The exceptions and the public names of the package."""

import gevent
import pytest

import gruvi_gevent
from gruvi_gevent import Cancelled, Error, Timeout


@pytest.mark.parametrize('name', ['Future', 'wait', 'as_completed', 'Error', 'Timeout',
                                  'Cancelled'])
def test_public_name_is_exported(name):
    assert name in gruvi_gevent.__all__
    assert getattr(gruvi_gevent, name) is not None


@pytest.mark.parametrize('name', ['IWaitable', 'IFuture', 'IPool'])
def test_interfaces_are_exported(name):
    from gruvi_gevent import interfaces
    assert name in interfaces.__all__
    assert getattr(interfaces, name).__name__ == name


@pytest.mark.parametrize('cls, bases, not_bases', [
    (Error, (Exception,), ()),
    (Timeout, (Error, TimeoutError, Exception), ()),
    (Cancelled, (BaseException,), (Exception, Error)),
], ids=['Error', 'Timeout', 'Cancelled'])
def test_hierarchy(cls, bases, not_bases):
    for base in bases:
        assert issubclass(cls, base)
    for base in not_bases:
        assert not issubclass(cls, base)


def test_timeout_is_not_gevent_timeout():
    # gevent's Timeout is a BaseException that a library must never confuse with its own.
    assert not issubclass(Timeout, gevent.Timeout)
    assert not issubclass(gevent.Timeout, Timeout)
