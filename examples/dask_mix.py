"""DaskPool: tasks of a dask.distributed cluster, mixed with greenlets in one wait().

dask's own calls block the hub, so the cluster and the client are made
through blocking(); the pool's futures are ours, and a plain dask future is
waitable too once gruvi_gevent.dask is imported.
"""

import distributed
import gevent
from gruvi_gevent import blocking, wait
from gruvi_gevent.dask import DaskPool


def square(x):
    return x * x


def main():
    cluster = blocking(distributed.LocalCluster, n_workers=2, threads_per_worker=1,
                       processes=True, host='127.0.0.1', dashboard_address=None,
                       # its HTTP server, on 8787 unless told otherwise
                       scheduler_kwargs={'dashboard_address': '127.0.0.1:0'})
    client = blocking(distributed.Client, cluster)
    try:
        with DaskPool(client) as pool:
            task = pool.submit(square, 7)                          # our Future
            theirs = client.submit(square, 8, pure=False)          # dask's own future
            greenlet = gevent.spawn(gevent.sleep, 0.1)
            done, pending = wait([task, theirs, greenlet], timeout=30)
            print(len(done), pending, task.result())               # 3 [] 49
            print(sorted(pool.map(square, range(5), timeout=30)))  # [0, 1, 4, 9, 16]
    finally:
        blocking(client.close)
        blocking(cluster.close)
    print('dask_mix: OK')


if __name__ == '__main__':
    main()
