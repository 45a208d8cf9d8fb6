"""The side-by-side benchmark of gruvi_gevent (``make bench``).

It lives beside the package, not in it: the wheel ships the library only.
Run it from the repository's root with ``python -m benchmarks.bench``.
"""
