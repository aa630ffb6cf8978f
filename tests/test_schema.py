"""Every bad field of an event or item is refused with its own reason."""

import orjson
import pytest

from model.schema import InvalidInput, parse_event, parse_item

NOW = 1_700_000_000.0
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "click", "ts": NOW, "scene": "home"}


def reason(payload, **kw):
    with pytest.raises(InvalidInput) as err:
        parse_event(payload, now=NOW, **kw)
    return err.value.reason, err.value.field


def test_good_event_round_trips():
    event = parse_event(orjson.dumps({**GOOD, "query": "tea"}), now=NOW)
    assert event.to_dict() == {**GOOD, "query": "tea"}


@pytest.mark.parametrize("field", ["event_id", "user_id", "item_id", "type", "ts", "scene"])
def test_missing_field(field):
    assert reason({k: v for k, v in GOOD.items() if k != field}) == ("missing_field", field)


@pytest.mark.parametrize("field, value", [
    ("event_id", 12), ("user_id", ["u"]), ("item_id", {"a": 1}), ("type", 3), ("scene", True),
    ("ts", "yesterday"), ("ts", True), ("query", 5),
])
def test_wrong_type(field, value):
    assert reason({**GOOD, field: value}) == ("bad_type", field)


@pytest.mark.parametrize("payload, expected", [
    (b"not json", ("not_json", None)),
    (b"\xff\xfe\x00binary", ("not_json", None)),
    (b"[1, 2]", ("not_object", None)),
    (b'{"ts": NaN}', ("not_json", None)),
    (None, ("empty_payload", None)),
])
def test_not_an_object(payload, expected):
    assert reason(payload) == expected


def test_bad_values():
    assert reason({**GOOD, "type": "like"}) == ("unknown_event_type", "type")
    assert reason({**GOOD, "ts": -5}) == ("bad_timestamp", "ts")
    assert reason({**GOOD, "ts": NOW + 3 * 86400}) == ("bad_timestamp", "ts")
    assert reason({**GOOD, "user_id": "  "}) == ("empty_field", "user_id")
    assert reason({**GOOD, "user_id": "u" * 1000}) == ("too_long", "user_id")
    assert reason({**GOOD, "item_id": "i\n1"}) == ("bad_characters", "item_id")
    assert reason(orjson.dumps({**GOOD, "pad": "x" * 500}), max_bytes=200) == ("oversized", None)


def test_items():
    item = parse_item({"item_id": "m1", "title": "Alien (1979)", "genres": ["Horror", "Sci-Fi"]})
    assert item.category == "Horror" and "Sci-Fi" in item.text_for_encoder
    for bad, expected in [
        ({"item_id": "m1", "title": "x"}, ("missing_field", "category")),
        ({"item_id": "m1", "category": "c"}, ("missing_field", "title")),
        ({"item_id": "m1", "title": "x", "category": "c", "price": -1}, ("bad_value", "price")),
        ({"item_id": "m1", "title": "x", "category": "c", "genres": "Horror"}, ("bad_type", "genres")),
        ({"item_id": "m1", "title": "x", "category": "c", "text": "a\x00b"}, ("bad_characters", "text")),
    ]:
        with pytest.raises(InvalidInput) as err:
            parse_item(bad)
        assert (err.value.reason, err.value.field) == expected
