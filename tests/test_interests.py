"""Decay math of the interest vectors, and the state's round trip through its stored form."""

import itertools

import numpy as np
import pytest

from model.interests import InterestVector, UserState

rng = np.random.default_rng(0)


def test_weight_halves_after_one_half_life():
    iv = InterestVector(dim=3, half_lives=(60.0, 3600.0))
    iv.add(np.array([1.0, 0.0, 0.0]), weight=2.0, ts=1000.0)
    iv.add(np.zeros(3), weight=0.0, ts=1060.0)  # move the clock one short half-life on
    assert iv.vectors[0, 0] == pytest.approx(1.0)
    assert iv.vectors[1, 0] == pytest.approx(2.0 * 2 ** (-60 / 3600))
    assert iv.mass[0] == pytest.approx(1.0)


def test_simultaneous_events_commute():
    vecs = rng.normal(size=(4, 8)).astype(np.float32)
    results = []
    for order in itertools.permutations(range(4)):
        iv = InterestVector(dim=8, half_lives=(30.0, 3000.0))
        for i in order:
            iv.add(vecs[i], weight=float(i + 1), ts=500.0)
        results.append(iv.vectors.copy())
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-5, atol=1e-6)


def test_late_events_land_where_they_would_have():
    """Any arrival order gives the state that time order gives: redelivery and lateness are harmless."""
    vecs = rng.normal(size=(5, 8)).astype(np.float32)
    times = [10.0, 25.0, 40.0, 41.0, 90.0]
    in_order = InterestVector(dim=8, half_lives=(20.0, 2000.0))
    for v, t in zip(vecs, times):
        in_order.add(v, 1.5, t)
    shuffled = InterestVector(dim=8, half_lives=(20.0, 2000.0))
    for i in [3, 0, 4, 2, 1]:
        shuffled.add(vecs[i], 1.5, times[i])
    np.testing.assert_allclose(shuffled.vectors, in_order.vectors, rtol=1e-5, atol=1e-6)
    assert shuffled.ts == in_order.ts == 90.0


def test_state_round_trip_and_bounded_seen():
    state = UserState("u1", InterestVector(dim=4, half_lives=(10.0, 100.0)))
    state.interests.add(np.ones(4, dtype=np.float32), 1.0, 5.0)
    for n in range(10):
        state.mark_seen(f"i{n}", float(n), "view", max_seen=6)
    state.pending.append(("i99", 4.0, 2.0))
    assert list(state.seen) == ["i4", "i5", "i6", "i7", "i8", "i9"]
    back = UserState.from_mapping("u1", state.to_mapping(), dim=4, half_lives=(10.0, 100.0))
    np.testing.assert_array_equal(back.interests.vectors, state.interests.vectors)
    assert back.seen == state.seen and back.recent == state.recent and back.pending == state.pending
    with pytest.raises(ValueError, match="another shape"):
        UserState.from_mapping("u1", state.to_mapping(), dim=4, half_lives=(10.0, 100.0, 1000.0))


def test_round_trip_with_scenes_and_impressions():
    from model.interests import Impressions

    state = UserState("u1", InterestVector(dim=4, half_lives=(10.0, 100.0)))
    scene = InterestVector(dim=4, half_lives=(100.0,))
    scene.add(np.arange(4, dtype=np.float32), 2.0, 7.0)
    state.scenes["search"] = scene
    state.shown = Impressions(["a", "b"], np.ones((2, 3), np.float32), "home", 9.0, 4,
                              ["c"], np.zeros((1, 3), np.float32), ["a", "b", "c", "d"])
    back = UserState.from_mapping("u1", state.to_mapping(), dim=4, half_lives=(10.0, 100.0))
    np.testing.assert_array_equal(back.scenes["search"].vectors, scene.vectors)
    assert back.scenes["search"].ts == 7.0 and back.shown.pool == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(back.shown.features, state.shown.features)
    np.testing.assert_array_equal(back.shown.sample_features, state.shown.sample_features)
    assert (back.shown.item_ids, back.shown.sample_ids, back.shown.model_version) == (["a", "b"], ["c"], 4)
