"""JSON Lines in streamrec's own message schema as a :class:`~model.datasets.base.Dataset`."""

from __future__ import annotations

from pathlib import Path

from model.datasets.base import Dataset, lines
from model.schema import InvalidInput, Item, parse_event, parse_item


def load_jsonl(events_path: str | Path, items_path: str | Path | None = None) -> Dataset:
    """Read events (and items) in streamrec's message schema, one JSON object per line.

    Each line is validated like a message on the ``events`` or ``items``
    topic; one that fails is counted in :attr:`Dataset.skipped` under its
    reason. An item id seen twice keeps its last version, as on the compacted
    topic.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "events.jsonl").write_text(
    ...     '{"event_id": "e2", "user_id": "u1", "item_id": "i2", "type": "view", "ts": 1.7e9, "scene": "home"}\\n'
    ...     '{"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "like", "ts": 1.6e9, "scene": "home"}\\n'
    ...     'not json\\n')
    >>> data = load_jsonl(folder / "events.jsonl")
    >>> [e.event_id for e in data.events], dict(data.skipped)
    (['e2'], {'events.jsonl: unknown_event_type': 1, 'events.jsonl: not_json': 1})
    """
    events_path = Path(events_path)
    data = Dataset(f"jsonl-{events_path.stem}", [], [])
    if items_path is not None:
        items_path = Path(items_path)
        items: dict[str, Item] = {}
        for line, text in lines(items_path):
            try:
                item = parse_item(text)
            except InvalidInput as err:
                data.skip(items_path.name, line, err.reason)
                continue
            items.pop(item.item_id, None)  # a newer version moves to the end, as it would in the log
            items[item.item_id] = item
        data.items = list(items.values())
    for line, text in lines(events_path):
        try:
            data.events.append(parse_event(text))
        except InvalidInput as err:
            data.skip(events_path.name, line, err.reason)
    data.events.sort(key=lambda e: e.ts)
    return data
