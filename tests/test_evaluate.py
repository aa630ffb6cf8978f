"""The prequential protocol and its metrics; an end-to-end replay on generated data; ``streamrec replay``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from model.datasets import Dataset
from model.datasets.synthetic import DriftingUsers, make_catalog
from model.evaluate.baselines import MostPopular
from model.evaluate.prequential import prequential, rank_of, ranking_metrics
from model.schema import Event, parse_item
from stream.settings import Settings

T0 = 1_700_000_000.0


def stream(items: list[str], users: list[str] | None = None, kinds: list[str] | None = None) -> list[Event]:
    users = users or [f"u{i}" for i in range(len(items))]
    kinds = kinds or ["view"] * len(items)
    return [Event(f"e{i}", u, item, kind, T0 + 60 * i, "home")
            for i, (u, item, kind) in enumerate(zip(users, items, kinds))]


class Scripted:
    """A system that answers fixed lists and records the order of calls (to check the protocol)."""

    name = "scripted"

    def __init__(self, answers: list[list[str]]):
        self.answers = list(answers)
        self.calls: list[tuple[str, str]] = []

    def fit_items(self, items, vectors):
        pass

    def recommend(self, event: Event, k: int) -> list[str]:
        self.calls.append(("recommend", event.event_id))
        return self.answers.pop(0)

    def observe(self, event: Event) -> None:
        self.calls.append(("observe", event.event_id))


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(("rank", "hr", "ndcg", "mrr"), [
    (1, 1.0, 1.0, 1.0),
    (2, 1.0, 1 / math.log2(3), 0.5),
    (3, 1.0, 0.5, 1 / 3),
    (0, 0.0, 0.0, 0.0),
])
def test_metrics_of_one_list(rank, hr, ndcg, mrr):
    assert ranking_metrics([rank]) == pytest.approx({"hit_rate": hr, "ndcg": ndcg, "mrr": mrr})


def test_metrics_average_over_lists():
    assert ranking_metrics([1, 3, 0, 0]) == pytest.approx({"hit_rate": 0.5, "ndcg": 0.375, "mrr": 1 / 3})
    assert ranking_metrics([]) == {"hit_rate": 0.0, "ndcg": 0.0, "mrr": 0.0}


def test_rank_of():
    assert rank_of("c", ["a", "b", "c"]) == 3
    assert rank_of("a", ["a"]) == 1
    assert rank_of("z", ["a", "b"]) == 0
    assert rank_of("a", []) == 0


# --------------------------------------------------------------------------- protocol


def test_recommend_comes_before_observe_and_is_scored_against_the_event():
    events = stream(["a", "b", "c"])
    system = Scripted([["a", "x"], ["x", "y", "b"], ["x"]])   # rank 1, rank 3, miss
    report = prequential(events, [system], k=3)
    assert system.calls == [("recommend", "e0"), ("observe", "e0"), ("recommend", "e1"), ("observe", "e1"),
                            ("recommend", "e2"), ("observe", "e2")]
    result = report["scripted"]
    assert result.ranks.tolist() == [1, 3, 0]
    assert result.metrics == pytest.approx({"hit_rate": 2 / 3, "ndcg": (1 + 0.5) / 3, "mrr": (1 + 1 / 3) / 3})
    assert result.recommended == {"a", "x", "y", "b"}
    assert result.list_lengths.tolist() == [2, 3, 1]
    assert len(result.latency_ns) == 3 and (result.latency_ns > 0).all()


def test_only_the_top_k_counts():
    report = prequential(stream(["b"]), [Scripted([["a", "b"]])], k=1)
    assert report["scripted"].ranks.tolist() == [0]
    assert report["scripted"].recommended == {"a"}


def test_the_event_never_leaks_into_its_own_list():
    # Every item is taken once, by a different user: nothing can be predicted without seeing the future.
    report = prequential(stream([f"i{n}" for n in range(50)]), [MostPopular()], k=10)
    assert report["popular"].metrics["hit_rate"] == 0.0


def test_warmup_limit_and_score_types():
    events = stream(["a", "a", "a", "a", "a", "a"], kinds=["view", "click", "view", "click", "view", "click"])
    report = prequential(events, [MostPopular(exclude_seen=False)], k=1, warmup=2, limit=5,
                         score_types=["click"])
    result = report["popular"]
    assert report.replayed == 5
    assert result.positions.tolist() == [3]          # only the click after warm-up, within the limit
    assert result.ranks.tolist() == [1]
    assert len(result.latency_ns) == 5                # latency is timed on every replayed event
    assert report.to_dict()["protocol"]["scored_events"] == 1


def test_hit_rate_windows_and_coverage():
    answers = [["a"]] * 5
    report = prequential(stream(["a", "b", "a", "a", "b"]), [Scripted(answers)], k=1, window=2,
                         catalogue_size=4)
    ends, rates = report["scripted"].hit_rate_windows(2)
    assert ends.tolist() == [1, 4] and rates.tolist() == [0.5, 2 / 3]   # the odd event joins the last window
    assert report["scripted"].hit_rate_windows(10)[1].tolist() == [0.6]
    assert report["scripted"].coverage(report.catalogue_size) == 0.25
    out = report.to_dict()["systems"][0]
    assert out["hit_rate_over_time"] == {"window": 2, "end_position": [1, 4], "hit_rate": [0.5, 2 / 3]}
    assert out["coverage"] == 0.25 and out["hits"] == 3
    assert sum(out["latency_us"]["histogram_counts"]) == 5


def test_best_baseline_and_lift():
    events = stream(["a", "b", "c", "d"])
    good = Scripted([["a"], ["b"], ["x"], ["x"]])
    good.name = "full"
    fair = Scripted([["a"], ["x"], ["x"], ["x"]])
    fair.name = "fair"
    poor = Scripted([["x"]] * 4)
    poor.name = "poor"
    report = prequential(events, [poor, fair, good], k=1)
    assert report.best_baseline().name == "fair"
    assert report.lift() == pytest.approx({"hit_rate": 100.0, "ndcg": 100.0, "mrr": 100.0})
    table = report.table()
    assert "best baseline: fair" in table and "full vs fair: HR@1 +100.0 %" in table
    assert report.to_dict()["best_baseline"] == "fair"
    assert prequential(events, [Scripted([["x"]] * 4)], k=1).lift() is None


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def encoder():
    from model.encoder import TextEncoder

    return TextEncoder(device="cpu")


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    """A small generated shop: 5 categories × 8 items, 15 users whose interests drift."""
    catalog = make_catalog(n_categories=5, items_per_category=8, seed=3)
    events = [Event(**e) for e in DriftingUsers(catalog, n_users=15, seed=3).events(300)]
    return Dataset("synthetic", [parse_item(item) for item in catalog], events)


def test_full_system_beats_most_popular_on_drifting_users(synthetic, encoder, tmp_path):
    from stream.replay import replay

    result = replay(synthetic, systems=["popular", "covisit", "content", "full"], k=10, window=100,
                    settings=Settings(), encoder=encoder, out=tmp_path, progress=False)
    scores = {row["name"]: row["hit_rate"] for row in result["systems"]}
    assert scores["full"] > scores["popular"] + 0.15, scores
    assert result["protocol"]["scored_events"] == 300 and result["protocol"]["catalogue_size"] == 40
    assert result["dataset"]["items"] == 40
    assert result["settings"]["recommender_configs"]["full"]["top_k"] == Settings().model.top_k
    assert {p.name for p in tmp_path.iterdir()} == {"report.json", "hit_rate.png", "latency.png"}


def write_jsonl(path: Path, rows) -> None:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))


def test_cli_replay_writes_the_report_and_both_plots(tmp_path, capsys):
    from stream.cli import main

    catalog = make_catalog(n_categories=3, items_per_category=6, seed=1)
    events = list(DriftingUsers(catalog, n_users=6, seed=1).events(120))
    write_jsonl(tmp_path / "items.jsonl", catalog)
    write_jsonl(tmp_path / "events.jsonl", events[:60] + [{**events[0], "type": "like"}] + events[60:])
    out = tmp_path / "replay"
    code = main(["replay", "--events-jsonl", str(tmp_path / "events.jsonl"),
                 "--items-jsonl", str(tmp_path / "items.jsonl"), "--systems", "popular,decayed,covisit",
                 "--k", "5", "--limit", "100", "--warmup", "10", "--window", "30", "--jobs", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "skipped 1 bad lines: events.jsonl: unknown_event_type ×1" in printed
    assert "HR@5" in printed and "best baseline:" in printed
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["protocol"]["k"] == 5 and report["protocol"]["replayed_events"] == 100
    assert report["protocol"]["scored_events"] == 90
    assert [s["name"] for s in report["systems"]] == ["popular", "decayed", "covisit"]
    assert report["dataset"]["skipped"] == {"events.jsonl: unknown_event_type": 1}
    assert report["timings"]["load_s"] >= 0
    for png in ("hit_rate.png", "latency.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_systems_split_over_processes_score_the_same(synthetic):
    from stream.replay import replay

    def scores(jobs: int) -> dict:
        result = replay(synthetic, systems=["popular", "decayed", "covisit"], k=10, window=100,
                        settings=Settings(), progress=False, jobs=jobs)
        assert result["settings"]["jobs"] == jobs
        return {row["name"]: (row["hits"], row["ndcg"], row["hit_rate_over_time"]) for row in result["systems"]}

    assert list(scores(2)) == ["popular", "decayed", "covisit"]   # the order asked for, whoever ran them
    assert scores(2) == scores(1)


def test_cli_replay_rejects_unknown_systems(tmp_path, capsys):
    from stream.cli import main

    write_jsonl(tmp_path / "events.jsonl", [])
    assert main(["replay", "--events-jsonl", str(tmp_path / "events.jsonl"), "--systems", "magic"]) == 2
    assert "unknown systems" in capsys.readouterr().err


def test_latency_is_reported_in_microseconds():
    report = prequential(stream(["a", "b"]), [MostPopular()], k=1)
    latency = report.to_dict()["systems"][0]["latency_us"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"] < 1e6
    assert np.isfinite(report["popular"].events_per_s)
