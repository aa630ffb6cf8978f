"""The online ranker: a river logistic regression over (user, candidate) features.

river learns one example at a time (``learn_one``); serving needs a score for
every candidate of every event, so :meth:`OnlineRanker.score_many` takes the
model's weights out of river into a NumPy vector once per model change and
scores a whole candidate matrix with one product.

The model starts from prior weights (content similarity and co-visitation
count, popularity a little), so the very first lists are sensible; learning
then moves them toward what users actually take.

Examples
--------
>>> import numpy as np
>>> ranker = OnlineRanker(["cos", "pop"], prior={"cos": 1.0})
>>> X = np.array([[0.9, 0.0], [0.1, 1.0]])
>>> ranker.score_many(X).round(2)
array([0.9, 0.1])
>>> for _ in range(300):   # users keep taking the popular item, not the similar one
...     ranker.learn_rows(X, np.array([0, 1]))
>>> bool(ranker.score_many(X)[1] > ranker.score_many(X)[0]), ranker.version > 0
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import orjson
from river import linear_model, optim


class OnlineRanker:
    """Logistic regression on named features, learned online, scored in batches.

    Parameters
    ----------
    features
        Feature names, in the column order of the matrices passed in.
    prior
        Starting weights by feature name (others start at 0).
    learning_rate
        SGD step size.
    l2
        L2 regularisation.

    Attributes
    ----------
    version
        Increases with every batch learned; a snapshot carries it to the workers.
    n_learned
        Examples learned so far.
    """

    def __init__(self, features: Sequence[str], prior: Mapping[str, float] | None = None,
                 learning_rate: float = 0.02, l2: float = 1e-5):
        self.features = list(features)
        # No intercept: the recommender learns on feature differences (pairs), where a bias
        # term has nothing to explain, and ranking never needs one.
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2, intercept_lr=0.0)
        for name, weight in (prior or {}).items():
            self.model._weights[name] = weight  # river has no public way to warm-start weights
        self.version = 0
        self.n_learned = 0
        self._weights: np.ndarray | None = None

    def weights(self) -> tuple[np.ndarray, float]:
        """The current weights in feature order, and the intercept."""
        if self._weights is None:
            w = self.model.weights
            self._weights = np.array([w.get(name, 0.0) for name in self.features], dtype=np.float64)
        return self._weights, float(self.model.intercept)

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Logits for each row of ``X`` (order-preserving, so no sigmoid is needed to rank)."""
        w, b = self.weights()
        return X @ w + b

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Each feature's share of each row's logit (weight × value): what an explanation names."""
        w, _ = self.weights()
        return X * w

    def learn_rows(self, X: np.ndarray, y: np.ndarray) -> None:
        """Learn labelled rows (1 = taken, 0 = not) one SGD step each, in order (river's ``learn_one`` per row).

        Not river's ``learn_many``, which takes one step on a mini-batch's mean gradient.
        """
        names = self.features
        for row, label in zip(X.tolist(), y.tolist()):
            self.model.learn_one(dict(zip(names, row)), bool(label))
        self.n_learned += len(y)
        self.version += 1
        self._weights = None

    def learn_list(self, X: np.ndarray, y: np.ndarray) -> None:
        """Learn one labelled list (``y`` 1 for the item taken, first or not): the taken row against each other.

        As pairs of feature differences, in both orders, so the logistic loss stays symmetric.
        """
        taken = np.flatnonzero(y > 0)
        if len(taken) != 1 or len(y) < 2:
            return
        diffs = X[taken].astype(np.float64) - np.delete(X, taken, axis=0).astype(np.float64)
        self.learn_rows(np.vstack([diffs, -diffs]), np.concatenate([np.ones(len(diffs)), np.zeros(len(diffs))]))

    # --- snapshots: what the trainer publishes and every worker hot-swaps. Plain JSON weights,
    # not a pickle: a worker must never execute what it reads from a topic. Plain SGD keeps no
    # per-feature state, so the weights are all a trainer needs to resume from either.
    def to_bytes(self) -> bytes:
        w, b = self.weights()
        return orjson.dumps({"version": self.version, "n_learned": self.n_learned,
                             "features": self.features, "weights": w.tolist(), "intercept": b})

    @classmethod
    def from_bytes(cls, data: bytes, **options) -> OnlineRanker:
        snap = orjson.loads(data)
        ranker = cls(snap["features"], prior=dict(zip(snap["features"], snap["weights"])), **options)
        ranker.model.intercept = snap["intercept"]
        ranker.version, ranker.n_learned = snap["version"], snap["n_learned"]
        return ranker
