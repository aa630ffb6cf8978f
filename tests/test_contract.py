"""The message contract (asyncapi.yaml, schemas/) and the code say the same thing.

Inputs: every valid fixture passes both the project's own validator
(model.schema.parse_event / parse_item, stream.codec.decode_forget /
decode_feedback) and its JSON Schema; every bad one (the JSON kinds of
bench/faults.py ``poison()``, and one per field rule) fails both, the code
with the reason the contract names. Rules JSON Schema cannot express (a
clock-relative bound, "printable" in Python's sense, byte sizes, equal
lengths) are listed apart: the code refuses them, the schema lets them by,
and each schema says so in its description.

Outputs: records made by the code that writes them (stream.codec,
model.ranker) pass their schemas and hold no field the schema does not
document. The document: one channel per ``*_topic`` setting, topic configs as
``stream.topics`` creates them, every reason the code can give, its examples
valid, and valid for the maintained AsyncAPI parser (clients/node).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest
import yaml
from referencing import Registry, Resource

from bench.faults import poison
from model.config import SOURCES, RecommenderConfig
from model.features import initial_ranker
from model.recommender import Feedback
from model.schema import EXPLANATIONS, MAX_ID_LEN, Event, InvalidInput, Item, Recommended, parse_event, parse_item
from stream.codec import (
    ORIGIN_HEADER,
    Message,
    dead_letter,
    decode_feedback,
    decode_forget,
    encode_feedback,
    encode_forget,
    encode_recommendation,
    forwarded,
)
from stream.settings import Settings
from stream.topics import TOPIC_CONFIGS, TOPIC_PARTITIONS
from tests.nodejs import require_node

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
SETTINGS = Settings()
N_FEATURES = len(initial_ranker(RecommenderConfig()).features)


# --- the schemas, as a validator sees them
@functools.cache
def registry() -> Registry:
    """Every schema file under its file name, so ``item.json`` can ``$ref`` ``event.json#/$defs/id``."""
    return Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text()))) for path in sorted(SCHEMAS.glob("*.json")))


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": name}, registry=registry())


@functools.cache
def document() -> dict:
    return yaml.safe_load((ROOT / "asyncapi.yaml").read_text())


def schema_accepts(name: str, payload: bytes) -> bool:
    return validator(name).is_valid(orjson.loads(payload))


def code_reason(decode, payload: bytes) -> str | None:
    """The reason the code refuses ``payload`` with, None if it accepts it."""
    try:
        decode(payload)
    except InvalidInput as err:
        return err.reason
    return None


def parse_event_now(payload):
    return parse_event(payload, now=time.time(), max_bytes=SETTINGS.max_payload_bytes)


DECODERS = {
    "event.json": parse_event_now,
    "item.json": functools.partial(parse_item, max_bytes=SETTINGS.max_payload_bytes),
    "forget-request.json": functools.partial(decode_forget, max_bytes=SETTINGS.max_payload_bytes),
    "feedback.json": functools.partial(decode_feedback, n_features=N_FEATURES, max_bytes=SETTINGS.max_feedback_bytes),
}


# --- fixtures: (schema, payload, reason the code gives; None = valid)
def event(**fields) -> bytes:
    base = {"event_id": "e-1", "user_id": "u1", "item_id": "i9", "type": "click", "ts": time.time() - 5,
            "scene": "home"}
    return orjson.dumps({k: v for k, v in {**base, **fields}.items() if v is not ...})


def item(**fields) -> bytes:
    base = {"item_id": "i9", "title": "Rugged Waterproof Hiking Boot", "category": "hiking boots"}
    return orjson.dumps({k: v for k, v in {**base, **fields}.items() if v is not ...})


def feedback(**fields) -> bytes:
    base = {"user_id": "u1", "event_id": "e-1", "hit": True, "model_version": 3,
            "X": [[0.1] * N_FEATURES, [0.0] * N_FEATURES], "y": [1, 0]}
    return orjson.dumps({k: v for k, v in {**base, **fields}.items() if v is not ...})


