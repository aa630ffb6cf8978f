"""The codec: every message format round-trips, and what it refuses becomes a dead letter with its reason."""

from __future__ import annotations

import base64
import functools

import numpy as np
import orjson
import pytest

from model.recommender import Feedback
from model.schema import Event, InvalidInput, Item, Recommended, parse_event
from stream.codec import (
    Message,
    decode_all,
    decode_feedback,
    encode_feedback,
    encode_recommendation,
)

EVENT = Event("e1", "u1", "i1", "click", 1.7e9, "home")


def test_feedback_round_trips():
    feedback = Feedback(np.array([[0.5, -1.0], [-0.5, 1.0]]), np.array([1.0, 0.0]), True, 3)
    X, y, sequence = decode_feedback(encode_feedback(EVENT, feedback), n_features=2)
    assert np.array_equal(X, feedback.X) and np.array_equal(y, feedback.y) and sequence is None


def test_feedback_carries_the_next_item_example_with_or_without_a_list():
    both = decode_feedback(encode_feedback(EVENT, Feedback(np.zeros((1, 2)), np.ones(1), True, 3),
                                           (["i7", "i3"], "i1")), n_features=2)
    assert both.sequence == (["i7", "i3"], "i1") and len(both.y) == 1
    alone = decode_feedback(encode_feedback(EVENT, None, (["i7"], "i1")), n_features=2)
    assert alone.sequence == (["i7"], "i1") and alone.X.shape == (0, 2) and not len(alone.y)


@pytest.mark.parametrize("body", [
    {"X": [[0.1, 0.2, 0.3]], "y": [1]},          # another feature count
    {"X": [[0.1, 0.2]], "y": [1, 0]},            # X and y disagree
    {"X": [[0.1, None]], "y": [1]},              # not a number
    {"X": [[0.1, 0.2]], "y": [2]},               # not a 0/1 label
    {"y": [1]},                                  # no X
    {"X": [], "y": [], "context": ["i1"]},       # a context without the item taken
    {"X": [], "y": [], "context": "i1", "item_id": "i2"},           # not a list
    {"X": [], "y": [], "context": [""], "item_id": "i2"},           # not an id
    {"X": [], "y": [], "context": ["i1"] * 65, "item_id": "i2"},    # longer than any window
])
def test_bad_feedback_is_refused(body):
    with pytest.raises(InvalidInput, match="bad_feedback"):
        decode_feedback(orjson.dumps(body), n_features=2)


def test_recommendation_carries_titles_reasons_and_timestamps():
    items = [Recommended("i2", 0.75, "trending now", "popular")]
    body = orjson.loads(encode_recommendation(EVENT, items, {"i2": Item("i2", "Tea", "tea")}, model_version=4,
                                              ingest_ts=1.0, received_ts=2.0, sent_ts=3.0))
    assert body["event_id"] == "e1" and body["model_version"] == 4 and body["sent_ts"] == 3.0
    assert body["items"] == [{"item_id": "i2", "title": "Tea", "score": 0.75, "reason": "trending now",
                              "source": "popular"}]


def test_decode_all_dead_letters_each_bad_record_and_keeps_the_rest():
    good = orjson.dumps(EVENT.to_dict())
    batch = [Message(b"u1", good, 0, 1), Message(b"u1", b"\xff\xfe binary", 0, 2), Message(None, b"[1]", 1, 3)]
    decoded = decode_all(batch, functools.partial(parse_event, now=1.7e9), "events")
    assert [event.event_id for event, _ in decoded.values] == ["e1"]
    assert decoded.reasons == ["not_json", "not_object"]
    binary, array = (orjson.loads(d.value) for d in decoded.dead)
    assert binary["payload_encoding"] == "base64" and base64.b64decode(binary["payload"]) == b"\xff\xfe binary"
    assert (binary["topic"], binary["partition"], binary["offset"]) == ("events", 0, 2)
    assert array["payload"] == "[1]" and decoded.dead[1].key is None  # keyless: spread over partitions
