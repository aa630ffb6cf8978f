"""``streamrec replay --via-kafka`` agrees with the in-process replay of the same protocol, event by event."""

from __future__ import annotations

import time

import numpy as np
import pytest

from model.datasets import Dataset
from model.datasets.synthetic import DriftingUsers, make_catalog
from model.schema import parse_event, parse_item
from stream import kafka_replay

pytestmark = pytest.mark.integration

K = 10


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    catalog = make_catalog(n_categories=4, items_per_category=10, seed=5)
    sim = DriftingUsers(catalog, n_users=5, seed=5, start_ts=time.time() - 86400)
    events = [parse_event(e) for e in sim.events(120)]
    return Dataset("slice", [parse_item(i) for i in catalog], events)


def test_served_result_scores_each_event_against_the_users_previous_list(dataset):
    events = dataset.events[:4]
    served = kafka_replay.Served(events, [[e.item_id for e in events]] * 4, np.zeros(4, dtype=np.int64))
    result = kafka_replay.served_result(served, k=K)
    first_of_user = {}
    for n, e in enumerate(events):
        first_of_user.setdefault(e.user_id, n)
    assert list(result.positions) == [n for n in range(4) if first_of_user[events[n].user_id] != n]


def test_via_kafka_agrees_with_in_process(stack, tmp_path, dataset):
    from model.encoder import TextEncoder

    settings = stack.isolated_settings(tmp_path, partitions=1)
    encoder = TextEncoder(device=settings.encoder_device)
    vectors = encoder.encode([item.text_for_encoder for item in dataset.items])
    via = kafka_replay.replay_via_kafka(dataset, settings, k=K, workdir=tmp_path / "kafka", timeout_s=90)
    # The worker's micro-batches, as it took them: within a batch a list sees the counts of
    # other users' events of the same wave, so the oracle must cut the log where it did.
    local = kafka_replay.replay_served_in_process(dataset, settings, k=K, vectors=vectors,
                                                  batch_sizes=via.extra["batch_sizes"])

    assert via.extra["dead_lettered"] == 0 and via.extra["recommendations"] == len(dataset.events)
    assert via.extra["model_versions"] == [0]  # no trainer: the prior ranker throughout
    ours, theirs = kafka_replay.served_result(local, k=K), kafka_replay.served_result(via, k=K)
    assert len(ours.ranks) == len(theirs.ranks) == len(dataset.events) - len({e.user_id for e in dataset.events})
    assert list(ours.positions) == list(theirs.positions)
    same_lists = sum(a == b for a, b in zip(local.lists, via.lists))
    assert list(ours.ranks) == list(theirs.ranks), (
        f"{int((ours.ranks == theirs.ranks).sum())}/{len(ours.ranks)} ranks agree, "
        f"{same_lists}/{len(via.lists)} lists identical")
    assert ours.metrics == theirs.metrics
    assert ours.metrics["hit_rate"] > 0