GONE = ...  # a field left out
VALID = {
    "event.json": {
        "minimal": event(),
        "query null": event(query=None),
        "query empty": event(query=""),
        "query with a newline": event(query="hiking\nboots"),
        "type view": event(type="view"), "type cart": event(type="cart"), "type purchase": event(type="purchase"),
        "ts an integer": event(ts=1_700_000_000),
        "ts at 1990-01-01": event(ts=631_152_000.0),
        "ids of 256 characters": event(user_id="u" * MAX_ID_LEN, item_id="é" * MAX_ID_LEN),
        "ids with inner and outer spaces": event(user_id=" user one ", scene="search page"),
        "unicode ids": event(user_id="ユーザー1", item_id="товар-7"),
        "unknown fields": event(app_version="3.2.1", extra={"a": 1}),
        "query of 10000 characters": event(query="q" * 10_000),
    },
    "item.json": {
        "with a category": item(),
        "genres only": item(category=GONE, genres=["Horror", "Sci-Fi"]),
        "category null, genres": item(category=None, genres=["Drama"]),
        "everything": item(text="Full-grain leather", price=129.0, genres=["outdoor"]),
        "price 0, text empty": item(price=0, text=""),
        "price and text null": item(price=None, text=None),
        "a title with a newline": item(title="Alien\n(1979)"),
    },
    "forget-request.json": {
        "as encode_forget writes it": encode_forget("u1", requested_ts=1_700_000_000.0),
        "only the user": orjson.dumps({"user_id": "ユーザー1"}),
    },
    "feedback.json": {
        "as a worker writes it": feedback(),
        "only X and y": feedback(user_id=GONE, event_id=GONE, hit=GONE, model_version=GONE),
        "no list (the item taken was no candidate)": feedback(X=[], y=[]),
        "with its next-item example": feedback(context=["i7", "i3"], item_id="i9"),
        "a next-item example alone (no list was shown)": feedback(hit=GONE, model_version=GONE, X=[], y=[],
                                                                   context=["i7"], item_id="i9"),
    },
}

