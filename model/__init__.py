"""streamrec's recommender core: pure Python/NumPy/torch, no network I/O."""

import numpy  # noqa: F401  (loads the BLAS that the limit below applies to)
from threadpoolctl import threadpool_limits

# The model's matrices are small (catalogue × 384 against a handful of vectors): BLAS threads
# cost more to wake than they save, and under load they spin against the encoder's own torch
# threads. Measured on 2 busy cores: 5.5 ms with OpenBLAS threads vs 0.3 ms on one, per call.
# torch is imported later and keeps its own intra-op pool for the encoder.
threadpool_limits(limits=1, user_api="blas")
