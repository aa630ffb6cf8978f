"""The trainer's work, apart from its Faust app (:mod:`stream.trainer`): learn feedback, publish snapshots."""

from __future__ import annotations

import logging

from model.features import initial_ranker
from model.ranker import OnlineRanker
from stream import metrics
from stream.codec import Message, Outgoing, decode_all, decode_feedback
from stream.settings import Settings
from stream.store import RedisStore

log = logging.getLogger("streamrec.trainer")


class Trainer:
    """Learns labelled impressions into one :class:`model.ranker.OnlineRanker` and snapshots it."""

    def __init__(self, settings: Settings, store: RedisStore):
        self.settings = settings
        self.store = store
        fresh = initial_ranker(settings.model)
        snapshot = store.load_snapshot()
        self.ranker = (OnlineRanker.from_bytes(snapshot, learning_rate=settings.model.learning_rate)
                       if snapshot else fresh)
        if self.ranker.features != fresh.features:
            log.warning("stored snapshot has other features %s: starting afresh", self.ranker.features)
            self.ranker = fresh
        self.published = self.ranker.version
        metrics.model_version(self.ranker.version)
        log.info("trainer starts from ranker version %d", self.ranker.version)

    def learn(self, messages: list[Message]) -> list[Outgoing]:
        """Learn every valid record; returns dead letters for the others."""
        n_features = len(self.ranker.features)
        max_bytes = self.settings.max_feedback_bytes
        decoded = decode_all(messages, lambda payload: decode_feedback(payload, n_features, max_bytes),
                             self.settings.feedback_topic, self.settings.dead_letter_max_bytes)
        for reason in decoded.reasons:
            metrics.dead_lettered("feedback", reason)
        for (X, y), _ in decoded.values:
            learned = self.ranker.n_learned
            self.ranker.learn_list(X, y)
            metrics.examples_learned(self.ranker.n_learned - learned)  # the pairs it learned, as before lists
        metrics.model_version(self.ranker.version)
        return decoded.dead

    def snapshot(self) -> bytes | None:
        """Publish the ranker to Redis if it learned since the last snapshot; returns what was published."""
        if self.ranker.version == self.published:
            return None
        data = self.ranker.to_bytes()
        self.store.save_snapshot(self.ranker.version, data)
        self.published = self.ranker.version
        return data
