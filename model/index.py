"""The item-vector index: nearest neighbours by cosine, for many query directions at once.

The recommender retrieves content candidates only through :meth:`ItemIndex.search`,
so the search behind it can change without the model noticing. Today it is
exact: one matrix product of the catalogue against all the queries. The
catalogue may grow online: rows are upserted in place and capacity doubles as
needed.

Examples
--------
>>> import numpy as np
>>> from model.schema import Item
>>> index = ItemIndex(dim=2)
>>> index.add([Item("a", "A", "x"), Item("b", "B", "y")], np.array([[1, 0], [0, 1]], dtype=np.float32))
>>> rows, scores = index.search(np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32), k=1)
>>> [[index.ids[r] for r in row] for row in rows.tolist()], np.round(scores.astype(float), 2).tolist()
([['a'], ['b']], [[0.9], [0.8]])
>>> rows, _ = index.search(np.array([[0.9, 0.1]], dtype=np.float32), k=2, exclude_rows=[0])
>>> rows.tolist()   # fewer than k left: the rest is -1
[[1, -1]]
>>> index.remove(["a"]), "a" in index, len(index)
(['a'], False, 1)
>>> index.search(np.array([[1.0, 0.0]], dtype=np.float32), k=2)[0].tolist()
[[1, -1]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.schema import Item


class ItemIndex:
    """Item metadata and L2-normalised vectors, searchable by cosine similarity.

    Rows are stable: an item keeps its row while it lives, a removed item's row is
    zeroed, never returned by :meth:`search`, and reused by the next item added.
    """

    def __init__(self, dim: int):
        self.dim = dim
        #: Row → item id ("" for a free row).
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.items: dict[str, Item] = {}
        self._matrix = np.zeros((64, dim), dtype=np.float32)
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.rows

    @property
    def matrix(self) -> np.ndarray:
        """The vectors by row (``self.ids[i]`` is row ``i``'s item; free rows are zero)."""
        return self._matrix[: len(self.ids)]

    def add(self, items: Sequence[Item], vectors: np.ndarray) -> None:
        """Insert or replace items with their vectors (normalised here, so any scale is fine)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(items), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        for item, vector in zip(items, vectors):
            row = self.rows.get(item.item_id)
            if row is None:
                if self._free:
                    row = self._free.pop()
                    self.ids[row] = item.item_id
                else:
                    row = len(self.ids)
                    self.ids.append(item.item_id)
                    if row == len(self._matrix):
                        self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
                self.rows[item.item_id] = row
            self._matrix[row] = vector
            self.items[item.item_id] = item

    def update(self, items: Sequence[Item]) -> None:
        """New metadata (price, title...) for items already here; their vectors stay."""
        for item in items:
            if item.item_id in self.rows:
                self.items[item.item_id] = item

    def remove(self, item_ids: Sequence[str]) -> list[str]:
        """Delete items (unknown ids are ignored); returns the ids that were here."""
        removed = []
        for item_id in item_ids:
            row = self.rows.pop(item_id, None)
            if row is not None:
                del self.items[item_id]
                self.ids[row] = ""
                self._matrix[row] = 0.0
                self._free.append(row)
                removed.append(item_id)
        return removed

    def vector(self, item_id: str) -> np.ndarray | None:
        row = self.rows.get(item_id)
        return None if row is None else self._matrix[row]

    def search(self, queries: np.ndarray, k: int, exclude_rows: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most cosine-similar to each of ``queries`` (unit rows), skipping ``exclude_rows``.

        Returns
        -------
        rows, scores
            ``(len(queries), k)`` arrays, best first; where fewer than ``k`` rows are
            left, the row is -1 and the score ``-inf``.
        """
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        n = len(self.ids)  # rows, free ones included
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        if not n or k <= 0 or not len(queries):
            return rows, scores
        sims = queries @ self.matrix.T  # (queries, items): each query's row contiguous for argpartition
        sims[:, list(exclude_rows)] = -np.inf
        sims[:, self._free] = -np.inf
        want = min(k, n)
        top = np.argpartition(-sims, want - 1, axis=1)[:, :want] if want < n else np.tile(np.arange(n), (len(sims), 1))
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
        found = np.isfinite(top_scores)
        rows[:, :want] = np.where(found, top, -1)
        scores[:, :want] = top_scores
        return rows, scores
