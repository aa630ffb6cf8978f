"""A worker's view of the item-item counts every worker shares in Redis.

Each worker folds its own events' pair increments into its in-process
:class:`model.cooccurrence.Cooccurrence` at once (its users see their own
actions in the next list) and writes them to Redis with the users' states
(:meth:`stream.store.RedisStore.save_users`). Before a batch is scored, the rows
its seed items need are replaced by Redis's copy when this worker last fetched
them more than ``ttl_s`` ago: one pipelined round trip for all of them. So a
row a list reads holds every worker's increments up to ``ttl_s`` old, plus this
worker's own since; a restarted worker starts from everything learned before.

With one worker the fetched row equals the local one to the bit (the Lua script
does :func:`model.cooccurrence.log_add`'s arithmetic in the same order), so
sharing changes nothing a one-worker replay measures.

Staleness, per batch, the age of the oldest fetched row a list read, goes to
``streamrec_pair_rows_age_seconds``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from model.recommender import Recommender
from stream import metrics
from stream.store import RedisStore


class SharedPairs:
    """Keeps the recommender's pair rows within ``ttl_s`` of the shared ones.

    Parameters
    ----------
    store
        Where the rows are.
    recommender
        Whose rows to refresh (by item id; neighbours not in its index are skipped).
    ttl_s
        How old a fetched row may be before it is fetched again (0: every batch).
    max_rows
        How many fetch times to remember; the oldest are forgotten (fetched again on use).
    max_fetch
        The most rows one batch fetches: rows never fetched first, then the stalest; the
        rest wait for a later batch. One worker serving many users would otherwise fetch
        nearly the whole catalogue's rows every second (20 seeds per user): a batch's cost
        stays bounded whatever the traffic.
    """

    def __init__(self, store: RedisStore, recommender: Recommender, ttl_s: float, max_rows: int = 1_000_000,
                 max_fetch: int = 512):
        self.store, self.recommender = store, recommender
        self.ttl_s, self.max_rows, self.max_fetch = ttl_s, max_rows, max_fetch
        self.fetched_at: OrderedDict[str, float] = OrderedDict()

    def refresh(self, item_ids: Iterable[str], now: float | None = None) -> int:
        """Fetch the rows of ``item_ids`` older than ``ttl_s`` and install them; returns how many were fetched."""
        now = time.monotonic() if now is None else now
        index = self.recommender.index
        wanted = [i for i in dict.fromkeys(item_ids) if i in index]
        never = -float("inf")
        stale = [i for i in wanted if now - self.fetched_at.get(i, never) > self.ttl_s]
        if len(stale) > self.max_fetch:
            stale = sorted(stale, key=lambda i: self.fetched_at.get(i, never))[: self.max_fetch]
        if stale:
            rows = self.store.load_pairs(stale, self.recommender.config.max_neighbours)
            for (table, item), neighbours in rows.items():
                self.recommender.set_pair_row(table, item, neighbours)
            for item in stale:
                self.fetched_at[item] = now
                self.fetched_at.move_to_end(item)
            while len(self.fetched_at) > self.max_rows:
                self.fetched_at.popitem(last=False)
        if wanted:
            metrics.pair_rows_read(len(wanted), len(stale), now - min(self.fetched_at.get(i, now) for i in wanted))
        return len(stale)

    def forget(self, item_ids: Iterable[str]) -> None:
        """Fetch these rows again on their next use (the items were deleted, or re-added)."""
        for item in item_ids:
            self.fetched_at.pop(item, None)
