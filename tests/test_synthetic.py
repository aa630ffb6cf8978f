"""Tests of the synthetic catalog and the drifting users (model/synthetic.py)."""

from __future__ import annotations

import collections
import itertools
import re

import pytest

from model.datasets.synthetic import (
    CATEGORIES,
    EVENT_TYPE_PROBS,
    EVENT_TYPES,
    DriftingUsers,
    make_catalog,
)

# --------------------------------------------------------------------------- catalog


def test_enough_distinct_categories():
    assert len(CATEGORIES) >= 30
    assert len(set(CATEGORIES)) == len(CATEGORIES)


def test_catalog_shape_and_fields():
    catalog = make_catalog()
    assert len(catalog) == 24 * 20
    counts = collections.Counter(item["category"] for item in catalog)
    assert set(counts) == set(CATEGORIES[:24])
    assert set(counts.values()) == {20}
    for item in catalog:
        assert set(item) == {"item_id", "title", "category", "text", "price"}
        assert re.fullmatch(r"i\d{4}", item["item_id"])
        for key in ("title", "category", "text"):
            assert isinstance(item[key], str) and item[key].strip(), (key, item)
        assert item["text"].endswith(".") and item["text"][0].isupper()
        assert isinstance(item["price"], float) and item["price"] > 0


def test_catalog_ids_and_titles_unique():
    catalog = make_catalog()
    assert len({item["item_id"] for item in catalog}) == len(catalog)
    assert len({item["title"] for item in catalog}) == len(catalog)
    assert catalog[0]["item_id"] == "i0001"


def test_titles_stay_unique_past_the_vocabulary():
    catalog = make_catalog(n_categories=len(CATEGORIES), items_per_category=150, seed=2)
    assert len(catalog) == len(CATEGORIES) * 150
    assert len({item["title"] for item in catalog}) == len(catalog)
    assert len({item["item_id"] for item in catalog}) == len(catalog)


def test_catalog_deterministic_per_seed():
    assert make_catalog(seed=7) == make_catalog(seed=7)
    a, b = make_catalog(seed=7), make_catalog(seed=8)
    assert [i["item_id"] for i in a] == [i["item_id"] for i in b]
    assert a != b


def test_catalog_text_speaks_of_its_category():
    # Title and text come from the same descriptor and product noun (no series
    # suffix below the vocabulary size), so the text says what the item is.
    for item in make_catalog(n_categories=len(CATEGORIES), items_per_category=5):
        assert item["title"].lower() in item["text"].lower()


def test_prices_are_plausible_per_category():
    catalog = make_catalog(n_categories=len(CATEGORIES))
    by_cat = collections.defaultdict(list)
    for item in catalog:
        by_cat[item["category"]].append(item["price"])
    assert max(by_cat["science fiction books"]) < 40
    assert min(by_cat["guitars"]) > 100
    assert all(5 <= p <= 2600 for p in (i["price"] for i in catalog))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_categories": 0},
        {"n_categories": len(CATEGORIES) + 1},
        {"items_per_category": 0},
    ],
)
def test_catalog_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_catalog(**kwargs)


# --------------------------------------------------------------------------- users


@pytest.fixture(scope="module")
def catalog():
    return make_catalog()


@pytest.fixture(scope="module")
def category_of(catalog):
    return {item["item_id"]: item["category"] for item in catalog}


def test_events_deterministic_per_seed(catalog):
    a = list(DriftingUsers(catalog, seed=3).events(500))
    b = list(DriftingUsers(catalog, seed=3).events(500))
    c = list(DriftingUsers(catalog, seed=4).events(500))
    assert a == b
    assert a != c


def test_events_well_formed(catalog, category_of):
    users = DriftingUsers(catalog, n_users=20, seed=0)
    events = list(users.events(3000))
    assert len(events) == 3000
    assert [e["event_id"] for e in events] == [f"e-{k}" for k in range(1, 3001)]
    assert all(a["ts"] < b["ts"] for a, b in itertools.pairwise(events))
    assert events[0]["ts"] > 1_700_000_000.0
    for e in events:
        assert set(e) == {
            "event_id",
            "user_id",
            "item_id",
            "type",
            "ts",
            "scene",
            "query",
        }
        assert e["user_id"] in users.users
        assert e["item_id"] in category_of
        assert e["type"] in EVENT_TYPES
        assert e["scene"] in ("home", "search", "detail", "cart")
        assert isinstance(e["ts"], float)
        if e["scene"] == "search":
            assert isinstance(e["query"], str) and 0 < len(e["query"].split()) <= 6
        else:
            assert e["query"] is None
    assert {e["scene"] for e in events} == {"home", "search", "detail", "cart"}
    assert len({e["user_id"] for e in events}) == 20


def test_event_types_follow_probabilities(catalog):
    events = list(DriftingUsers(catalog, seed=0).events(10_000))
    counts = collections.Counter(e["type"] for e in events)
    for type_, p in zip(EVENT_TYPES, EVENT_TYPE_PROBS):
        assert abs(counts[type_] / len(events) - p) < 0.02, counts


