"""Each system's behaviour on tiny hand-made streams."""

from __future__ import annotations

import numpy as np
import pytest

from model.config import RecommenderConfig
from model.evaluate.baselines import ContentOnly, CoVisitation, DecayedPopular, FullSystem, MostPopular, System
from model.recommender import Recommender
from model.schema import Event, Item

T0 = 1_700_000_000.0
HOUR = 3600.0


class Clock:
    """Events a second apart, numbered, so a test reads as the story it tells."""

    def __init__(self, start: float = T0):
        self.ts = start
        self.n = 0

    def event(self, user: str, item: str, kind: str = "view", after: float = 1.0, scene: str = "home") -> Event:
        self.ts += after
        self.n += 1
        return Event(f"e{self.n}", user, item, kind, self.ts, scene)


def feed(system, events):
    for event in events:
        system.observe(event)


def ask(system, clock: Clock, user: str, k: int = 3) -> list[str]:
    """The user's list as of one second after the last event (the item asked about is irrelevant)."""
    return system.recommend(Event("ask", user, "?", "view", clock.ts + 1, "home"), k)


@pytest.fixture
def catalogue():
    """Two tight clusters of items (teas, coffees) in 4 dimensions."""
    items = [Item("tea1", "Green Tea", "tea"), Item("tea2", "Oolong Tea", "tea"), Item("tea3", "White Tea", "tea"),
             Item("cof1", "Espresso", "coffee"), Item("cof2", "Mocha", "coffee"), Item("cof3", "Latte", "coffee")]
    vectors = np.array([[1, 0.1, 0, 0], [0.95, 0.2, 0, 0], [0.9, 0.05, 0.1, 0],
                        [0, 0, 1, 0.1], [0, 0.1, 0.9, 0.2], [0.05, 0, 0.95, 0.1]], dtype=np.float32)
    return items, vectors


def test_every_system_speaks_the_protocol(catalogue):
    items, vectors = catalogue
    systems = [MostPopular(), DecayedPopular(), CoVisitation(), ContentOnly(dim=4),
               FullSystem(Recommender(RecommenderConfig(), dim=4))]
    assert [s.name for s in systems] == ["popular", "decayed", "covisit", "content", "full"]
    clock = Clock()
    for system in systems:
        assert isinstance(system, System)
        system.fit_items(items, vectors)
        event = clock.event("u1", "tea1")
        assert system.recommend(event, 5) == []   # nothing learned yet
        system.observe(event)


def test_most_popular_counts_all_time_and_skips_what_the_user_took():
    clock, system = Clock(), MostPopular()
    feed(system, [clock.event(f"u{i}", "a", after=30 * 86400.0) for i in range(3)])  # old, but most often
    feed(system, [clock.event(f"v{i}", "b") for i in range(2)] + [clock.event("w", "c")])
    assert ask(system, clock, "new") == ["a", "b", "c"]
    assert ask(system, clock, "v0") == ["a", "c"]          # v0 took b already
    keep = MostPopular(exclude_seen=False)
    feed(keep, [clock.event("v0", "b")])
    assert ask(keep, clock, "v0") == ["b"]


def test_most_popular_type_weights():
    clock, system = Clock(), MostPopular(type_weights={"view": 1.0, "click": 1.0, "cart": 1.0, "purchase": 5.0})
    feed(system, [clock.event(f"u{i}", "viewed") for i in range(3)] + [clock.event("x", "bought", "purchase")])
    assert ask(system, clock, "new", k=2) == ["bought", "viewed"]


def test_decayed_popular_prefers_recent_hits():
    clock = Clock()
    old_hit = [clock.event(f"u{i}", "old hit") for i in range(8)]
    clock.ts += 24 * HOUR                       # four half-lives: the 8 old events weigh 0.5 together
    new_hit = [clock.event(f"v{i}", "new hit") for i in range(2)]
    decayed, popular = DecayedPopular(half_life_s=6 * HOUR), MostPopular()
    for system in (decayed, popular):
        feed(system, old_hit + new_hit)
    assert ask(decayed, clock, "w", k=2) == ["new hit", "old hit"]
    assert ask(popular, clock, "w", k=2) == ["old hit", "new hit"]


