"""Redis as the state store: users, item vectors, popularity. Every call is one pipelined round trip.

Keys (all under ``Settings.redis_prefix``):

- ``user:{user_id}`` — hash: one user's :class:`model.interests.UserState`. Every
  per-user key kind is listed in :data:`USER_KEY_KINDS`, which
  :meth:`RedisStore.forget_user` deletes.
- ``item:meta`` / ``item:vec`` — hashes: item id → item JSON / float32 vector bytes.
- ``item:log`` — stream of item ids in the order they were (re)encoded; every worker
  tails it to keep its in-process index a replica of ``item:vec``.
- ``pop`` — sorted set: item id → log2 forward-decayed popularity (see
  :mod:`model.popularity`), log-added atomically by a Lua script so that any number
  of workers can add to it.
- ``pop:scene:{scene}``, ``pop:stage:{n}`` — the same per segment of the traffic: per scene, per
  user stage (expires after ``user_ttl_s`` unused).
- ``pop:count`` — hash: item id → interactions counted, undecayed (``HINCRBY``): how
  much evidence an item has, as every worker counted it (co-visitation's item-kNN
  normalisation divides by it; a restarted worker reads it back).
- ``pairs:{table}:{item_id}`` — sorted set per item and table (``covisit``,
  ``bundle``): neighbour id → log2 forward-decayed count (:mod:`model.cooccurrence`),
  log-added by the same script, which trims a row back to its ``max_neighbours``
  strongest once it holds twice as many: bounded per item. Every worker reads them.

Popularity and pair increments are written in the same MULTI/EXEC as the states of
the users whose events they come from, and those states record the offsets they
reflect: a redelivered event is skipped by its user's state, so its increments are
never added twice, and a batch that was not written is redelivered whole, so none
are lost. The item-item state is as effectively-once as the user state.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import orjson
import redis

from model.cooccurrence import PairCount
from model.interests import UserState
from model.schema import Item

# log2(2^a + 2^b) for each (member, value) pair, atomically: model.cooccurrence.log_add's
# arithmetic, operation for operation, so a worker's local copy agrees to the bit.
# ARGV[1]: trim each set to its ARGV[1] highest once it holds twice as many (0: never). Then,
# for each key in KEYS, how many pairs are its, and the pairs: many rows in one call, since
# a batch touches thousands of rows and a call each cost the worker more than the counting.
LOG_ADD = """
local keep = tonumber(ARGV[1])
local CHUNK = 1000  -- members per ZMSCORE / ZADD: unpack() has a limit
local at = 2
for k = 1, #KEYS do
  local key = KEYS[k]
  local last = at + 2 * tonumber(ARGV[at])
  local members = {}
  for i = at + 1, last, 2 do
    members[#members + 1] = ARGV[i]
  end
  -- One read and one write per row rather than per pair; a member met twice adds up in order.
  local olds = {}
  for s = 1, #members, CHUNK do
    for _, old in ipairs(redis.call('ZMSCORE', key, unpack(members, s, math.min(s + CHUNK - 1, #members)))) do
      olds[#olds + 1] = old
    end
  end
  local now, unique = {}, {}
  for j = 1, #members do
    local member, v = members[j], tonumber(ARGV[at + 2 * j])
    local old = now[member]
    if old == nil then
      unique[#unique + 1] = member
      if olds[j] then
        old = tonumber(olds[j])
      end
    end
    if old then
      local m = math.max(old, v)
      v = m + math.log(2 ^ (old - m) + 2 ^ (v - m)) / math.log(2)
    end
    now[member] = v
  end
  for s = 1, #unique, CHUNK do
    local args = {}
    for j = s, math.min(s + CHUNK - 1, #unique) do
      args[#args + 1] = now[unique[j]]
      args[#args + 1] = unique[j]
    end
    redis.call('ZADD', key, unpack(args))
  end
  at = last + 1
  if keep > 0 then
    local n = redis.call('ZCARD', key)
    if n > 2 * keep then
      redis.call('ZREMRANGEBYRANK', key, 0, n - keep - 1)
    end
  end
end
return (#ARGV - 1 - #KEYS) / 2
"""
#: Rows per LOG_ADD call: few calls per batch, none that holds Redis for long.
LOG_ADD_ROWS = 512

#: The item-item tables kept per item (see :class:`model.cooccurrence.PairCount`).
PAIR_TABLES = ("covisit", "bundle")

ITEM_LOG_MAXLEN = 1_000_000
#: The snapshot name the learned item representations are kept under (beside the ranker's).
ITEM_SPACE = "item_space"

#: Every kind of key that holds one user's data, as ``{prefix}{kind}:{user_id}``.
#: A new per-user key must be listed here, or ``streamrec forget`` would leave it behind.
USER_KEY_KINDS = ("user",)


def text_digest(text: str) -> str:
    """A short digest of an item's encoder text: re-encode only when it changed."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def round_trip(method):
    """Report the call's duration to ``self.on_round_trip(name, seconds)``, failed calls included."""
    name = method.__name__

    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            if self.on_round_trip is not None:
                self.on_round_trip(name, time.perf_counter() - start)

    return timed


class RedisStore:
    """Batched reads and writes of streamrec's state in one Redis database.

    Parameters
    ----------
    url
        ``redis://host:port/db``.
    prefix
        Put before every key, so that several apps (or tests) share a database.
    client
        An existing client to use instead of connecting to ``url``.
    on_round_trip
        Called as ``on_round_trip(operation, seconds)`` after each public call
        (the method's name, e.g. ``"load_users"``): the metrics hook.
    """

    def __init__(self, url: str, prefix: str = "sr:", *, client: redis.Redis | None = None,
                 on_round_trip: Callable[[str, float], None] | None = None, user_ttl_s: float = 0):
        self.redis = client or redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self.prefix = prefix
        #: A user's state expires after this long without events (0: never), which bounds Redis
        #: memory by the active users rather than by everyone who ever came by.
        self.user_ttl_s = int(user_ttl_s)
        self.on_round_trip = on_round_trip
        self._log_add = self.redis.register_script(LOG_ADD)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def close(self) -> None:
        self.redis.close()

    # --- users
    @round_trip
    def load_users(self, user_ids: Iterable[str], dim: int, half_lives: Sequence[float]) -> dict[str, UserState]:
        user_ids = list(dict.fromkeys(user_ids))
        pipe = self.redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.hgetall(self.key("user", user_id))
        return {uid: UserState.from_mapping(uid, mapping, dim, half_lives)
                for uid, mapping in zip(user_ids, pipe.execute())}

    @round_trip
    def save_users(self, states: Iterable[UserState], popularity: Mapping[str, float] | None = None,
                   pairs: Sequence[PairCount] = (), max_neighbours: int = 100,
                   segment_popularity: Mapping[str, Mapping[str, float]] | None = None,
                   counts: Mapping[str, int] | None = None) -> None:
        """Write user states and the batch's popularity, counts and pair increments in one MULTI/EXEC.

        All or nothing: a worker killed mid-batch leaves either none of the batch's
        writes (its events are redelivered and applied) or all of them (each state's
        ``position`` then marks the redelivered events as applied). Never half.
        """
        pipe = self.redis.pipeline(transaction=True)
        for state in states:
            key = self.key("user", state.user_id)
            pipe.hset(key, mapping=state.to_mapping())
            if self.user_ttl_s:
                pipe.expire(key, self.user_ttl_s)
        if popularity:
            self._add_popularity(popularity, pipe)
        for segment, increments in (segment_popularity or {}).items():
            self._add_popularity(increments, pipe, segment)
        for item, n in (counts or {}).items():
            pipe.hincrby(self.key("pop", "count"), item, n)
        if pairs:
            self._add_pairs(pairs, max_neighbours, pipe)
        pipe.execute()

    def user_ids(self) -> list[str]:
        """Every user with a stored state (a SCAN: for checks and tools, not the hot path)."""
        start = len(self.key("user", ""))
        return [key.decode()[start:] for key in self.redis.scan_iter(self.key("user", "*"), count=10_000)]

    @round_trip
    def forget_user(self, user_id: str) -> int:
        """Delete every key holding ``user_id``'s data (:data:`USER_KEY_KINDS`); returns how many existed.

        Aggregates the user contributed to (popularity, co-visitation) hold no
        user id and stay. UNLINK frees the memory off Redis's main thread.
        """
        return int(self.redis.unlink(*(self.key(kind, user_id) for kind in USER_KEY_KINDS)))

    # --- items
    def catalogue_size(self) -> int:
        """How many items have a vector in the store."""
        return int(self.redis.hlen(self.key("item", "vec")))

    @round_trip
    def item_digests(self, item_ids: Sequence[str]) -> list[str | None]:
        """The stored text digest of each item (None when unknown)."""
        if not item_ids:
            return []
        raw = self.redis.hmget(self.key("item", "digest"), list(item_ids))
        return [None if d is None else d.decode() for d in raw]

    @round_trip
    def save_items(self, items: Sequence[Item], vectors: np.ndarray | None = None) -> None:
        """Store items with their vectors; without vectors, only their other fields (text unchanged).

        Every change is logged, so every worker's index follows.
        """
        if not items:
            return
        pipe = self.redis.pipeline(transaction=True)  # the change and its log entries land together
        pipe.hset(self.key("item", "meta"), mapping={i.item_id: orjson.dumps(i.to_dict()) for i in items})
        if vectors is not None:
            vectors = np.asarray(vectors, dtype=np.float32)
            pipe.hset(self.key("item", "vec"), mapping={i.item_id: v.tobytes() for i, v in zip(items, vectors)})
            pipe.hset(self.key("item", "digest"),
                      mapping={i.item_id: text_digest(i.text_for_encoder) for i in items})
        self._log_items(pipe, [i.item_id for i in items])
        pipe.execute()

    @round_trip
    def delete_items(self, item_ids: Sequence[str]) -> None:
        """Delete items (a tombstone on the items topic); logged, so every worker drops them too."""
        if not item_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        for kind in ("meta", "vec", "digest"):
            pipe.hdel(self.key("item", kind), *item_ids)
        pipe.delete(*(self.key("pairs", table, item) for item in item_ids for table in PAIR_TABLES))
        pipe.zrem(self.key("pop"), *item_ids)  # (scenes' sets keep them until they expire: never read)
        pipe.hdel(self.key("pop", "count"), *item_ids)
        self._log_items(pipe, item_ids)
        pipe.execute()

    def _log_items(self, pipe, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            pipe.xadd(self.key("item", "log"), {"id": item_id}, maxlen=ITEM_LOG_MAXLEN, approximate=True)

    @round_trip
    def items_after(self, cursor: str | None, dim: int,
                    count: int = 10_000) -> tuple[list[Item], np.ndarray, list[str], str]:
        """Items changed after ``cursor`` (a stream id; None = everything): (items, vectors, deleted ids, cursor).

        The first call reads the whole catalogue; later calls read only the log's tail. A
        logged id that the store no longer holds was deleted.
        """
        if cursor is None:
            # Take the log position first: anything written during the full read is read again
            # from the log next time, and upserting it twice is harmless.
            last = self.redis.xrevrange(self.key("item", "log"), count=1)
            cursor = last[0][0].decode() if last else "0-0"
            ids = [k.decode() for k in self.redis.hkeys(self.key("item", "vec"))]
        else:
            ids, seen = [], set()
            while True:
                entries = self.redis.xrange(self.key("item", "log"), min=f"({cursor}", count=count)
                if not entries:
                    break
                for _, fields in entries:
                    item_id = fields[b"id"].decode()
                    if item_id not in seen:
                        seen.add(item_id)
                        ids.append(item_id)
                cursor = entries[-1][0].decode()
        if not ids:
            return [], np.zeros((0, dim), dtype=np.float32), [], cursor
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.key("item", "meta"), ids)
        pipe.hmget(self.key("item", "vec"), ids)
        metas, vecs = pipe.execute()
        items, rows, deleted = [], [], []
        for item_id, meta, vec in zip(ids, metas, vecs):
            if meta is not None and vec is not None:
                d = orjson.loads(meta)
                d["genres"] = tuple(d.get("genres") or ())
                items.append(Item(**d))
                rows.append(np.frombuffer(vec, dtype=np.float32))
            elif meta is None:
                deleted.append(item_id)
        matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
        return items, matrix, deleted, cursor

    # --- snapshots (the ranker's, the learned item space's): the trainer writes, every worker polls the version
    @round_trip
    def save_snapshot(self, version: int, data: bytes, name: str = "ranker") -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.key(name, "snapshot"), data)
        pipe.set(self.key(name, "version"), version)
        pipe.execute()

    @round_trip
    def load_snapshot(self, newer_than: int = -1, name: str = "ranker") -> bytes | None:
        """The latest snapshot of ``name`` if its version is above ``newer_than`` (one cheap GET otherwise)."""
        version = self.redis.get(self.key(name, "version"))
        if version is None or int(version) <= newer_than:
            return None
        return self.redis.get(self.key(name, "snapshot"))

    # --- popularity
    def _popularity_key(self, segment: str | None) -> str:
        """``pop``, or ``pop:scene:home``, ``pop:stage:8``... for a segment (``scene:home``...)."""
        return self.key("pop") if segment is None else self.key("pop", segment)

    def _add_popularity(self, log_increments: Mapping[str, float], client, segment: str | None = None) -> None:
        args = [x for item, v in log_increments.items() for x in (item, repr(float(v)))]
        key = self._popularity_key(segment)
        self._log_add(keys=[key], args=[0, len(log_increments), *args], client=client)
        if segment is not None and self.user_ttl_s:
            client.expire(key, self.user_ttl_s)  # a scene nobody uses any more (or junk) goes in time

    # --- item-item counts
    def _add_pairs(self, pairs: Sequence[PairCount], max_neighbours: int, client) -> None:
        rows: dict[tuple[str, str], list] = {}  # grouped by row, increments in the order they came
        for pair in pairs:
            rows.setdefault((pair.table, pair.item), []).extend((pair.neighbour, repr(float(pair.log))))
        rows_in_order = list(rows.items())
        for at in range(0, len(rows_in_order), LOG_ADD_ROWS):
            keys, args = [], [max_neighbours]
            for (table, item), pairs_of_row in rows_in_order[at: at + LOG_ADD_ROWS]:
                keys.append(self.key("pairs", table, item))
                args += [len(pairs_of_row) // 2, *pairs_of_row]
            self._log_add(keys=keys, args=args, client=client)

    @round_trip
    def load_pairs(self, item_ids: Sequence[str], n: int) -> dict[tuple[str, str], list[tuple[str, float]]]:
        """The ``n`` strongest neighbours of each item in every table, as ``{(table, item): [(id, log2)]}``."""
        keys = [(table, item) for item in item_ids for table in PAIR_TABLES]
        pipe = self.redis.pipeline(transaction=False)
        for table, item in keys:
            _strongest(pipe, self.key("pairs", table, item), n)
        return {key: _scored(row) for key, row in zip(keys, pipe.execute())}

    def pair_rows(self) -> dict[tuple[str, str], dict[str, float]]:
        """Every stored row (a SCAN: for checks and tools, not the hot path)."""
        start = len(self.key("pairs", ""))
        out = {}
        for key in self.redis.scan_iter(match=self.key("pairs", "*"), count=1000):
            table, item = key.decode()[start:].split(":", 1)
            out[table, item] = {m.decode(): s for m, s in self.redis.zrange(key, 0, -1, withscores=True)}
        return out

    def pair_memory_bytes(self) -> int:
        """Redis memory held by the item-item rows (``MEMORY USAGE`` summed over them)."""
        return sum(self.redis.memory_usage(key) or 0
                   for key in self.redis.scan_iter(match=self.key("pairs", "*"), count=1000))

    @round_trip
    def top_popularity(self, n: int) -> list[tuple[str, float]]:
        return _scored(_strongest(self.redis, self.key("pop"), n))

    @round_trip
    def item_counts(self, item_ids: Sequence[str]) -> list[tuple[str, int]]:
        """Interactions counted by every worker for each of ``item_ids`` (those never counted left out)."""
        if not item_ids:
            return []
        values = self.redis.hmget(self.key("pop", "count"), list(item_ids))
        return [(item, int(v)) for item, v in zip(item_ids, values) if v is not None]

    @round_trip
    def top_segment_popularity(self, segments: Sequence[str], n: int) -> dict[str, list[tuple[str, float]]]:
        """The ``n`` most popular items in each of ``segments`` (``scene:home``...), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for segment in segments:
            _strongest(pipe, self._popularity_key(segment), n)
        return {segment: _scored(rows) for segment, rows in zip(segments, pipe.execute())}


def _strongest(client, key: str, n: int):
    """``ZREVRANGE key 0 n-1 WITHSCORES`` as sent, its reply left as the wire gave it (for :func:`_scored`).

    Not ``client.zrevrange(..., withscores=True)``: on RESP3 redis-py turns each score back
    into bytes and parses it again (6.4 s of a 44 s cProfile of 6,000 worker events, bench/worker.py).
    """
    return client.execute_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")


def _scored(reply) -> list[tuple[str, float]]:
    """``[(member, score)]`` from a WITHSCORES reply: RESP3's ``[[member, score], ...]`` or RESP2's flat list."""
    if reply and isinstance(reply[0], list):
        return [(m.decode(), float(v)) for m, v in reply]
    return [(m.decode(), float(v)) for m, v in zip(reply[::2], reply[1::2])]
