"""Synthetic catalog and drifting users: the generated data of the demo and the tests.

Nothing here comes from a real dataset.  :func:`make_catalog` writes a product
catalog from a hand-made vocabulary (one per category: product nouns,
descriptors, features and uses), so that the text of items of one category is
close for a sentence encoder and far from other categories.
:class:`DriftingUsers` simulates users who mostly interact with one category
at a time and drift to another one every so often; :meth:`DriftingUsers.interest`
tells the truth, for scoring demos and tests.

Everything is deterministic per seed, and uses only :meth:`random.Random.random`
(stable across Python versions), never the global random state.

>>> catalog = make_catalog(n_categories=3, items_per_category=4, seed=0)
>>> len(catalog), catalog[0]["item_id"], catalog[0]["category"]
(12, 'i0001', 'running shoes')
>>> users = DriftingUsers(catalog, n_users=5, seed=0)
>>> [e["type"] in EVENT_TYPES for e in users.events(3)]
[True, True, True]
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import NamedTuple

from model.schema import EVENT_TYPES

__all__ = [
    "CATEGORIES",
    "EVENT_TYPES",
    "EVENT_TYPE_PROBS",
    "DriftingUsers",
    "make_catalog",
]

#: How often :class:`DriftingUsers` emits each of :data:`model.schema.EVENT_TYPES`.
EVENT_TYPE_PROBS: tuple[float, ...] = (0.60, 0.25, 0.10, 0.05)


class _Vocab(NamedTuple):
    nouns: tuple[str, ...]  # product nouns, as they read in a sentence
    adjectives: tuple[str, ...]  # descriptors that fit every noun of the category
    features: tuple[str, ...]  # phrases that follow the noun ("with ...", "that ...")
    uses: tuple[str, ...]  # what it is for ("... made for <use>.")
    price: tuple[float, float]  # plausible price range, sampled log-uniformly


def _load_vocabulary() -> dict[str, _Vocab]:
    """The per-category vocabulary, shipped beside this module as ``vocabulary.json``.

    Ordered: ``make_catalog(n_categories=k)`` takes the first k categories.
    """
    data = json.loads(resources.files(__package__).joinpath("vocabulary.json").read_text(encoding="utf-8"))
    return {name: _Vocab(tuple(v["nouns"]), tuple(v["adjectives"]), tuple(v["features"]), tuple(v["uses"]),
                         (float(v["price"][0]), float(v["price"][1])))
            for name, v in data["categories"].items()}


_VOCAB: dict[str, _Vocab] = _load_vocabulary()

#: The category names :func:`make_catalog` can use, in the order it takes them.
CATEGORIES: tuple[str, ...] = tuple(_VOCAB)

# Appended to titles once every descriptor x noun pair of a category is used.
_SERIES = (
    "Pro",
    "Plus",
    "Lite",
    "Max",
    "Elite",
    "Sport",
    "Studio",
    "Mini",
    "Classic",
    "X",
)
_CONNECTORS = ("made for", "ideal for", "great for", "designed for", "perfect for")
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "for", "in", "of", "on", "the", "to", "with"}
)


# --------------------------------------------------------------------------- helpers
# Only Random.random() is used: its stream is stable across Python versions, unlike
# choice/shuffle/randint, whose implementation has changed before.


def _below(rng: random.Random, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _pick(rng: random.Random, seq: Sequence):
    return seq[_below(rng, len(seq))]


def _shuffle(rng: random.Random, xs: list) -> None:
    for i in range(len(xs) - 1, 0, -1):
        j = _below(rng, i + 1)
        xs[i], xs[j] = xs[j], xs[i]


def _weighted(rng: random.Random, weights: Sequence[float]) -> int:
    x = rng.random() * sum(weights)
    for i, w in enumerate(weights):
        x -= w
        if x < 0:
            return i
    return len(weights) - 1


def _title_case(phrase: str) -> str:
    """Capitalise each word (and each part of a hyphenated word), keeping acronyms.

    >>> _title_case("chef's knife with a pour-over LED set of 5G phones")
    "Chef's Knife with a Pour-Over LED Set of 5G Phones"
    """
    words = []
    for k, word in enumerate(phrase.split()):
        if k > 0 and word in _SMALL_WORDS:
            words.append(word)
        else:
            words.append("-".join(p[:1].upper() + p[1:] for p in word.split("-")))
    return " ".join(words)


def _article(word: str) -> str:
    """'a' or 'an' for the word that follows.

    >>> [_article(w) for w in ("ultralight", "USB", "LED", "8-inch", "espresso", "14k", "unique")]
    ['an', 'a', 'an', 'an', 'an', 'a', 'a']
    """
    w = word.lower()
    if (
        word[:1].isupper()
        and word.split("-")[0].isupper()
        and len(word.split("-")[0]) > 1
    ):
        return (
            "an" if w[0] in "aefhilmnorsx" else "a"
        )  # an acronym, read letter by letter
    if w.startswith(("uni", "use", "usu", "ut", "eu", "one")):
        return "a"
    if w.startswith(("8", "11", "18")):
        return "an"
    return "an" if w[0] in "aeiou" else "a"


def _plural(noun: str) -> bool:
    """Whether a product noun is plural ("pruning shears", not "prime lens").

    >>> [_plural(n) for n in ("pruning shears", "prime lens", "chess set", "tennis balls")]
    [True, False, False, True]
    """
    last = noun.split()[-1].lower()
    return (
        last.endswith("s")
        and not last.endswith("ss")
        and last not in {"lens", "tennis"}
    )


def _plural_verb(feature: str) -> str:
    """Make a feature phrase agree with a plural noun ("that makes" -> "that make").

    >>> [_plural_verb(f) for f in ("that makes it easy", "that mixes drinks", "with a grip")]
    ['that make it easy', 'that mix drinks', 'with a grip']
    """
    words = feature.split(" ", 2)
    if len(words) < 2 or words[0] != "that" or not words[1].endswith("s"):
        return feature
    verb = words[1]
    if verb.endswith(("xes", "shes", "ches", "sses")):
        verb = verb[:-2]
    elif not verb.endswith("ss"):
        verb = verb[:-1]
    return " ".join(["that", verb, *words[2:]])


# --------------------------------------------------------------------------- catalog


def make_catalog(
    n_categories: int = 24, items_per_category: int = 20, seed: int = 0
) -> list[dict]:
    """Generate a product catalog of plain dicts.

    Each category (the first ``n_categories`` of :data:`CATEGORIES`) gets
    ``items_per_category`` items; titles pair a descriptor with a product noun
    of the category ("Lightweight Trail Running Shoe"), and a series name or a
    number is appended when the pairs run out, so titles are unique across the
    catalog.  The text is one sentence saying what the item is and what it is
    for, in the category's own vocabulary.  Prices are sampled log-uniformly
    from a range plausible for the category and end in ``.99``.

    Parameters
    ----------
    n_categories : int
        How many categories, from 1 to ``len(CATEGORIES)``.
    items_per_category : int
        Items per category, at least 1.
    seed : int
        Seed; the same arguments always give the same catalog.

    Returns
    -------
    list of dict
        Items with keys ``item_id`` (``"i0001"``, ... in catalog order),
        ``title``, ``category``, ``text`` and ``price`` (float), grouped by
        category in the order of :data:`CATEGORIES`.

    Raises
    ------
    ValueError
        If ``n_categories`` or ``items_per_category`` is out of range.

    Examples
    --------
    >>> catalog = make_catalog(n_categories=2, items_per_category=3, seed=0)
    >>> item = catalog[0]
    >>> sorted(item)
    ['category', 'item_id', 'price', 'text', 'title']
    >>> item["item_id"], item["category"]
    ('i0001', 'running shoes')
    >>> item["title"]
    'Breathable Cushioned Running Trainer'
    >>> item["text"]
    'A breathable cushioned running trainer with a seamless knit upper, ideal for easy recovery jogs.'
    >>> item["price"]
    91.99
    >>> [it["category"] for it in catalog]
    ['running shoes', 'running shoes', 'running shoes', 'espresso & coffee', 'espresso & coffee', 'espresso & coffee']
    >>> make_catalog(2, 3, seed=0) == catalog
    True
    """
    if not 1 <= n_categories <= len(CATEGORIES):
        raise ValueError(
            f"n_categories must be in 1..{len(CATEGORIES)}, got {n_categories}"
        )
    if items_per_category < 1:
        raise ValueError(
            f"items_per_category must be at least 1, got {items_per_category}"
        )
    rng = random.Random(seed)
    total = n_categories * items_per_category
    width = max(4, len(str(total)))
    seen_titles: set[str] = set()
    items: list[dict] = []
    for category in CATEGORIES[:n_categories]:
        vocab = _VOCAB[category]
        pairs = [(a, n) for a in vocab.adjectives for n in vocab.nouns]
        _shuffle(rng, pairs)
        lo, hi = vocab.price
        for k in range(items_per_category):
            adjective, noun = pairs[k % len(pairs)]
            round_ = k // len(pairs)
            title = _title_case(f"{adjective} {noun}")
            if round_:
                title += " " + _SERIES[(round_ - 1) % len(_SERIES)]
                if round_ > len(_SERIES):
                    title += f" {(round_ - 1) // len(_SERIES) + 1}"
            base, n = title, 2
            while title in seen_titles:
                title, n = f"{base} {n}", n + 1
            seen_titles.add(title)
            feature = _pick(rng, vocab.features)
            use = _pick(rng, vocab.uses)
            connector = _pick(rng, _CONNECTORS)
            if _plural(noun):
                head, feature = f"{adjective} {noun}", _plural_verb(feature)
            else:
                head = f"{_article(adjective)} {adjective} {noun}"
            text = f"{head} {feature}, {connector} {use}."
            price = math.exp(
                math.log(lo) + rng.random() * (math.log(hi) - math.log(lo))
            )
            items.append(
                {
                    "item_id": f"i{len(items) + 1:0{width}d}",
                    "title": title,
                    "category": category,
                    "text": text[0].upper() + text[1:],
                    "price": round(math.floor(price) + 0.99, 2),
                }
            )
    return items


# --------------------------------------------------------------------------- users


@dataclass
class _User:
    category: str
    remaining: int  # events left before the next drift
    taken: set[str] = field(default_factory=set)


class DriftingUsers:
    """Simulated users whose interest drifts from one category to another.

    Each user has a current category.  With probability ``focus`` an event's
    item comes from it, otherwise from a random other category; within a
    category, items the user has not taken yet are preferred (weighted by a
    fixed, Zipf-like popularity), and taken ones are reused only once the
    category is exhausted.  After about ``drift_every`` events of that user
    (uniformly 75 %-125 % of it, drawn again at each switch) the user switches
    to a different category.

    Parameters
    ----------
    catalog : list of dict
        Items with at least ``item_id`` and ``category`` (``title`` is used for
        search queries when present); usually from :func:`make_catalog`.
    n_users : int
        Number of users, ``"u000"``, ``"u001"``, ...
    focus : float
        Probability, in [0, 1], that an event comes from the current interest.
    drift_every : int
        Mean number of a user's events between switches; 0 or less: never drift.
    seed : int
        Seed; the same arguments give the same events.
    start_ts : float
        Timestamp (seconds) before the first event.
    mean_gap_s : float
        Mean gap between consecutive events (exponential, at least 1 ms).
    scenes : sequence of str
        Scenes, drawn uniformly; ``"search"`` events carry a query.

    Examples
    --------
    >>> users = DriftingUsers(make_catalog(4, 10), n_users=3, seed=1)
    >>> users.users
    ('u000', 'u001', 'u002')
    >>> events = list(users.events(200))
    >>> events[0]["event_id"], sorted(events[0])
    ('e-1', ['event_id', 'item_id', 'query', 'scene', 'ts', 'type', 'user_id'])
    >>> all(a["ts"] < b["ts"] for a, b in zip(events, events[1:]))
    True
    >>> {e["query"] is None for e in events if e["scene"] != "search"}
    {True}
    >>> users.interest("u001") in users.categories
    True
    """

    def __init__(
        self,
        catalog: list[dict],
        n_users: int = 50,
        focus: float = 0.85,
        drift_every: int = 25,
        seed: int = 0,
        start_ts: float = 1_700_000_000.0,
        mean_gap_s: float = 30.0,
        scenes: Sequence[str] = ("home", "search", "detail", "cart"),
    ) -> None:
        if not catalog:
            raise ValueError("catalog is empty")
        if n_users < 1:
            raise ValueError(f"n_users must be at least 1, got {n_users}")
        if not 0.0 <= focus <= 1.0:
            raise ValueError(f"focus must be in [0, 1], got {focus}")
        if not mean_gap_s > 0:
            raise ValueError(f"mean_gap_s must be positive, got {mean_gap_s}")
        if not scenes:
            raise ValueError("scenes is empty")
        self._rng = random.Random(seed)
        self._focus = float(focus)
        self._drift_every = int(drift_every)
        self._scenes = tuple(scenes)
        self._mean_gap = float(mean_gap_s)
        self._ts = float(start_ts)
        self._seq = 0

        by_cat: dict[str, list[dict]] = {}
        for item in catalog:
            by_cat.setdefault(item["category"], []).append(item)
        self._categories = tuple(by_cat)
        self._items = {c: [it["item_id"] for it in its] for c, its in by_cat.items()}
        # Fixed Zipf-like popularity within each category, in a seeded random order.
        self._weights: dict[str, list[float]] = {}
        for c, ids in self._items.items():
            ranks = list(range(len(ids)))
            _shuffle(self._rng, ranks)
            self._weights[c] = [1.0 / (r + 1) ** 0.8 for r in ranks]
        self._queries = {it["item_id"]: _queries_for(it) for it in catalog}

        width = max(3, len(str(n_users - 1)))
        self._users: dict[str, _User] = {}
        for i in range(n_users):
            category = _pick(self._rng, self._categories)
            self._users[f"u{i:0{width}d}"] = _User(category, self._next_drift())

    # -- public API

    @property
    def users(self) -> tuple[str, ...]:
        """The user ids, in order."""
        return tuple(self._users)

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories of the catalog, in order of first appearance."""
        return self._categories

    def interest(self, user_id: str) -> str:
        """The user's current category: the truth, for scoring demos and tests.

        Read right after receiving an event of this user, it is the category
        that event was drawn under (a drift happens just before a user's next
        event, never after the last one).

        Examples
        --------
        >>> users = DriftingUsers(make_catalog(3, 5), n_users=2, seed=0)
        >>> users.interest("u000") in users.categories
        True
        """
        return self._user(user_id).category

    def events(self, n: int) -> Iterator[dict]:
        """Generate ``n`` events interleaved across users, in increasing ``ts``.

        Successive calls continue the same stream (timestamps, sequence
        numbers, interests).  Each event is a dict with ``event_id``
        (``"e-<seq>"``), ``user_id``, ``item_id``, ``type`` (one of
        :data:`EVENT_TYPES`, with :data:`EVENT_TYPE_PROBS`), ``ts`` (seconds,
        rounded to the millisecond), ``scene`` and ``query`` (a short search
        string when the scene is ``"search"``, else ``None``).

        Examples
        --------
        >>> users = DriftingUsers(make_catalog(3, 5), n_users=4, seed=0)
        >>> first = list(users.events(5))
        >>> [e["event_id"] for e in first]
        ['e-1', 'e-2', 'e-3', 'e-4', 'e-5']
        >>> next(users.events(1))["ts"] > first[-1]["ts"]
        True
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self._events(n)

    # -- internals

    def _events(self, n: int) -> Iterator[dict]:
        rng = self._rng
        user_ids = tuple(self._users)
        for _ in range(n):
            user_id = _pick(rng, user_ids)
            state = self._users[user_id]
            if self._drift_every > 0 and state.remaining <= 0:
                state.category = self._other(state.category)
                state.remaining = self._next_drift()
            state.remaining -= 1
            category = state.category
            if len(self._categories) > 1 and rng.random() >= self._focus:
                category = self._other(category)
            item_id = self._take(state, category)
            type_ = EVENT_TYPES[_weighted(rng, EVENT_TYPE_PROBS)]
            scene = _pick(rng, self._scenes)
            query = _pick(rng, self._queries[item_id]) if scene == "search" else None
            gap = max(0.001, round(-math.log(1.0 - rng.random()) * self._mean_gap, 3))
            self._ts = round(self._ts + gap, 3)
            self._seq += 1
            yield {
                "event_id": f"e-{self._seq}",
                "user_id": user_id,
                "item_id": item_id,
                "type": type_,
                "ts": self._ts,
                "scene": scene,
                "query": query,
            }

    def _user(self, user_id: str) -> _User:
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"unknown user {user_id!r}") from None

    def _other(self, category: str) -> str:
        others = [c for c in self._categories if c != category]
        return _pick(self._rng, others) if others else category

    def _next_drift(self) -> int:
        d = self._drift_every
        if d <= 0:
            return 0
        lo, hi = max(1, round(0.75 * d)), max(1, round(1.25 * d))
        return lo + _below(self._rng, hi - lo + 1)

    def _take(self, state: _User, category: str) -> str:
        ids, weights = self._items[category], self._weights[category]
        fresh = [k for k, i in enumerate(ids) if i not in state.taken]
        if fresh:
            k = fresh[_weighted(self._rng, [weights[k] for k in fresh])]
        else:
            k = _weighted(self._rng, weights)
        state.taken.add(ids[k])
        return ids[k]


def _queries_for(item: dict) -> tuple[str, ...]:
    """Short search strings a user might type to find ``item``.

    >>> _queries_for({"title": "Compact Espresso Machine", "category": "espresso & coffee"})
    ('espresso machine', 'compact espresso machine', 'espresso & coffee')
    >>> _queries_for({"title": "Blue Widget Deluxe", "category": "widgets"})
    ('widget deluxe', 'widgets')
    """
    category = str(item.get("category", "")).lower()
    title = str(item.get("title", ""))
    vocab = _VOCAB.get(item.get("category", ""))
    if vocab is not None:
        for noun in vocab.nouns:
            if _title_case(noun) in title:
                queries = [noun.lower()]
                for adjective in vocab.adjectives:
                    if title.startswith(_title_case(adjective) + " "):
                        queries.append(f"{adjective} {noun}".lower())
                        break
                return (*queries, category)
    tail = " ".join(title.lower().split()[-2:])
    return (tail, category) if tail and tail != category else (category,)
