"""The learned item space: it learns what users take next, survives a restart, and the recommender serves it."""

from __future__ import annotations

import numpy as np
import pytest

from model.config import RecommenderConfig
from model.evaluate.baselines import FullSystem
from model.recommender import Recommender
from model.representations import ItemSpace, RepresentationLearner
from model.schema import Event, Item

DIM = 16
CONFIG = RecommenderConfig(learned_dim=8, learned_window=4, learned_interval=200, learned_learning_rate=0.02)


def catalogue(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"i{k}" for k in range(n)], rng.standard_normal((n, DIM)).astype(np.float32)


def next_item_accuracy(space: ItemSpace, ids: list[str], text: np.ndarray, successor: dict[str, str]) -> float:
    """How often the planted successor of an item is the best-scored next item after it alone."""
    p, q, b = space.embed(ids, text / np.linalg.norm(text, axis=1, keepdims=True))
    at = {item: n for n, item in enumerate(ids)}
    hits = 0
    for item, after in successor.items():
        scores = q @ (space.context_weights[0] * p[at[item]]) + b
        scores[at[item]] = -np.inf  # the context's own item is not an answer
        hits += ids[int(np.argmax(scores))] == after
    return hits / len(successor)


def planted(n: int = 30) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Items whose successor has nothing to do with their text: only the stream can teach it."""
    ids, text = catalogue(n)
    order = np.random.default_rng(1).permutation(n)
    return ids, text, {ids[a]: ids[b] for a, b in zip(order, np.roll(order, 1))}


def planted_learner() -> tuple[RepresentationLearner, list[str], np.ndarray, dict[str, str]]:
    ids, text, successor = planted()
    learner = RepresentationLearner(DIM, CONFIG, device="cpu")
    learner.add_items(ids, text)
    return learner, ids, text, successor


def one_round(learner: RepresentationLearner, successor: dict[str, str]) -> ItemSpace:
    """Each planted pair as an example, repeated until a round is due; then the round."""
    for _ in range(CONFIG.learned_interval // len(successor) + 1):
        for item, after in successor.items():
            learner.add_example([item], after)
    return learner.train()


def test_it_learns_what_users_take_next_from_examples_alone():
    learner, ids, text, successor = planted_learner()
    before = next_item_accuracy(learner.snapshot(), ids, text, successor)
    for _ in range(6):
        space = one_round(learner, successor)
    assert before < 0.2
    assert next_item_accuracy(space, ids, text, successor) >= 0.9
    assert space.version == 6


def test_a_new_item_starts_from_its_words():
    """Version 0 is a random projection: inner products of the text survive it, so similar text scores high."""
    ids, text = catalogue(200)
    space = ItemSpace.initial(DIM, RecommenderConfig(learned_dim=64))
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    p, q, _ = space.embed(ids, unit)
    learned, words = (p @ q.T).ravel(), (unit @ unit.T).ravel()
    assert np.corrcoef(learned, words)[0, 1] > 0.7


def test_a_snapshot_round_trips_and_a_restarted_learner_continues_from_it():
    learner, ids, text, successor = planted_learner()
    space = ItemSpace.from_bytes(one_round(learner, successor).to_bytes())
    restarted = RepresentationLearner(DIM, CONFIG, start=space, device="cpu")
    restarted.add_items(ids[::-1], text[::-1])  # another order: residuals follow the ids, not the slots
    again = restarted.snapshot()
    assert again.version == space.version
    for a, b in zip(space.embed(ids, text), again.embed(ids, text)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_the_catalogue_can_outgrow_the_first_capacity_while_learning():
    learner, ids, text, successor = planted_learner()
    learned = one_round(learner, successor).embed(ids, text)
    more, more_text = catalogue(300, seed=5)
    learner.add_items([f"new{i}" for i in more], more_text)  # past 64 slots: the residuals are regrown
    kept = learner.snapshot().embed(ids, text)
    for a, b in zip(learned, kept):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    learner.add_example([ids[0]], "new" + more[299])
    learner.fresh = CONFIG.learned_interval
    assert learner.train().version == 2  # trains on, with the optimiser's moments carried over


def test_examples_of_unknown_items_are_skipped():
    ids, text = catalogue(5)
    learner = RepresentationLearner(DIM, CONFIG, device="cpu")
    learner.add_items(ids, text)
    learner.add_example(["nope"], "i1")
    learner.add_example(["i0"], "nope")
    learner.add_example(["nope", "i0"], "i1")  # the known part of the context is kept
    assert [(rows.tolist(), target) for rows, target in learner.examples] == [([0], 1)]


def test_the_replay_learns_the_space_and_the_recommender_serves_it():
    """FullSystem does what the trainer does: a new space every learned_interval examples, scored in the lists."""
    ids, text, successor = planted()
    rec = Recommender(CONFIG, dim=DIM)
    system = FullSystem(rec)
    system.fit_items([Item(i, f"title {i}", "c") for i in ids], text)
    chain = list(successor)
    t = 1.7e9
    for n in range(40):  # 40 users walking the planted chain from different places
        start = n % len(chain)
        for step in range(12):
            item = chain[(start + step) % len(chain)]
            t += 3600.0  # beyond recount_after_s: every event counts
            system.observe(Event(f"e{n}-{step}", f"u{n}", item, "click", t, "home"))
    assert rec.item_space is not None and rec.item_space.version >= 2
    column = rec.features.index("learned")
    state = system.state("u0")
    rec.recommend(state, k=5)
    shown = state.shown
    assert shown is not None and np.any(shown.features[:, column] != 0)


def test_an_event_counts_as_a_next_item_example_only_once_and_with_a_context():
    ids, text = catalogue(4)
    rec = Recommender(CONFIG, dim=DIM)
    rec.add_items([Item(i, i, "c") for i in ids], text)
    state = rec.new_state("u1")
    first = rec.observe(state, Event("e1", "u1", "i0", "click", 1.7e9, "home"))
    second = rec.observe(state, Event("e2", "u1", "i1", "click", 1.7e9 + 60, "home"))
    retried = rec.observe(state, Event("e2", "u1", "i1", "click", 1.7e9 + 60, "home"))
    assert first is not None and first.sequence is None  # no context yet
    assert second is not None and second.sequence == (["i0"], "i1")
    assert retried is None


@pytest.mark.parametrize("learned_dim", [0, 8])
def test_the_learned_feature_is_there_exactly_when_representations_are_on(learned_dim):
    rec = Recommender(RecommenderConfig(learned_dim=learned_dim), dim=DIM)
    assert ("learned" in rec.features) == bool(learned_dim) and (rec.item_space is None) == (not learned_dim)


def test_a_swap_embeds_only_the_rows_lists_read_and_scores_as_embedding_all_would():
    """A worker swapping in a new space must not embed a whole (million-item) catalogue at once."""
    ids, text = catalogue(200)
    rec = Recommender(CONFIG, dim=DIM)
    rec.add_items([Item(i, i, "c") for i in ids], text)
    learner = RepresentationLearner(DIM, CONFIG, device="cpu")
    learner.add_items(ids, text)
    rng = np.random.default_rng(3)
    for _ in range(CONFIG.learned_interval):
        learner.add_example(list(rng.choice(ids, 3)), str(rng.choice(ids)))
    space = learner.train()
    rec.set_item_space(space)
    user = rec.new_state("u1")
    for n, item in enumerate(["i3", "i7", "i11"]):
        rec.observe(user, Event(f"e{n}", "u1", item, "click", 1.7e9 + 60 * n, "home"))
    rec.recommend(user, k=5)
    embedded = int((rec._learned_version == space.version).sum())
    assert 0 < embedded < len(ids)  # the context's rows and the candidates', not the catalogue
    p, q, b = space.embed(ids, text / np.linalg.norm(text, axis=1, keepdims=True))
    at = {item: n for n, item in enumerate(ids)}
    context = sum(space.context_weights[a] * p[at[item]] for a, item in enumerate(["i11", "i7", "i3"]))
    shown = user.shown
    assert shown is not None
    expected = [q[at[item]] @ context + b[at[item]] for item in shown.item_ids]
    np.testing.assert_allclose(shown.features[:, rec.features.index("learned")], expected, rtol=1e-4, atol=1e-5)