BAD = {
    "event.json": {
        "ts in milliseconds (Date.now())": (event(ts=1_700_000_000_000), "bad_timestamp"),
        "ts before 1990": (event(ts=100.0), "bad_timestamp"),
        "ts a string": (event(ts="1700000000"), "bad_type"),
        "ts a boolean": (event(ts=True), "bad_type"),
        "ts null": (event(ts=None), "missing_field"),
        "numeric user_id (a JS number)": (event(user_id=42), "bad_type"),
        "numeric item_id": (event(item_id=9), "bad_type"),
        "numeric event_id": (event(event_id=1), "bad_type"),
        "scene missing": (event(scene=GONE), "missing_field"),
        "scene null": (event(scene=None), "missing_field"),
        "type in upper case": (event(type="Click"), "unknown_event_type"),
        "type all caps": (event(type="VIEW"), "unknown_event_type"),
        "type a number": (event(type=1), "bad_type"),
        "a bell in an id": (event(user_id="u\x07"), "bad_characters"),
        "a newline in an id": (event(item_id="i\n9"), "bad_characters"),
        "a tab in an id": (event(scene="\thome"), "bad_characters"),
        "DEL in an id": (event(event_id="e\x7f"), "bad_characters"),
        "a C1 control in an id": (event(user_id="u\x85"), "bad_characters"),
        "NUL in the query": (event(query="a\x00b"), "bad_characters"),
        "an id of 257 characters": (event(user_id="u" * (MAX_ID_LEN + 1)), "too_long"),
        "a query of 10001 characters": (event(query="q" * 10_001), "too_long"),
        "an empty id": (event(event_id=""), "empty_field"),
        "an id of spaces": (event(scene="   "), "empty_field"),
        "JSON null": (b"null", "not_object"),
        "a JSON string": (b'"click"', "not_object"),
    },
    "item.json": {
        "no title": (item(title=GONE), "missing_field"),
        "an empty title": (item(title=""), "empty_field"),
        "a blank title": (item(title=" \t\n"), "empty_field"),
        "a title of 10001 characters": (item(title="t" * 10_001), "too_long"),
        "no category, no genres": (item(category=GONE), "missing_field"),
        "category null, genres empty": (item(category=None, genres=[]), "missing_field"),
        "genres a string": (item(genres="Horror"), "bad_type"),
        "a number among the genres": (item(genres=["Horror", 1]), "bad_type"),
        "a negative price": (item(price=-1), "bad_value"),
        "a price as a string": (item(price="9.99"), "bad_type"),
        "numeric item_id": (item(item_id=5), "bad_type"),
        "numeric category": (item(category=5), "bad_type"),
        "a control character in the category": (item(category="boots\x07"), "bad_characters"),
        "NUL in the text": (item(text="soft\x00sole"), "bad_characters"),
        "an item_id of 257 characters": (item(item_id="i" * (MAX_ID_LEN + 1)), "too_long"),
        "a JSON array": (b'["i9"]', "not_object"),
    },
    "forget-request.json": {
        "no user": (b"{}", "missing_field"),
        "user_id null": (b'{"user_id": null}', "missing_field"),
        "numeric user_id": (b'{"user_id": 42}', "bad_type"),
        "an empty user_id": (b'{"user_id": ""}', "empty_field"),
        "a control character": (b'{"user_id": "u\\u0001"}', "bad_characters"),
        "a user_id of 257 characters": (orjson.dumps({"user_id": "u" * 257}), "too_long"),
    },
    "feedback.json": {
        "no X": (feedback(X=GONE), "bad_feedback"),
        "a label of 2": (feedback(y=[1, 2]), "bad_feedback"),
        "a feature as a string": (feedback(X=[["a"] * N_FEATURES]), "bad_feedback"),
        "a context without the item taken": (feedback(context=["i7"]), "bad_feedback"),
        "a context that is not a list": (feedback(context="i7", item_id="i9"), "bad_feedback"),
        "an empty id in the context": (feedback(context=[""], item_id="i9"), "bad_feedback"),
        "a context of 65 items (longer than any window)": (feedback(context=["i7"] * 65, item_id="i9"),
                                                           "bad_feedback"),
    },
}


def poison_kinds() -> list[tuple[str, bytes, str]]:
    """bench/faults.py's poison payloads that are JSON (the others never reach a schema), by kind."""
    kinds = dict.fromkeys(poison(100, 0, SETTINGS.max_payload_bytes))  # every kind comes first once, in order
    out = []
    for n, (payload, reason) in enumerate(kinds):
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        out.append((f"poison kind {n}: {reason}", payload, reason))
    return out


def future_ts(payload: bytes) -> bool:
    """A poison event whose ts is days ahead: a clock-relative rule, refused by the code alone."""
    body = orjson.loads(payload)
    return isinstance(body, dict) and isinstance(body.get("ts"), float) and body["ts"] > time.time() + 86_400


POISON = [kind for kind in poison_kinds() if not future_ts(kind[1])]

# (schema, payload, reason): refused by the code, accepted by the schema, because JSON Schema cannot say it.
CODE_ONLY = {
    "ts two days ahead (at most a day ahead of the worker's clock)":
        ("event.json", event(ts=time.time() + 2 * 86_400), "bad_timestamp"),
    **{f"{name} (ts 30 days ahead)": ("event.json", payload, reason)
       for name, payload, reason in poison_kinds() if future_ts(payload)},
    "a zero-width space in an id (format character: not printable)":
        ("event.json", event(user_id="u\u200b1"), "bad_characters"),
    "a no-break space in an id (a separator other than ' ': not printable)":
        ("event.json", event(item_id="i\u00a09"), "bad_characters"),
    "an unassigned code point in an id": ("event.json", event(scene="home\u0378"), "bad_characters"),
    "a record over 65536 bytes (unknown fields are allowed, the size is not)":
        ("event.json", event(pad="x" * SETTINGS.max_payload_bytes), "oversized"),
    "an item over 65536 bytes": ("item.json", item(pad="x" * SETTINGS.max_payload_bytes), "oversized"),
    "a zero-width space in a category": ("item.json", item(category="boots\u200b"), "bad_characters"),
    "a zero-width space in a forgotten user_id":
        ("forget-request.json", orjson.dumps({"user_id": "u\u200b"}), "bad_characters"),
    "feedback rows one feature short (one value per ranker feature)":
        ("feedback.json", feedback(X=[[0.1] * (N_FEATURES - 1)] * 2), "bad_feedback"),
    "feedback with more rows than labels": ("feedback.json", feedback(y=[1]), "bad_feedback"),
    "feedback with two items taken (a list has one)": ("feedback.json", feedback(y=[1, 1]), "bad_feedback"),
    "feedback with no item taken": ("feedback.json", feedback(y=[0, 0]), "bad_feedback"),
}


