"""gruvi_gevent: Gruvi's futures API on gevent.

Asynchronous function calls: submit work to a :class:`FiberPool` (greenlets)
or a :class:`ThreadPool` (OS threads), get a :class:`Future` back, and wait on
futures and gevent's own objects with :func:`wait` and :func:`as_completed`.
:func:`blocking` runs a blocking call in the process-wide IO thread pool
while the hub keeps serving every other greenlet. Past one core,
:class:`ProcessPool` runs Python code in worker processes, and
:class:`ExecutorPool` puts any ``concurrent.futures`` executor behind the
same API (``gruvi_gevent.dask`` does so for dask.distributed).
"""

from .errors import Cancelled, Error, Timeout
from .future import Future
from .waiting import as_completed, wait
from .pool import PoolBase, PoolStats
from .fiberpool import FiberPool
from .threadpool import ThreadPool
from .processpool import ProcessPool
from .executorpool import ExecutorPool
from .blocking import blocking, get_cpu_pool, get_io_pool, get_process_pool, stop_idle_threads
from . import adapters  # noqa: F401  (registers the IWaitable adapters)
from . import monkey as _monkey

# Under gevent's monkey patching, locks that pool threads can share with
# greenlets (see gruvi_gevent.monkey).
_monkey._install()

__all__ = [
    'Future', 'PoolBase', 'PoolStats', 'FiberPool', 'ThreadPool', 'ProcessPool',
    'ExecutorPool', 'get_io_pool', 'get_cpu_pool', 'get_process_pool', 'blocking',
    'stop_idle_threads',
    'wait', 'as_completed',
    'Error', 'Timeout', 'Cancelled',
]
