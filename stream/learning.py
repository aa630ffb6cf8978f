"""The trainer's work, apart from its Faust app (:mod:`stream.trainer`): learn feedback, publish snapshots.

Two models learn from the ``feedback`` topic: the ranker, from each record's
labelled list, and the learned item representations
(:class:`model.representations.RepresentationLearner`), from each record's
next-item example. Both are published to Redis as versioned snapshots that
every worker's sync timer hot-swaps.
"""

from __future__ import annotations

import logging

from model.features import initial_ranker
from model.ranker import OnlineRanker
from model.representations import ItemSpace, RepresentationLearner
from stream import metrics
from stream.codec import Message, Outgoing, decode_all, decode_feedback
from stream.settings import Settings
from stream.store import ITEM_SPACE, RedisStore

log = logging.getLogger("streamrec.trainer")


class Trainer:
    """Learns labelled lists into one :class:`model.ranker.OnlineRanker`, next-item examples into the item space."""

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
        #: The learned representations (None: off, or no catalogue in Redis yet to learn them over).
        self.learner: RepresentationLearner | None = None
        self._item_cursor: str | None = None
        #: The newest item space trained, and the version last published.
        self.space: ItemSpace | None = None
        self.space_published = -1

    def learn(self, messages: list[Message]) -> list[Outgoing]:
        """Learn every valid record; returns dead letters for the others."""
        n_features = len(self.ranker.features)
        max_bytes = self.settings.max_feedback_bytes
        decoded = decode_all(messages, lambda payload: decode_feedback(payload, n_features, max_bytes),
                             self.settings.feedback_topic, self.settings.dead_letter_max_bytes)
        for reason in decoded.reasons:
            metrics.dead_lettered("feedback", reason)
        sequences = []
        for record, _ in decoded.values:
            learned = self.ranker.n_learned
            self.ranker.learn_list(record.X, record.y)
            metrics.examples_learned(self.ranker.n_learned - learned)  # the pairs it learned, as before lists
            if record.sequence is not None:
                sequences.append(record.sequence)
        metrics.model_version(self.ranker.version)
        if sequences:
            self._learn_sequences(sequences)
        return decoded.dead

    def _learn_sequences(self, sequences: list[tuple[list[str], str]]) -> None:
        learner = self._learner()
        if learner is None:
            return
        if any(item not in learner.slots for _, item in sequences):
            self._sync_items(learner)  # encoded by a worker since the last read
        for context, item in sequences:
            learner.add_example(context, item)
            if learner.due:
                self.space = learner.train()
                metrics.item_space_version(self.space.version)
        metrics.sequence_examples(len(sequences))

    def _learner(self) -> RepresentationLearner | None:
        """The representation learner, built at the first example once Redis holds a catalogue."""
        config = self.settings.model
        if self.learner is not None or not config.learned_dim:
            return self.learner
        items, vectors, _, self._item_cursor = self.store.items_after(None, 0)
        if not items:
            return None
        start = self.store.load_snapshot(name=ITEM_SPACE)
        space = ItemSpace.from_bytes(start) if start else None
        if space is not None and space.shape != ItemSpace.initial(vectors.shape[1], config).shape:
            log.warning("stored item space %d is shaped for another config: starting afresh", space.version)
            space = None
        self.learner = RepresentationLearner(vectors.shape[1], config, start=space)
        self.learner.add_items([item.item_id for item in items], vectors)
        self.space_published = self.learner.version
        log.info("trainer learns item representations from version %d over %d items on %s",
                 self.learner.version, len(items), self.learner.device)
        return self.learner

    def _sync_items(self, learner: RepresentationLearner) -> None:
        items, vectors, deleted, self._item_cursor = self.store.items_after(self._item_cursor, learner.text_dim)
        if items:
            learner.add_items([item.item_id for item in items], vectors)
        learner.remove_items(deleted)

    def snapshot(self) -> bytes | None:
        """Publish the ranker (and a newer item space) to Redis if learned since the last snapshot.

        Returns the ranker as published (None: unchanged), for the snapshots topic.
        """
        if self.space is not None and self.space.version > self.space_published:
            self.store.save_snapshot(self.space.version, self.space.to_bytes(), name=ITEM_SPACE)
            self.space_published = self.space.version
        if self.ranker.version == self.published:
            return None
        data = self.ranker.to_bytes()
        self.store.save_snapshot(self.ranker.version, data)
        self.published = self.ranker.version
        return data
