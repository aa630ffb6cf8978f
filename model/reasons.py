"""The reason shown beside each recommended item: honest, and safe to display.

The ranker says which kind of evidence contributed most to an item's score
(:data:`model.features.REASONS`); :func:`reason_for` turns that into words,
naming the user's own item or the item people took before this one. Two rules
keep it honest:

- "similar to X" is claimed only when the item really is similar to X: cosine
  at least ``min_cosine`` (all-MiniLM-L6-v2 on the generated catalogue: items
  of one category are above 0.37 for 95 % of pairs, of different ones below
  0.27 for 95 %). Otherwise the reason falls back to what is true: trending
  here, new, or no claim at all.
- Text that comes from the catalogue or the events (titles, scenes) is shown
  through :func:`display`: control and bidirectional-override characters
  removed, whitespace collapsed, length bounded, so a title cannot reorder or
  hide the text around it.

>>> reason_for("content", "home", similar=("Rugged Hiking Boot", "view", 0.62))
('similar to “Rugged Hiking Boot” that you viewed', 'content')
>>> reason_for("content", "home", similar=("Rugged Hiking Boot", "view", 0.16), trending=True)
('trending now', 'popular')
>>> display("Boot\\u202egnp.exe  (new)")
'Bootgnp.exe (new)'
"""

from __future__ import annotations

import functools
import unicodedata

PAST_TENSE = {"view": "viewed", "click": "clicked", "cart": "added to your cart", "purchase": "bought"}

#: Longest title or scene a reason quotes, in characters (a long one is cut with an ellipsis).
MAX_QUOTED = 80


@functools.lru_cache(maxsize=65_536)  # titles repeat: every list quotes a few
def display(text: str, max_len: int = MAX_QUOTED) -> str:
    """``text`` made safe to show inside a sentence.

    Unicode categories Cc (controls), Cf (formats: the bidirectional overrides and
    isolates U+202A-E, U+2066-9, zero-width characters), Cs and Co are removed;
    runs of whitespace become one space; longer than ``max_len``, it is cut with "…".
    """
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    kept = " ".join(kept.split())
    return kept if len(kept) <= max_len else kept[: max_len - 1].rstrip() + "…"


def reason_for(kind: str, scene: str, *, pair_title: str | None = None,
               similar: tuple[str, str, float] | None = None, trending: bool = False,
               new: bool = False, min_cosine: float = 0.35, ordered: bool = True) -> tuple[str, str]:
    """``(reason, source)`` for an item whose strongest evidence is ``kind``.

    Parameters
    ----------
    kind
        The reason group that contributed most (content, scene, covisit, bundle, popular, new, learned).
    scene
        Where the list is shown.
    pair_title
        For covisit/bundle: the title of the user's item that led to this one.
    similar
        ``(title, event type, cosine)`` of the user's recent item most similar to this one.
    trending, new
        Whether the item is popular right now / new to the catalogue: the honest fallbacks.
    min_cosine
        The least cosine at which "similar to" may be claimed.
    ordered
        Whether co-visitation counts pairs in order (previous → next: "next took") or
        both ways ("also took"): the reason claims no more than the counts know.
    """
    where = display(scene)
    if kind in ("covisit", "bundle") and pair_title is not None:
        title = display(pair_title)
        if kind == "covisit":
            return f"people who took “{title}” {'next' if ordered else 'also'} took this", kind
        return f"often bought with “{title}”", kind
    if kind == "popular" or (kind in ("covisit", "bundle") and trending):
        return trending_in(where)
    if kind == "new":
        return "new in the catalogue", "new"
    if kind == "learned":  # the learned item space: what people with recent picks like these take next
        return "people with picks like yours took this next", "learned"
    if kind == "scene" and similar is not None and similar[2] >= min_cosine:
        return f"matches what you look at in {where}", "content"
    if similar is not None and similar[2] >= min_cosine:
        title, taken, _ = similar
        return f"similar to “{display(title)}” that you {PAST_TENSE.get(taken, 'took')}", "content"
    if trending:
        return trending_in(where)
    if new:
        return "new in the catalogue", "new"
    return "you may also like this", "content"


def trending_in(scene: str) -> tuple[str, str]:
    return ("trending now", "popular") if scene == "home" else (f"trending in {scene}", "popular")