def test_search_queries_relate_to_the_item(catalog, category_of):
    by_id = {item["item_id"]: item for item in catalog}
    events = [e for e in DriftingUsers(catalog, seed=0).events(2000) if e["query"]]
    assert events
    for e in events:
        item = by_id[e["item_id"]]
        q = e["query"]
        assert q == item["category"] or q in item["title"].lower(), (q, item["title"])


def test_user_ids_and_custom_scenes(catalog):
    users = DriftingUsers(catalog, n_users=3, scenes=("feed",), seed=0)
    assert users.users == ("u000", "u001", "u002")
    assert {e["scene"] for e in users.events(50)} == {"feed"}
    assert DriftingUsers(catalog, n_users=1500).users[-1] == "u1499"


def test_timestamps_continue_across_calls(catalog):
    users = DriftingUsers(catalog, n_users=5, seed=0, start_ts=100.0, mean_gap_s=2.0)
    first = list(users.events(100))
    second = list(users.events(100))
    events = first + second
    assert all(a["ts"] < b["ts"] for a, b in itertools.pairwise(events))
    assert second[0]["event_id"] == "e-101"
    mean_gap = (events[-1]["ts"] - 100.0) / len(events)
    assert 1.5 < mean_gap < 2.5


def test_events_mostly_from_current_interest(catalog, category_of):
    # interest(user), read right after one of its events, is the category that
    # event was drawn under: measured so, the hit rate is about `focus`.
    users = DriftingUsers(catalog, n_users=50, focus=0.85, seed=0)
    hits, totals = collections.Counter(), collections.Counter()
    for e in users.events(20_000):
        user = e["user_id"]
        totals[user] += 1
        hits[user] += category_of[e["item_id"]] == users.interest(user)
    overall = sum(hits.values()) / sum(totals.values())
    assert 0.82 < overall < 0.88
    for user in totals:
        assert totals[user] >= 200
        assert hits[user] / totals[user] >= 0.75, user


@pytest.mark.parametrize("focus, expected", [(1.0, 1.0), (0.0, 0.0)])
def test_focus_extremes(catalog, category_of, focus, expected):
    users = DriftingUsers(catalog, n_users=10, focus=focus, seed=5)
    rate = [
        category_of[e["item_id"]] == users.interest(e["user_id"])
        for e in users.events(1000)
    ]
    assert sum(rate) / len(rate) == expected


def test_interests_drift(catalog):
    users = DriftingUsers(catalog, n_users=10, drift_every=25, seed=0)
    seen = collections.defaultdict(list)
    counts = collections.Counter()
    for e in users.events(2000):
        user = e["user_id"]
        counts[user] += 1
        interest = users.interest(user)
        if not seen[user] or seen[user][-1] != interest:
            seen[user].append(interest)
    for user, n in counts.items():
        assert n >= 100
        # One switch every 19 to 31 of the user's events (25 +- 25 %).
        switches = len(seen[user]) - 1
        assert n / 31 - 1 <= switches <= n / 19, (user, n, seen[user])
        assert all(a != b for a, b in zip(seen[user], seen[user][1:]))


def test_no_drift_when_disabled(catalog):
    users = DriftingUsers(catalog, n_users=3, drift_every=0, seed=0)
    start = {u: users.interest(u) for u in users.users}
    list(users.events(1000))
    assert {u: users.interest(u) for u in users.users} == start


def test_users_prefer_items_not_yet_taken(catalog):
    users = DriftingUsers(catalog, n_users=1, focus=1.0, drift_every=0, seed=0)
    events = list(users.events(40))
    ids = [e["item_id"] for e in events]
    assert len(set(ids[:20])) == 20  # the whole category before any repeat
    assert set(ids[20:]) <= set(ids[:20])  # then falls back to taken ones


def test_any_catalog_with_categories_works():
    catalog = [
        {"item_id": "a", "category": "x", "title": "Red Widget"},
        {"item_id": "b", "category": "x", "title": "Blue Widget"},
        {"item_id": "c", "category": "y"},
    ]
    users = DriftingUsers(catalog, n_users=2, scenes=("search",), seed=0)
    assert users.categories == ("x", "y")
    events = list(users.events(50))
    assert {e["item_id"] for e in events} == {"a", "b", "c"}
    assert all(e["query"] for e in events)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_users": 0},
        {"focus": 1.5},
        {"focus": -0.1},
        {"mean_gap_s": 0},
        {"scenes": ()},
    ],
)
def test_users_reject_bad_arguments(catalog, kwargs):
    with pytest.raises(ValueError):
        DriftingUsers(catalog, **kwargs)
    with pytest.raises(ValueError):
        DriftingUsers([])


def test_events_rejects_negative_n(catalog):
    with pytest.raises(ValueError):
        DriftingUsers(catalog).events(-1)
    assert list(DriftingUsers(catalog).events(0)) == []