def test_covisitation_recommends_what_followed_the_last_item():
    clock, system = Clock(), CoVisitation()
    for u in range(5):                                       # many users go A → B
        feed(system, [clock.event(f"u{u}", "A"), clock.event(f"u{u}", "B")])
    feed(system, [clock.event("x", "A"), clock.event("x", "C")])   # one goes A → C
    feed(system, [clock.event(f"p{i}", "P") for i in range(20)])   # P is by far the most popular
    feed(system, [clock.event("me", "A")])
    assert ask(system, clock, "me", k=3) == ["B", "C", "P"]   # neighbours by strength, then popular fill
    # Someone who already took B gets C first; a user with no history gets popularity.
    feed(system, [clock.event("them", "B"), clock.event("them", "A")])
    assert ask(system, clock, "them", k=1) == ["C"]
    assert ask(system, clock, "nobody", k=2) == ["P", "A"]


def test_covisitation_sums_over_recent_items():
    clock, system = Clock(), CoVisitation(n_recent=2)
    for u in range(3):
        feed(system, [clock.event(f"a{u}", "A"), clock.event(f"a{u}", "X")])
        feed(system, [clock.event(f"b{u}", "B"), clock.event(f"b{u}", "X")])
    for u in range(4):
        feed(system, [clock.event(f"c{u}", "B"), clock.event(f"c{u}", "Y")])
    feed(system, [clock.event("me", "A"), clock.event("me", "B")])
    # Y follows B more often (4 vs 3), but X follows both of my last items (3 + 3).
    assert ask(system, clock, "me", k=2) == ["X", "Y"]
    assert ask(CoVisitation(n_recent=1), clock, "me", k=1) == []


def test_content_only_recommends_similar_items_and_nothing_else(catalogue):
    items, vectors = catalogue
    clock, system = Clock(), ContentOnly(dim=4)
    system.fit_items(items, vectors)
    feed(system, [clock.event(f"p{i}", "cof1") for i in range(10)])   # coffee is popular...
    feed(system, [clock.event("me", "tea1", "click")])                 # ...but I drink tea
    assert ask(system, clock, "me", k=2) == ["tea2", "tea3"]
    assert ask(system, clock, "nobody") == []                          # no popularity fill


def test_full_system_keeps_one_state_per_user(catalogue):
    items, vectors = catalogue
    clock = Clock()
    system = FullSystem(Recommender(RecommenderConfig(), dim=4))
    system.fit_items(items, vectors)
    feed(system, [clock.event("tea drinker", "tea1", "click"), clock.event("coffee drinker", "cof1", "click")])
    assert set(system.states) == {"tea drinker", "coffee drinker"}
    tea = ask(system, clock, "tea drinker", k=2)
    coffee = ask(system, clock, "coffee drinker", k=2)
    assert set(tea) == {"tea2", "tea3"} and set(coffee) == {"cof2", "cof3"}
    assert "tea1" not in ask(system, clock, "tea drinker", k=6)       # the recommender leaves out what was taken


def test_full_system_feeds_the_ranker_only_when_asked(catalogue):
    items, vectors = catalogue
    learned = {}
    for learn_ranker in (True, False):
        clock = Clock()
        system = FullSystem(Recommender(RecommenderConfig(), dim=4), learn_ranker=learn_ranker)
        system.fit_items(items, vectors)
        for item in ("tea1", "tea2", "cof1", "tea3"):
            event = clock.event("me", item)
            system.recommend(event, 3)     # the list the next event labels
            system.observe(event)
        learned[learn_ranker] = system.recommender.ranker.n_learned
    assert learned[True] > 0 and learned[False] == 0
