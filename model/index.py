"""The item-vector index: nearest neighbours by cosine, for many query directions at once.

The recommender retrieves content candidates only through :meth:`ItemIndex.search`.
Below ``ann_min_items`` live items the search is exact: one matrix product of
the catalogue against all the queries of a micro-batch, which is faster there
than any approximate index (bench/README.md: exact beats HNSW up to a few
thousand items). From that size on it goes through a faiss inverted-file index
(IVF-Flat, inner product on unit vectors), chosen by ``bench/ann.py``: of
faiss-HNSW, hnswlib, usearch, voyager and IVF-Flat it had the best recall for
the time on batched queries at 100k items, the only real deletion, upserts in
milliseconds per thousand (the HNSW libraries take seconds), and a build in
seconds, so a worker rebuilds it at start from the vectors in Redis instead of
re-encoding anything. It is retrained (rebuilt) when the catalogue has grown
fourfold since the last training, as its clusters age.

Rows are stable: an item keeps its row while it lives, and a removed item's row
is zeroed and never returned or given to another item (deletions are rare),
so whatever keeps rows (neighbour lists, popularity) can never mistake one
item for another; ``live`` says which rows still hold an item.

Examples
--------
>>> import numpy as np
>>> from model.schema import Item
>>> index = ItemIndex(dim=2)
>>> index.add([Item("a", "A", "x"), Item("b", "B", "y")], np.array([[1, 0], [0, 1]], dtype=np.float32))
[0, 1]
>>> rows, scores = index.search(np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32), k=1)
>>> [[index.ids[r] for r in row] for row in rows.tolist()], np.round(scores.astype(float), 2).tolist()
([['a'], ['b']], [[0.9], [0.8]])
>>> rows, _ = index.search(np.array([[0.9, 0.1]], dtype=np.float32), k=2, exclude=[np.array([0])])
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
from model.vectors import unit_rows


class ItemIndex:
    """Item metadata and L2-normalised vectors, searchable by cosine similarity.

    Parameters
    ----------
    dim
        Vector size.
    ann_min_items
        From this many live items on, search goes through the approximate index.
    nprobe
        Inverted lists the approximate index visits per query (recall against speed:
        bench/catalogue.py measures both).
    """

    def __init__(self, dim: int, ann_min_items: int = 20_000, nprobe: int = 16):
        self.dim = dim
        self.ann_min_items = ann_min_items
        self.nprobe = nprobe
        #: Row → item id ("" for a free row).
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.items: dict[str, Item] = {}
        #: Bumped by every removal: caches that map item ids to rows check it.
        self.generation = 0
        self._matrix = np.zeros((64, dim), dtype=np.float32)
        self._live = np.zeros(64, dtype=bool)
        self._free: list[int] = []
        self._ann = None
        self._trained_on = 0
        #: Search exactly whatever the size (benchmarks set it to measure the exact path beside).
        self.force_exact = False

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.rows

    @property
    def matrix(self) -> np.ndarray:
        """The vectors by row (``self.ids[i]`` is row ``i``'s item; free rows are zero)."""
        return self._matrix[: len(self.ids)]

    @property
    def live(self) -> np.ndarray:
        """Per row, whether it holds an item (removed items' rows do not)."""
        return self._live[: len(self.ids)]

    @property
    def approximate(self) -> bool:
        """Whether searches go through the approximate index now."""
        return self._ann is not None

    def add(self, items: Sequence[Item], vectors: np.ndarray) -> list[int]:
        """Insert or replace items with their vectors (normalised here, so any scale is fine); returns their rows."""
        vectors = unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(items), self.dim))
        rows = []
        for item, vector in zip(items, vectors):
            row = self.rows.get(item.item_id)
            if row is None:
                row = len(self.ids)
                self.ids.append(item.item_id)
                if row == len(self._matrix):
                    self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
                    self._live = np.concatenate([self._live, np.zeros_like(self._live)])
                self.rows[item.item_id] = row
                self._live[row] = True
            self._matrix[row] = vector
            self.items[item.item_id] = item
            rows.append(row)
        self._index_rows(np.asarray(rows, dtype=np.int64))
        return rows

    def update(self, items: Sequence[Item]) -> None:
        """New metadata (price, title...) for items already here; their vectors stay."""
        for item in items:
            if item.item_id in self.rows:
                self.items[item.item_id] = item

    def remove(self, item_ids: Sequence[str]) -> list[str]:
        """Delete items (unknown ids are ignored); returns the ids that were here."""
        removed, rows = [], []
        for item_id in item_ids:
            row = self.rows.pop(item_id, None)
            if row is not None:
                del self.items[item_id]
                self.ids[row] = ""
                self._matrix[row] = 0.0
                self._live[row] = False
                self._free.append(row)
                removed.append(item_id)
                rows.append(row)
        if rows:
            self.generation += 1
            if self._ann is not None:
                self._ann.remove_ids(np.asarray(rows, dtype=np.int64))
        return removed

    def vector(self, item_id: str) -> np.ndarray | None:
        row = self.rows.get(item_id)
        return None if row is None else self._matrix[row]

    def search(self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None,
               exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most cosine-similar to each of ``queries`` (unit rows), skipping ``exclude[q]``'s rows.

        ``exact`` forces the exact search whatever the size (what benchmarks compare against).

        Returns
        -------
        rows, scores
            ``(len(queries), k)`` arrays, best first; where fewer than ``k`` rows are
            left, the row is -1 and the score ``-inf``.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        if not len(self.rows) or k <= 0 or not len(queries):
            return rows, scores
        if self._ann is None or exact or self.force_exact:
            found, found_scores = self._exact(queries, k, exclude)
        else:
            found, found_scores = self._approximate(queries, k, exclude)
        width = min(k, found.shape[1])
        rows[:, :width], scores[:, :width] = found[:, :width], found_scores[:, :width]
        return rows, scores

    def _exact(self, queries, k, exclude):
        sims = queries @ self.matrix.T  # (queries, rows): each query's row contiguous for argpartition
        if self._free:
            sims[:, self._free] = -np.inf
        if exclude is not None:
            lengths = [len(e) for e in exclude]
            if sum(lengths):
                sims[np.repeat(np.arange(len(queries)), lengths), np.concatenate(exclude)] = -np.inf
        n = sims.shape[1]
        want = min(k, n)
        top = np.argpartition(-sims, want - 1, axis=1)[:, :want] if want < n else np.tile(np.arange(n), (len(sims), 1))
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
        return np.where(np.isfinite(top_scores), top, -1), top_scores

    def _approximate(self, queries, k, exclude):
        # The index cannot skip a different set per query: ask for enough more to make up
        # for the excluded rows likely among the best (at most as many again), then drop them.
        extra = 0 if exclude is None else min(max((len(e) for e in exclude), default=0), k)
        self._probe(self._ann)
        scores, rows = self._ann.search(queries, k + extra)
        if extra:
            for q, excluded in enumerate(exclude):
                if len(excluded):
                    hit = np.isin(rows[q], excluded)
                    rows[q, hit], scores[q, hit] = -1, -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")
            rows, scores = np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1)
        return rows, scores

    def _probe(self, ann) -> None:
        import faiss

        ann.nprobe = self.nprobe
        # The lists' centres are found through an HNSW graph. At its default breadth (16) it
        # puts added items in lists other than their nearest and misses lists when searching:
        # candidate recall stopped at 0.92 at 100k items and 0.66 at 1M whatever the nprobe
        # (bench/catalogue.py). At 64 it is 0.98 at 100k for nprobe 16, for 15 % more time per query.
        faiss.downcast_index(ann.quantizer).hnsw.efSearch = max(64, 4 * self.nprobe)

    def _index_rows(self, rows: np.ndarray) -> None:
        """Keep the approximate index in step with upserted ``rows``; build or rebuild it when due."""
        live = len(self.rows)
        if live < self.ann_min_items:
            return
        if self._ann is None or live >= 4 * self._trained_on:
            self._build()
        elif len(rows):
            self._ann.remove_ids(rows)  # an upsert replaces: faiss keeps one entry per id only if told
            self._ann.add_with_ids(self._matrix[rows], rows)

    @property
    def memory_bytes(self) -> int:
        """Bytes the vectors and the approximate index hold."""
        ann = 0
        if self._ann is not None:
            import faiss

            ann = int(faiss.serialize_index(self._ann).nbytes)
        return int(self._matrix.nbytes) + ann

    def _build(self) -> None:
        import faiss

        live = np.array(sorted(self.rows.values()), dtype=np.int64)
        vectors = self._matrix[live]
        # ~4·sqrt(N) lists (faiss's guideline is 4-16·sqrt(N)). The lists' centres are found
        # through a small HNSW graph, so finding the nprobe nearest lists stays cheap however
        # many there are; k-means runs 10 rounds on 40 points per list (faiss wants >= 39, which
        # caps the lists of a small catalogue).
        nlist = max(8, min(int(4 * np.sqrt(len(live))), len(live) // 39))
        ann = faiss.index_factory(self.dim, f"IVF{nlist}_HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
        ann.cp.niter = 10
        sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: 40 * nlist]]
        ann.train(sample)
        self._probe(ann)
        ann.add_with_ids(vectors, live)
        self._ann, self._trained_on = ann, len(live)
