"""Recorded datasets as streams: a catalogue of items and the events, in time order.

Two sources are read:

- MovieLens (GroupLens) folders, in any of the three layouts GroupLens ships:
  100K (``u.data``, ``u.item``, ``u.genre``), 1M (``ratings.dat``,
  ``movies.dat`` with ``::``) and "latest" (``ratings.csv``, ``movies.csv``).
  :func:`movielens_format` tells them apart by the files present. Every rating
  becomes one event (a high rating a stronger type, see :class:`RatingTypes`);
  an item's text for the encoder is its title plus its genre names.
- JSON Lines in streamrec's own message schema: one file of events, one of
  items, each line validated by :func:`model.schema.parse_event` or
  :func:`model.schema.parse_item`.

A bad line is counted with its reason and skipped, never fatal: a recorded log
with a few broken lines is still worth replaying. Events are sorted by ``ts``,
stably, so events with the same timestamp keep their file order.

Ids are the dataset's own numbers with a prefix, ``"u196"`` for users and
``"m242"`` for movies, so that a user id can never be mistaken for an item id.

Examples
--------
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "ratings.csv").write_text(
...     "userId,movieId,rating,timestamp\\n1,10,4.5,964982703\\n2,10,2.0,964981247\\n")
>>> _ = (folder / "movies.csv").write_text(
...     'movieId,title,genres\\n10,"GoldenEye, Special (1995)",Action|Thriller\\n')
>>> items, events = load_movielens(folder)
>>> items[0].item_id, items[0].title, items[0].category, items[0].genres
('m10', 'GoldenEye, Special (1995)', 'Action', ('Action', 'Thriller'))
>>> [(e.user_id, e.item_id, e.type) for e in events]   # in time order
[('u2', 'm10', 'view'), ('u1', 'm10', 'click')]
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

from model.schema import EVENT_TYPES, Event, InvalidInput, Item, parse_event, parse_item

#: The files that identify each MovieLens layout: ratings file, movies file.
MOVIELENS_FILES = {
    "100k": ("u.data", "u.item"),
    "1m": ("ratings.dat", "movies.dat"),
    "latest": ("ratings.csv", "movies.csv"),
}

#: How many skipped lines are quoted in :attr:`Dataset.examples`; the rest are only counted.
MAX_EXAMPLES = 10


@dataclasses.dataclass(frozen=True)
class RatingTypes:
    """How a star rating becomes an event type: ``liked`` from ``liked_from`` stars up, else ``other``.

    Examples
    --------
    >>> to_type = RatingTypes()
    >>> to_type(5), to_type(3.5)
    ('click', 'view')
    >>> RatingTypes(liked_from=3.0, liked="purchase")(3)
    'purchase'
    """

    liked_from: float = 4.0
    liked: str = "click"
    other: str = "view"

    def __post_init__(self) -> None:
        for kind in (self.liked, self.other):
            if kind not in EVENT_TYPES:
                raise ValueError(f"{kind!r} is not an event type {EVENT_TYPES}")

    def __call__(self, rating: float) -> str:
        return self.liked if rating >= self.liked_from else self.other


@dataclasses.dataclass
class Dataset:
    """A catalogue and its events, sorted by ``ts``; unpacks as ``items, events``.

    Attributes
    ----------
    name
        Where it came from, e.g. ``"movielens-100k"``.
    items
        The catalogue, in file order.
    events
        The events, sorted by ``ts`` (ties keep file order).
    skipped
        Lines skipped, by ``"<file>: <reason>"``.
    examples
        The first few skipped lines as ``"<file>:<line>: <reason>"``.
    """

    name: str
    items: list[Item]
    events: list[Event]
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    examples: list[str] = dataclasses.field(default_factory=list)

    def __iter__(self) -> Iterator:
        # The loaders' results read as the (items, events) pair most callers want.
        return iter((self.items, self.events))

    def skip(self, file: str, line: int, reason: str) -> None:
        """Count one bad line of ``file`` (1-based ``line``) and quote the first few."""
        self.skipped[f"{file}: {reason}"] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{file}:{line}: {reason}")

    def summary(self) -> dict:
        """Sizes and time span, for reports."""
        ts = [e.ts for e in self.events]
        return {
            "name": self.name,
            "items": len(self.items),
            "events": len(self.events),
            "users": len({e.user_id for e in self.events}),
            "items_in_events": len({e.item_id for e in self.events}),
            "first_ts": min(ts, default=None),
            "last_ts": max(ts, default=None),
            "event_types": dict(collections.Counter(e.type for e in self.events)),
            "skipped": dict(self.skipped),
            "skipped_examples": list(self.examples),
        }


def movielens_format(path: str | Path) -> str:
    """Which MovieLens layout the folder ``path`` holds: ``"100k"``, ``"1m"`` or ``"latest"``.

    Raises
    ------
    FileNotFoundError
        If the folder holds none of them.
    """
    path = Path(path)
    for layout, names in MOVIELENS_FILES.items():
        if all((path / name).is_file() for name in names):
            return layout
    wanted = "; ".join(" + ".join(names) for names in MOVIELENS_FILES.values())
    raise FileNotFoundError(f"{path} holds no MovieLens ratings and movies files (looked for {wanted})")


def load_movielens(path: str | Path, *, rating_types: RatingTypes = RatingTypes(),
                   scene: str = "home") -> Dataset:
    """Read a MovieLens folder (100K, 1M or latest layout) as items and time-ordered events.

    Parameters
    ----------
    path
        The folder, e.g. ``../shared/data/ml-100k``.
    rating_types
        Maps each rating to an event type.
    scene
        The scene of every event (MovieLens records none).

    Returns
    -------
    Dataset
        Items ``m<movie id>`` (``category`` the first genre, ``genres`` all of
        them), events ``u<user id>`` → ``m<movie id>`` with ``event_id``
        ``r<line number>`` of the ratings file.
    """
    path = Path(path)
    layout = movielens_format(path)
    ratings_name, movies_name = MOVIELENS_FILES[layout]
    data = Dataset(f"movielens-{layout}", [], [])
    if layout == "100k":
        rows = _separated(path / ratings_name, None, 4, data)
        genre_names = _genre_names(path / "u.genre")
        for _, fields in _separated(path / movies_name, "|", 5 + len(genre_names), data):
            flags = fields[5:]
            genres = [name for name, flag in zip(genre_names, flags) if flag.strip() == "1"]
            data.items.append(_movie(fields[0], fields[1], genres))
    elif layout == "1m":
        rows = _separated(path / ratings_name, "::", 4, data)
        for _, fields in _separated(path / movies_name, "::", 3, data):
            data.items.append(_movie(fields[0], fields[1], _pipe_genres(fields[2])))
    else:
        rows = _csv_rows(path / ratings_name, 4, data)
        for _, fields in _csv_rows(path / movies_name, 3, data):
            data.items.append(_movie(fields[0], fields[1], _pipe_genres(fields[2])))

    for line, (user, movie, rating, ts) in rows:
        try:
            stars, when = float(rating), float(ts)
        except ValueError:
            data.skip(ratings_name, line, "bad_number")
            continue
        data.events.append(Event(f"r{line}", f"u{user.strip()}", f"m{movie.strip()}",
                                 rating_types(stars), when, scene))
    data.events.sort(key=lambda e: e.ts)  # stable: equal timestamps keep file order
    return data


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
        for line, text in _lines(items_path):
            try:
                item = parse_item(text)
            except InvalidInput as err:
                data.skip(items_path.name, line, err.reason)
                continue
            items.pop(item.item_id, None)  # a newer version moves to the end, as it would in the log
            items[item.item_id] = item
        data.items = list(items.values())
    for line, text in _lines(events_path):
        try:
            data.events.append(parse_event(text))
        except InvalidInput as err:
            data.skip(events_path.name, line, err.reason)
    data.events.sort(key=lambda e: e.ts)
    return data


def _movie(movie_id: str, title: str, genres: list[str]) -> Item:
    # Movies without genres still need a category (parse_item insists on one); MovieLens
    # itself names that case "unknown".
    return Item(f"m{movie_id.strip()}", title.strip(), genres[0] if genres else "unknown", genres=tuple(genres))


def _pipe_genres(field: str) -> list[str]:
    return [g for g in field.strip().split("|") if g and g != "(no genres listed)"]


def _genre_names(path: Path) -> list[str]:
    """u.genre: ``name|index`` per line, in flag order."""
    pairs = []
    for _, line in _lines(path):
        name, _, index = line.rpartition("|")
        pairs.append((int(index), name))
    return [name for _, name in sorted(pairs)]


def _read_text(path: Path) -> str:
    # 100K and 1M are latin-1, "latest" is UTF-8; latin-1 decodes any bytes, so it is the fallback.
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    # Not str.splitlines(): that also breaks at \x85 and \x1c-\x1e, which latin-1 text may hold.
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def _separated(path: Path, sep: str | None, n_fields: int, data: Dataset) -> list[tuple[int, list[str]]]:
    """Lines split on ``sep`` (``None``: any whitespace) that have exactly ``n_fields`` fields."""
    rows = []
    for number, line in _lines(path):
        # A stray trailing separator or blank is an editing slip, not a missing field.
        fields = line.split(sep) if sep is None else line.rstrip().removesuffix(sep).split(sep)
        if len(fields) != n_fields:
            data.skip(path.name, number, "wrong_field_count")
            continue
        rows.append((number, fields))
    return rows


def _csv_rows(path: Path, n_fields: int, data: Dataset) -> list[tuple[int, list[str]]]:
    """CSV rows after the header (quoted fields may hold commas)."""
    rows = []
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    next(reader, None)
    for fields in reader:
        number = reader.line_num
        if not fields or not any(f.strip() for f in fields):
            continue
        if len(fields) != n_fields:
            data.skip(path.name, number, "wrong_field_count")
            continue
        rows.append((number, fields))
    return rows
