"""Data for the replay, the demo and the tests: recorded logs and a generated catalogue.

Kept apart from the recommender core, as river keeps ``datasets/`` apart from
its models: :mod:`~model.datasets.movielens` and :mod:`~model.datasets.jsonl`
read recorded logs into a :class:`~model.datasets.base.Dataset`;
:mod:`~model.datasets.synthetic` generates a catalogue (from the vocabulary in
``vocabulary.json``) and users whose interests drift.
"""

from model.datasets.base import Dataset
from model.datasets.jsonl import load_jsonl
from model.datasets.movielens import RatingTypes, load_movielens, movielens_format

__all__ = ["Dataset", "RatingTypes", "load_jsonl", "load_movielens", "movielens_format"]