def cases(table: dict) -> list:
    return [pytest.param(schema, *value if isinstance(value, tuple) else (value,), id=f"{schema}: {name}")
            for schema, fixtures in table.items() for name, value in fixtures.items()]


# --- inputs
@pytest.mark.parametrize("schema, payload", cases(VALID))
def test_a_valid_input_passes_the_code_and_the_schema(schema, payload):
    assert code_reason(DECODERS[schema], payload) is None
    validator(schema).validate(orjson.loads(payload))


@pytest.mark.parametrize("schema, payload, reason",
                         cases(BAD) + [pytest.param("event.json", p, r, id=name) for name, p, r in POISON])
def test_a_bad_input_fails_the_code_with_its_reason_and_the_schema(schema, payload, reason):
    assert code_reason(DECODERS[schema], payload) == reason
    assert not schema_accepts(schema, payload), "the schema lets by what the code refuses"


@pytest.mark.parametrize("schema, payload, reason",
                         [pytest.param(*value, id=name) for name, value in CODE_ONLY.items()])
def test_rules_json_schema_cannot_express_are_enforced_by_the_code_alone(schema, payload, reason):
    """If the schema starts refusing one of these, move it to BAD; the schema's description names each rule."""
    assert code_reason(DECODERS[schema], payload) == reason
    assert schema_accepts(schema, payload)


def test_feedback_with_a_scalar_label_is_dead_lettered():
    payload = feedback(X=[], y=1)
    assert not schema_accepts("feedback.json", payload)
    assert code_reason(DECODERS["feedback.json"], payload) == "bad_feedback"


def test_every_field_the_code_reads_is_in_the_schema():
    properties = {name: set(registry().contents(name)["properties"]) for name in ("event.json", "item.json")}
    assert {f.name for f in dataclasses.fields(Event)} <= properties["event.json"]
    assert {f.name for f in dataclasses.fields(Item)} <= properties["item.json"]


def test_every_schema_is_a_valid_draft_2020_12_schema():
    for path in sorted(SCHEMAS.glob("*.json")):
        body = json.loads(path.read_text())
        assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        jsonschema.Draft202012Validator.check_schema(body)


# --- outputs
def recommended_items() -> tuple[list[Recommended], dict[str, Item]]:
    titles = {i.item_id: i for i in (parse_item(item(item_id="i7")), parse_item(item(item_id="i8", title="Tent")))}
    items = [Recommended("i7", 0.7123456789, "similar to “Rugged Hiking Boot” that you clicked", "content"),
             Recommended("i8", -0.2, "trending now", "popular")]
    return items, titles


def test_a_recommendation_as_encoded_passes_its_schema_and_documents_every_field():
    items, titles = recommended_items()
    event_ = parse_event_now(event(query="boots"))
    for listed in (items, []):
        record = orjson.loads(encode_recommendation(event_, listed, titles, model_version=7, ingest_ts=1.0,
                                                    received_ts=2.0, sent_ts=3.0))
        validator("recommendation.json").validate(record)
        assert_documented(record, "recommendation.json")
        for entry in record["items"]:
            assert set(entry) <= set(registry().contents("recommendation.json")["$defs"]["recommended"]["properties"])


