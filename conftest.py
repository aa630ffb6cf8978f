"""pytest, for the tests and the doctests alike: the model's BLAS runs on one thread, as in every streamrec process."""

from model.threads import limit_blas_threads

limit_blas_threads()
