"""The dataset loaders on tiny files written here, in each MovieLens layout and in JSON Lines."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from model.datasets import RatingTypes, load_jsonl, load_movielens, movielens_format

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]


def flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


@pytest.fixture
def ml100k(tmp_path: Path) -> Path:
    (tmp_path / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    (tmp_path / "u.item").write_bytes("\n".join([
        "1|Toy Story (1995)|01-Jan-1995||http://x|" + flags("Animation", "Children's", "Comedy"),
        f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{flags('Drama', 'Musical')}",
        f"3|unknown||||{flags('unknown')}",
        "4|Broken line|01-Jan-1995",
    ]).encode("latin-1") + b"\n")
    (tmp_path / "u.data").write_text(
        "7\t1\t5\t900000300\n"
        "8\t2\t3\t900000100\n"
        "9\t3\t4\t900000200\t\n"      # a stray trailing tab is tolerated
        "7\t2\t1\t900000100\n"        # same ts as line 2: file order is kept
        "7\tx\t4\n"                   # three fields: skipped
        "8\t1\tfive\t900000400\n"     # not a number: skipped
        "\n")
    return tmp_path


def test_movielens_100k(ml100k: Path):
    data = load_movielens(ml100k)
    assert movielens_format(ml100k) == "100k" and data.name == "movielens-100k"
    items, events = data   # unpacks as (items, events)
    assert [i.item_id for i in items] == ["m1", "m2", "m3"]
    toy, les, unknown = items
    assert toy.title == "Toy Story (1995)"
    assert toy.category == "Animation" and toy.genres == ("Animation", "Children's", "Comedy")
    assert les.title == "Misérables, Les (1995)"            # latin-1 decoded
    assert unknown.genres == ("unknown",)
    assert "Toy Story (1995)" in toy.text_for_encoder and "Comedy" in toy.text_for_encoder
    assert [(e.event_id, e.user_id, e.item_id, e.type, e.ts) for e in events] == [
        ("r2", "u8", "m2", "view", 900000100.0),
        ("r4", "u7", "m2", "view", 900000100.0),
        ("r3", "u9", "m3", "click", 900000200.0),
        ("r1", "u7", "m1", "click", 900000300.0),
    ]
    assert {e.scene for e in events} == {"home"}
    assert dict(data.skipped) == {"u.item: wrong_field_count": 1, "u.data: wrong_field_count": 1,
                                  "u.data: bad_number": 1}
    assert "u.data:5: wrong_field_count" in data.examples
    summary = data.summary()
    assert summary["events"] == 4 and summary["users"] == 3 and summary["event_types"] == {"view": 2, "click": 2}


def test_movielens_1m(tmp_path: Path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "999::Café (1999)::Comedy\n".encode("latin-1"))
    items, events = load_movielens(tmp_path)
    assert movielens_format(tmp_path) == "1m"
    assert [(i.item_id, i.category) for i in items] == [("m1193", "Drama"), ("m661", "Animation"), ("m999", "Comedy")]
    assert items[1].genres == ("Animation", "Children's", "Musical")
    assert items[2].title == "Café (1999)"
    assert [(e.user_id, e.item_id, e.type) for e in events] == [
        ("u2", "m1193", "click"), ("u1", "m1193", "click"), ("u1", "m661", "view")]


def test_movielens_latest(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n2,1,4.5,964982224\n")
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        "5,Some Film (2019),(no genres listed)\n", encoding="utf-8")
    items, events = load_movielens(tmp_path)
    assert movielens_format(tmp_path) == "latest"
    assert items[1].title == "American President, The (1995)"   # quoted comma
    assert items[2].genres == () and items[2].category == "unknown"
    assert [(e.user_id, e.item_id, e.type) for e in events] == [
        ("u1", "m3", "view"), ("u2", "m1", "click"), ("u1", "m1", "click")]


@pytest.mark.parametrize("ratings, movies", [
    # The reported file: lines end with empty columns (a spreadsheet's export), even a single trailing comma.
    ("userId,movieId,rating,timestamp,,,,\n1,31,2.5,1260759144,,,,\n2,31,4.0,1260759145,\n",
     "movieId,title,genres\n31,Dangerous Minds (1995),Drama\n"),
    # A UTF-8 byte-order mark and CRLF line ends (Windows tools).
    ("\ufeffuserId,movieId,rating,timestamp\r\n1,31,2.5,1260759144\r\n2,31,4.0,1260759145\r\n",
     "\ufeffmovieId,title,genres\r\n31,Dangerous Minds (1995),Drama\r\n"),
    # Columns in another order, one more column, a quoted title with commas.
    ("timestamp,rating,movieId,userId,source\n1260759144,2.5,31,1,web\n1260759145,4.0,31,2,app\n",
     'genres,movieId,title\nDrama,31,"Dangerous Minds, Part One (1995)"\n'),
])
def test_real_csv_files_are_read_by_their_header(tmp_path: Path, ratings: str, movies: str):
    (tmp_path / "ratings.csv").write_text(ratings, encoding="utf-8", newline="")
    (tmp_path / "movies.csv").write_text(movies, encoding="utf-8", newline="")
    data = load_movielens(tmp_path)
    assert not data.skipped
    assert [(e.user_id, e.item_id, e.type, e.ts) for e in data.events] == [
        ("u1", "m31", "view", 1260759144.0), ("u2", "m31", "click", 1260759145.0)]
    assert data.items[0].item_id == "m31" and data.items[0].title.startswith("Dangerous Minds")


def test_bad_csv_lines_are_skipped_with_their_reason(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n"
                                          "1,,3.0,1260759145\n1,32,three,1260759146\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n31,A (1995),\n")
    data = load_movielens(tmp_path)
    assert len(data.events) == 1 and data.items[0].genres == ()
    assert dict(data.skipped) == {"ratings.csv: missing_value": 1, "ratings.csv: bad_number": 1}
    assert data.examples == ["ratings.csv:3: missing_value", "ratings.csv:4: bad_number"]


def test_a_csv_without_the_columns_says_which(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("user,item,stars,when\n1,31,2.5,1260759144\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n31,A (1995),Drama\n")
    with pytest.raises(ValueError, match="has no column userId, movieId, rating, timestamp"):
        load_movielens(tmp_path)


def test_rating_types_are_configurable(ml100k: Path):
    _, events = load_movielens(ml100k, rating_types=RatingTypes(liked_from=5, liked="purchase", other="view"),
                               scene="detail")
    assert [e.type for e in events] == ["view", "view", "view", "purchase"]
    assert {e.scene for e in events} == {"detail"}
    with pytest.raises(ValueError, match="not an event type"):
        RatingTypes(liked="like")


def test_unknown_folder_layout(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(FileNotFoundError, match="MovieLens"):
        load_movielens(tmp_path)


def test_jsonl_counts_bad_lines_and_sorts(tmp_path: Path):
    def event(i: int, ts: float, **extra) -> dict:
        return {"event_id": f"e{i}", "user_id": "u1", "item_id": f"i{i}", "type": "click", "ts": ts,
                "scene": "home", **extra}

    lines = [
        orjson.dumps(event(1, 1.7e9 + 20)),
        orjson.dumps(event(2, 1.7e9 + 10)),
        b"{not json",
        orjson.dumps(event(3, 1.7e9 + 10, type="like")),
        orjson.dumps({k: v for k, v in event(4, 1.7e9).items() if k != "user_id"}),
        b"",
        orjson.dumps(event(5, 1.7e9 + 10)),
    ]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "items.jsonl").write_text(
        '{"item_id": "i1", "title": "Old title", "category": "tea"}\n'
        '{"item_id": "i2", "title": "Oolong", "genres": ["tea", "green"]}\n'
        '{"item_id": "i3", "title": "No category"}\n'
        '{"item_id": "i1", "title": "New title", "category": "tea"}\n')
    data = load_jsonl(tmp_path / "events.jsonl", tmp_path / "items.jsonl")
    assert [e.event_id for e in data.events] == ["e2", "e5", "e1"]   # by ts, ties in file order
    assert [(i.item_id, i.title) for i in data.items] == [("i2", "Oolong"), ("i1", "New title")]
    assert dict(data.skipped) == {"items.jsonl: missing_field": 1, "events.jsonl: not_json": 1,
                                  "events.jsonl: unknown_event_type": 1, "events.jsonl: missing_field": 1}
    assert data.examples[0] == "items.jsonl:3: missing_field"


def test_jsonl_without_items(tmp_path: Path):
    (tmp_path / "ev.jsonl").write_text(
        '{"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "view", "ts": 1.7e9, "scene": "home"}\n')
    items, events = load_jsonl(tmp_path / "ev.jsonl")
    assert items == [] and len(events) == 1