def test_the_sources_a_recommendation_can_name_are_documented():
    from model.features import REASONS

    documented = registry().contents("recommendation.json")["$defs"]["recommended"]["properties"]["source"]["examples"]
    # "scene" evidence is shown as content (model/reasons.py); every other reason group is its own source.
    assert set(SOURCES) | (set(REASONS) - {"scene"}) <= set(documented)


HUGE = b"\x01" * 1_048_576  # 6 bytes each once escaped in JSON: the dead letter must cut it


@pytest.mark.parametrize("message, error", [
    pytest.param(Message(b"u1", b"{not json", 3, 99), InvalidInput("not_json", detail="x"), id="small text"),
    pytest.param(Message(b"u1", HUGE, 0, 5), InvalidInput("oversized"), id="1 MiB of control characters, truncated"),
    pytest.param(Message(b"u1", bytes(range(256)) * 400, 1, 6), InvalidInput("not_json"), id="binary: base64"),
    pytest.param(Message(b"k" * 1000, b"{}", 0, 7), InvalidInput("missing_field", "user_id"), id="a long key"),
    pytest.param(Message(b"i9", None, 0, 8), InvalidInput("empty_payload"), id="a null value"),
    pytest.param(Message(b"u1", b"{}"), InvalidInput("unsendable", detail="MessageSizeTooLarge"), id="unsendable"),
])
def test_a_dead_letter_as_written_passes_its_schema(message, error):
    out = dead_letter(message, error, SETTINGS.events_topic, SETTINGS.dead_letter_max_bytes)
    record = orjson.loads(out.value)
    validator("dead-letter.json").validate(record)
    assert_documented(record, "dead-letter.json")
    assert len(out.value) <= SETTINGS.dead_letter_max_bytes
    if message.value is HUGE:
        assert record["payload_truncated"] and record["payload_bytes"] == len(HUGE)
        assert record["payload_sha256"] == hashlib.sha256(HUGE).hexdigest()


def test_every_reason_the_code_can_give_is_in_the_dead_letter_schema():
    """Scans model/ and stream/ for ``InvalidInput("<reason>"``: a new reason fails here until documented."""
    found = set(EXPLANATIONS)
    for path in [*ROOT.glob("model/**/*.py"), *ROOT.glob("stream/**/*.py")]:
        found |= set(re.findall(r'InvalidInput\(\s*"([a-z_]+)"', path.read_text()))
    documented = registry().contents("dead-letter.json")["properties"]["reason"]["enum"]
    assert found <= set(documented), f"undocumented reasons: {sorted(found - set(documented))}"


def test_feedback_forget_and_snapshot_records_as_written_pass_their_schemas():
    event_ = parse_event_now(event())
    X = np.random.default_rng(0).normal(size=(3, N_FEATURES))
    written = {
        "feedback.json": encode_feedback(event_, Feedback(X, np.array([1.0, 0.0, 0.0]), True, 4), (["i7"], "i9")),
        "forget-request.json": encode_forget("u1"),
    }
    ranker = initial_ranker(RecommenderConfig())
    ranker.learn_rows(X, np.array([1.0, 0.0, 0.0]))
    written["ranker-snapshot.json"] = ranker.to_bytes()
    for schema, payload in written.items():
        record = orjson.loads(payload)
        validator(schema).validate(record)
        assert_documented(record, schema)
    assert code_reason(DECODERS["feedback.json"], written["feedback.json"]) is None
    assert decode_forget(written["forget-request.json"]) == "u1"


def test_a_forwarded_event_carries_the_origin_header_the_document_describes():
    out = forwarded(Message(b"wrong-key", event(), 2, 1041), "u1")
    channel = document()["channels"]["events.rekeyed"]
    headers_schema = channel["messages"]["rekeyedEvent"]["headers"]
    headers = {name: value.decode() for name, value in out.headers}
    jsonschema.Draft202012Validator(headers_schema).validate(headers)
    assert headers == {ORIGIN_HEADER: "2:1041"} and out.key == b"u1"


