"""The item-vector index: exact nearest neighbours by one matrix product.

Exact search over a contiguous float32 matrix is a few microseconds per
thousand items on one core, so it stays exact until catalogues reach the
hundreds of thousands; the interface (``add``/``search``) is what an ANN index
would replace. The catalogue may grow online: rows are upserted in place and
capacity doubles as needed.

Examples
--------
>>> import numpy as np
>>> from model.schema import Item
>>> index = ItemIndex(dim=2)
>>> index.add([Item("a", "A", "x"), Item("b", "B", "y")], np.array([[1, 0], [0, 1]], dtype=np.float32))
>>> index.search(np.array([0.9, 0.1], dtype=np.float32), k=1)
[('a', 0.9)]
>>> index.search(np.array([0.9, 0.1], dtype=np.float32), k=1, exclude={"a"})
[('b', 0.1)]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from model.schema import Item


class ItemIndex:
    """Item metadata and L2-normalised vectors, searchable by cosine similarity."""

    def __init__(self, dim: int):
        self.dim = dim
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.items: dict[str, Item] = {}
        self._matrix = np.zeros((64, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.rows

    @property
    def matrix(self) -> np.ndarray:
        """The ``(len(self), dim)`` view of the vectors, row ``i`` for ``self.ids[i]``."""
        return self._matrix[: len(self.ids)]

    def add(self, items: Sequence[Item], vectors: np.ndarray) -> None:
        """Insert or replace items with their vectors (normalised here, so any scale is fine)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(items), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        for item, vector in zip(items, vectors):
            row = self.rows.get(item.item_id)
            if row is None:
                row = self.rows[item.item_id] = len(self.ids)
                self.ids.append(item.item_id)
                if row == len(self._matrix):
                    self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._matrix[row] = vector
            self.items[item.item_id] = item

    def vector(self, item_id: str) -> np.ndarray | None:
        row = self.rows.get(item_id)
        return None if row is None else self._matrix[row]

    def search(self, query: np.ndarray, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` items most cosine-similar to ``query`` (unit length), skipping ``exclude``."""
        if not self.ids or k <= 0:
            return []
        scores = self.matrix @ np.asarray(query, dtype=np.float32)
        return self.top(scores, k, exclude)

    def top(self, scores: np.ndarray, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` best rows of a score per row, skipping ``exclude``, best first."""
        want = min(len(scores), k + len(exclude))
        idx = np.argpartition(-scores, want - 1)[:want] if want < len(scores) else np.arange(len(scores))
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        out = []
        for i in idx:
            item_id = self.ids[i]
            if item_id not in exclude:
                out.append((item_id, round(float(scores[i]), 6)))
                if len(out) == k:
                    break
        return out
