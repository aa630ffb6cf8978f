"""The item index: exact below ``ann_min_items``, faiss IVF above; upserts, deletes, exclusions, growth."""

from __future__ import annotations

import numpy as np
import pytest

from model.index import ItemIndex
from model.schema import Item

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in n/50 tight clusters, like a catalogue's categories."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 50, 1), DIM))
    vectors = centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def items(n: int, start: int = 0) -> list[Item]:
    return [Item(f"i{start + j}", f"item {start + j}", "c") for j in range(n)]


def filled(n: int, ann_min_items: int = 1000, seed: int = 0) -> tuple[ItemIndex, np.ndarray]:
    index = ItemIndex(DIM, ann_min_items=ann_min_items, nprobe=16)
    vectors = clustered(n, seed)
    index.add(items(n), vectors)
    return index, vectors


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def test_below_the_threshold_the_search_is_exact():
    index, vectors = filled(500)
    assert not index.approximate
    queries = clustered(20, seed=1)
    rows, scores = index.search(queries, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    assert (rows == truth).all() and np.all(np.diff(scores, axis=1) <= 0)


def test_above_the_threshold_the_approximate_search_finds_what_the_exact_one_does():
    index, _ = filled(6000)
    assert index.approximate
    queries = clustered(200, seed=2)
    approximate, _ = index.search(queries, 50)
    exact, _ = index.search(queries, 50, exact=True)
    assert recall(approximate, exact) >= 0.95


@pytest.mark.parametrize("n", [500, 6000], ids=["exact", "approximate"])
def test_a_deleted_item_is_never_returned_and_its_row_is_not_reused(n):
    index, vectors = filled(n)
    gone = [f"i{j}" for j in range(0, n, 7)]
    gone_rows = {index.rows[i] for i in gone}
    assert index.remove(gone + ["never-here"]) == gone
    rows, _ = index.search(vectors[:300], 20)  # the deleted items' own vectors among the queries
    assert not gone_rows & set(rows.ravel().tolist())
    assert all(i not in index for i in gone) and len(index) == n - len(gone)
    index.add([Item(gone[0], "back again", "c")], vectors[:1])
    assert index.rows[gone[0]] not in gone_rows  # a new row: old references to the old one stay dead


@pytest.mark.parametrize("n", [500, 6000], ids=["exact", "approximate"])
def test_an_upsert_moves_an_item_to_its_new_vector(n):
    index, vectors = filled(n)
    moved = vectors[n - 1] * -1.0  # far from where it was
    row = index.rows["i0"]
    index.add([Item("i0", "moved", "c")], moved[None])
    rows, _ = index.search(moved[None], 1)
    assert rows[0, 0] == row and index.rows["i0"] == row
    rows, _ = index.search(vectors[:1], 5)
    assert row not in rows[0].tolist()  # no stale entry at the old place


@pytest.mark.parametrize("n", [500, 6000], ids=["exact", "approximate"])
def test_excluded_rows_are_skipped_per_query(n):
    index, vectors = filled(n)
    queries = vectors[:5]
    first, _ = index.search(queries, 10)
    exclude = [first[q, :3] for q in range(5)]
    rows, _ = index.search(queries, 10, exclude=exclude)
    for q in range(5):
        assert not set(exclude[q].tolist()) & set(rows[q].tolist())
        assert set(first[q, 3:].tolist()) <= set(rows[q].tolist()) or index.approximate


def test_the_index_is_rebuilt_as_the_catalogue_grows_and_keeps_every_item():
    index = ItemIndex(DIM, ann_min_items=1000, nprobe=16)
    vectors = clustered(9000, seed=3)
    for start in range(0, 9000, 1500):  # grows past 4x the size it was built at
        index.add(items(1500, start), vectors[start:start + 1500])
    assert index.approximate and len(index) == 9000
    rows, _ = index.search(vectors[::90], 1)
    assert (rows[:, 0] == np.arange(0, 9000, 90)).mean() >= 0.95  # each item finds itself
    assert index.memory_bytes > 9000 * DIM * 4


def test_fewer_items_than_asked_pads_with_minus_one():
    index, _ = filled(5)
    rows, scores = index.search(clustered(2, seed=4), 8)
    assert (rows[:, 5:] == -1).all() and np.isinf(scores[:, 5:]).all()