def assert_documented(record: dict, schema: str) -> None:
    """The code writes no field the schema does not document."""
    undocumented = set(record) - set(registry().contents(schema)["properties"])
    assert not undocumented, f"{schema} does not document {sorted(undocumented)}"


# --- the document
def channels() -> dict:
    return document()["channels"]


def test_every_topic_setting_has_a_channel_and_every_channel_a_setting():
    topics = {f.name: f.default for f in dataclasses.fields(Settings) if f.name.endswith("_topic")}
    by_env = {c.get("x-streamrec-env"): c["address"] for c in channels().values()}
    wanted = {f"STREAMREC_{name.upper()}": address for name, address in topics.items()}
    missing = {env: address for env, address in wanted.items() if by_env.get(env) != address}
    assert not missing, f"no channel for {missing} in asyncapi.yaml: add one channel and one schema per topic"
    assert set(by_env) == set(wanted), f"channels for no setting: {sorted(set(by_env) - set(wanted))}"


def test_each_channel_declares_the_partitions_and_compaction_streamrec_creates():
    for name, channel in channels().items():
        field = channel["x-streamrec-env"].removeprefix("STREAMREC_").lower()
        kafka = channel.get("bindings", {}).get("kafka", {})
        assert kafka.get("partitions") == TOPIC_PARTITIONS.get(field), name
        policy = TOPIC_CONFIGS.get(field, {}).get("cleanup.policy")
        assert kafka.get("topicConfiguration", {}).get("cleanup.policy") == (policy and policy.split(",")), name


def payload_refs() -> dict[tuple[str, str], str]:
    """(channel, message) → the schema file its payload points to."""
    return {(c, m): message["payload"]["schema"]["$ref"].removeprefix("./schemas/")
            for c, channel in channels().items() for m, message in channel["messages"].items()
            if "schema" in message["payload"]}


def test_every_schema_file_is_the_payload_of_a_message_and_every_payload_a_file():
    refs = payload_refs()
    assert set(refs.values()) == {p.name for p in SCHEMAS.glob("*.json")}
    for message in (m for c in channels().values() for m in c["messages"].values() if "schema" in m["payload"]):
        assert message["payload"]["schemaFormat"] == "application/schema+json;version=2020-12"


def test_the_documents_examples_pass_their_schemas_and_the_code():
    for (channel, name), schema in payload_refs().items():
        for example in channels()[channel]["messages"][name].get("examples", []):
            validator(schema).validate(example["payload"])
            if schema in DECODERS:
                assert code_reason(DECODERS[schema], orjson.dumps(example["payload"])) is None, (channel, name)
            if schema == "dead-letter.json":
                body = example["payload"]
                assert hashlib.sha256(body["payload"].encode()).hexdigest() == body["payload_sha256"]
                assert len(body["payload"].encode()) == body["payload_bytes"]


def test_the_asyncapi_document_is_valid_for_the_asyncapi_parser():
    """@asyncapi/parser (pinned in clients/node) with Ajv 2020-12 for the payloads; offline once installed."""
    node_dir = require_node()
    done = subprocess.run(["node", "validate-asyncapi.js", str(ROOT / "asyncapi.yaml")], cwd=node_dir,
                          capture_output=True, text=True, timeout=60)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and result["valid"], json.dumps(result["diagnostics"], indent=1)
    assert result["channels"] == [c["address"] for c in channels().values()]


def test_the_client_guide_states_every_event_field_and_links_the_contract():
    guide = (ROOT / "docs" / "clients.md").read_text()
    for field in registry().contents("event.json")["properties"]:
        assert re.search(rf"^\| `{field}` \|", guide, re.M), f"the field table of docs/clients.md lacks {field}"
    assert "asyncapi.yaml" in guide and "schemas/event.json" in guide
    for block in re.findall(r"```python\n(.*?)```", guide, re.S):
        compile(block, "docs/clients.md", "exec")
