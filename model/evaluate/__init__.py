"""Evaluation: the baselines and the prequential protocol that compares them with the full system.

Kept apart from the recommender core, as river keeps ``evaluate/`` apart from
its models: :mod:`~model.evaluate.baselines` (the systems compared, behind one
:class:`~model.evaluate.baselines.System` protocol) and
:mod:`~model.evaluate.prequential` (recommend, score, then observe, per event).
"""

from model.evaluate.baselines import (
    ContentOnly,
    CoVisitation,
    DecayedPopular,
    FullSystem,
    ItemKNN,
    MostPopular,
    System,
    item_knn,
    symmetric_covisitation,
)
from model.evaluate.prequential import Report, SystemResult, prequential, rank_of, ranking_metrics

__all__ = ["CoVisitation", "ContentOnly", "DecayedPopular", "FullSystem", "ItemKNN", "MostPopular", "Report",
           "System", "SystemResult", "item_knn", "prequential", "rank_of", "ranking_metrics", "symmetric_covisitation"]
