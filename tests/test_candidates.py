"""The batch's array reductions against the same sums done pair by pair in plain Python."""

import numpy as np
import pytest

from model.candidates import Candidates, PairScores


@pytest.mark.parametrize("seed", range(5))
def test_merge_sums_each_pair_and_names_its_strongest_seed(seed):
    rng = np.random.default_rng(seed)
    n, n_rows = 400, 30
    requests, rows, seeds = rng.integers(0, 3, n), rng.integers(0, n_rows, n), rng.integers(0, n_rows, n)
    scores = rng.choice([0.25, 0.5, 1.0], n) if seed % 2 else rng.random(n)  # odd seeds: many ties
    totals: dict[int, float] = {}
    strongest: dict[int, tuple[float, int]] = {}
    for r, row, score, s in zip(requests.tolist(), rows.tolist(), scores.tolist(), seeds.tolist()):
        key = r * n_rows + row
        totals[key] = totals.get(key, 0.0) + score
        if key not in strongest or score > strongest[key][0]:  # a tie keeps the earlier contribution
            strongest[key] = (score, s)
    merged, keys = PairScores.merge(requests, rows, scores, seeds, n_rows), sorted(totals)
    assert merged.keys.tolist() == keys
    assert merged.totals == pytest.approx([totals[k] for k in keys])
    assert merged.anchors.tolist() == [strongest[k][1] for k in keys]
    looked_up, anchors = merged.lookup(np.array([keys[0], 3 * n_rows + 1]))  # a key present, one absent
    assert looked_up[1] == 0.0 and anchors[1] == -1 and anchors[0] == strongest[keys[0]][1]

def test_union_keeps_each_pair_once_and_flags_the_popular_ones():
    content = (np.array([0, 0, 1]), np.array([5, 7, 5]))
    popular = [(np.array([0, 1]), np.array([7, 9]))]
    new = (np.array([1]), np.array([2]), np.array([0.8]))
    union = Candidates.union([content], popular, new, n_rows=10)
    assert list(zip(union.requests.tolist(), union.rows.tolist())) == [(0, 5), (0, 7), (1, 2), (1, 5), (1, 9)]
    assert union.popular.tolist() == [False, True, False, False, True]
    assert np.isnan(union.new_cosine[[0, 1, 3, 4]]).all() and union.new_cosine[2] == 0.8


@pytest.mark.parametrize("seed", range(4))
def test_neighbour_arrays_stay_the_strongest_through_increments_without_repartitioning(seed):
    """The strongest set kept across increments is the one a fresh sort of the row gives, read after any step."""
    from model.cooccurrence import Cooccurrence

    rng = np.random.default_rng(seed)
    co = Cooccurrence(half_life_s=3600.0, max_neighbours=10)
    for step in range(600):  # rows grow past the bound, get pruned at twice it, and are read between increments
        co.add(int(rng.integers(0, 3)), int(rng.integers(3, 40)), float(rng.random()) + 0.01, ts=float(step))
        for item in range(3):
            keys, logs = co.neighbour_arrays(item)
            full = co.as_dict().get(item, {})
            expected = sorted(full.items(), key=lambda kv: -kv[1])[: co.max_neighbours]
            assert sorted(zip(keys.tolist(), logs.tolist())) == sorted(expected)
            neighbour = int(rng.integers(3, 40))  # one known entry, as scoring a single candidate reads it
            entry_keys, _ = co.neighbour_entry(item, neighbour)
            assert entry_keys.tolist() == ([neighbour] if neighbour in dict(expected) else [])
