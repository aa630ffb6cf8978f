"""BLAS threads: the model runs best on one, and processes say so at start.

The model's matrices are small (candidates × 384 against a handful of
directions): BLAS threads cost more to wake than they save, and under load they
spin against the encoder's own torch threads. Measured on 2 busy cores: 5.5 ms
per product with OpenBLAS's threads against 0.3 ms on one. Setting the limit is
a process-wide decision, so it is an explicit call at process start rather
than a side effect of importing the model; a model built in a process that did
not make it warns once, as implicit does about OpenBLAS's threads.

torch keeps its own intra-op pool for the encoder: the limit is for BLAS only.
"""

from __future__ import annotations

import os
import warnings

from threadpoolctl import threadpool_info, threadpool_limits

_warned = False


def limit_blas_threads() -> None:
    """Run BLAS (OpenBLAS, MKL...) on one thread in this process, from now on.

    The limit reaches the BLAS libraries loaded when it is set, so they are loaded
    first: NumPy's, which the model's products use, SciPy's (river imports it) and
    faiss's own (its index training). OpenMP threads (torch's encoder and faiss's
    searches share one runtime) are left as they are, but told to sleep rather than
    spin when idle: on 2 busy cores a spinning thread steals the other's time.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss  # noqa: F401
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    threadpool_limits(limits=1, user_api="blas")


def warn_if_blas_threaded() -> None:
    """Warn once per process if BLAS runs on more than one thread (see the module docstring)."""
    global _warned
    if _warned:
        return
    threaded = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"
                and pool.get("num_threads", 1) > 1]
    if threaded:
        _warned = True
        warnings.warn(f"BLAS ({threaded[0].get('internal_api')}) uses {threaded[0]['num_threads']} threads; the "
                      "model is faster on one: call model.threads.limit_blas_threads() at process start "
                      "(or set OPENBLAS_NUM_THREADS=1)", RuntimeWarning, stacklevel=3)
