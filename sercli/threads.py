"""One BLAS thread while features are computed, wherever they are computed.

Kept apart from features.py so that the classify process can use it without importing scipy.
"""

from __future__ import annotations

from functools import lru_cache


def one_blas_thread():
    """A context that caps BLAS at one thread while features are computed, as in joblib's
    workers: a matrix product split over more threads sums in another order, and features (so
    the scores, the feature cache and the trained weights) would then depend on --jobs and on
    the core count in their last digit."""
    return _blas_controller().limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _blas_controller():
    # finding the loaded libraries is most of threadpool_limits' 0.6 ms; done once per process
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
