"""streamrec's recommender core: pure Python/NumPy/torch, no network I/O.

Processes that run the model call :func:`model.threads.limit_blas_threads`
once at start (the CLI, the benches and the tests do).
"""
