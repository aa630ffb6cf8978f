"""MovieLens (GroupLens) folders as a :class:`~model.datasets.base.Dataset`.

Any of the three layouts GroupLens ships is read: 100K (``u.data``,
``u.item``, ``u.genre``), 1M (``ratings.dat``, ``movies.dat`` with ``::``) and
"latest" (``ratings.csv``, ``movies.csv``). :func:`movielens_format` tells
them apart by the files present. Every rating becomes one event (a high rating
a stronger type, see :class:`RatingTypes`); an item's text for the encoder is
its title plus its genre names.

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

import csv
import dataclasses
import io
from pathlib import Path

from model.datasets.base import Dataset, lines, read_text
from model.schema import EVENT_TYPES, Event, Item

#: The files that identify each MovieLens layout: ratings file, movies file.
MOVIELENS_FILES = {
    "100k": ("u.data", "u.item"),
    "1m": ("ratings.dat", "movies.dat"),
    "latest": ("ratings.csv", "movies.csv"),
}


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
        rows = _csv_rows(path / ratings_name, ("userId", "movieId", "rating", "timestamp"), data)
        for _, fields in _csv_rows(path / movies_name, ("movieId", "title", "genres"), data, optional=("genres",)):
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


def _movie(movie_id: str, title: str, genres: list[str]) -> Item:
    # Movies without genres still need a category (parse_item insists on one); MovieLens
    # itself names that case "unknown".
    return Item(f"m{movie_id.strip()}", title.strip(), genres[0] if genres else "unknown", genres=tuple(genres))


def _pipe_genres(field: str) -> list[str]:
    return [g for g in field.strip().split("|") if g and g != "(no genres listed)"]


def _genre_names(path: Path) -> list[str]:
    """u.genre: ``name|index`` per line, in flag order."""
    pairs = []
    for _, line in lines(path):
        name, _, index = line.rpartition("|")
        pairs.append((int(index), name))
    return [name for _, name in sorted(pairs)]


def _separated(path: Path, sep: str | None, n_fields: int, data: Dataset) -> list[tuple[int, list[str]]]:
    """Lines split on ``sep`` (``None``: any whitespace) that have exactly ``n_fields`` fields."""
    rows = []
    for number, line in lines(path):
        # A stray trailing separator or blank is an editing slip, not a missing field.
        fields = line.split(sep) if sep is None else line.rstrip().removesuffix(sep).split(sep)
        if len(fields) != n_fields:
            data.skip(path.name, number, "wrong_field_count")
            continue
        rows.append((number, fields))
    return rows


def _csv_rows(path: Path, columns: tuple[str, ...], data: Dataset,
              optional: tuple[str, ...] = ()) -> list[tuple[int, list[str]]]:
    """The named ``columns`` of each CSV row, read by the header's names, not by position.

    Tolerated: a UTF-8 byte-order mark, CRLF line ends, quoted fields holding commas,
    extra columns (empty ones after the last, as spreadsheets write them, or others).
    A row without a value in one of ``columns`` (but ``optional`` ones) is skipped and counted.

    Raises
    ------
    ValueError
        If the header lacks one of ``columns``: the file is not what it is named.
    """
    reader = csv.reader(io.StringIO(read_text(path).removeprefix("\ufeff"), newline=""))
    header = [name.strip() for name in next(reader, [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path} has no column {', '.join(missing)} (its header: {','.join(header)[:200]})")
    at = [header.index(c) for c in columns]
    rows = []
    for fields in reader:
        number = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        values = [fields[i].strip() if i < len(fields) else "" for i in at]
        if not all(v or c in optional for v, c in zip(values, columns)):
            data.skip(path.name, number, "missing_value")
            continue
        rows.append((number, values))
    return rows
