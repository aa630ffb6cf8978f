"""Synthetic catalog and drifting users: the generated data of the demo and the tests.

Nothing here comes from a real dataset.  :func:`make_catalog` writes a product
catalog from a hand-made vocabulary (one per category: product nouns,
descriptors, features and uses), so that the text of items of one category is
close for a sentence encoder and far from other categories.
:class:`DriftingUsers` simulates users who mostly interact with one category
at a time and drift to another one every so often; :meth:`DriftingUsers.interest`
tells the truth, for scoring demos and tests.

Everything is deterministic per seed, and uses only :meth:`random.Random.random`
(stable across Python versions), never the global random state.

>>> catalog = make_catalog(n_categories=3, items_per_category=4, seed=0)
>>> len(catalog), catalog[0]["item_id"], catalog[0]["category"]
(12, 'i0001', 'running shoes')
>>> users = DriftingUsers(catalog, n_users=5, seed=0)
>>> [e["type"] in EVENT_TYPES for e in users.events(3)]
[True, True, True]
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "CATEGORIES",
    "EVENT_TYPES",
    "EVENT_TYPE_PROBS",
    "DriftingUsers",
    "make_catalog",
]

#: The interaction types, and how often :class:`DriftingUsers` emits each.
EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "purchase")
EVENT_TYPE_PROBS: tuple[float, ...] = (0.60, 0.25, 0.10, 0.05)


class _Vocab(NamedTuple):
    nouns: tuple[str, ...]  # product nouns, as they read in a sentence
    adjectives: tuple[str, ...]  # descriptors that fit every noun of the category
    features: tuple[str, ...]  # phrases that follow the noun ("with ...", "that ...")
    uses: tuple[str, ...]  # what it is for ("... made for <use>.")
    price: tuple[float, float]  # plausible price range, sampled log-uniformly


# Ordered: make_catalog(n_categories=k) takes the first k.
# fmt: off
_VOCAB: dict[str, _Vocab] = {
    "running shoes": _Vocab(
        ("trail running shoe", "road running shoe", "racing flat", "carbon plate racer",
         "stability running shoe", "cushioned running trainer"),
        ("lightweight", "breathable", "responsive", "waterproof", "neutral", "wide-fit",
         "reflective"),
        ("with a grippy rubber outsole", "with a springy foam midsole",
         "with a seamless knit upper", "with a locked-in heel counter",
         "with a rock plate for rough ground"),
        ("muddy mountain runs", "daily training miles", "marathon race day",
         "fast tempo runs on the road", "easy recovery jogs"),
        (60.0, 220.0),
    ),
    "espresso & coffee": _Vocab(
        ("espresso machine", "burr coffee grinder", "milk frother", "pour-over coffee dripper",
         "French press", "moka pot"),
        ("compact", "stainless steel", "barista-grade", "classic Italian", "programmable",
         "matte black"),
        ("built from brushed stainless steel", "with easy-clean removable parts",
         "that brings out the aroma of freshly roasted beans",
         "with a precise, repeatable brew setting"),
        ("brewing morning espresso shots", "cafe-style lattes at home",
         "slow weekend pour-over coffee", "a strong cup of coffee before work"),
        (15.0, 650.0),
    ),
    "camping gear": _Vocab(
        ("two-person tent", "mummy sleeping bag", "camping stove", "inflatable sleeping pad",
         "LED camp lantern", "folding camp chair"),
        ("ultralight", "packable", "weatherproof", "four-season", "compact", "rugged"),
        ("with a quick-pitch pole design", "that packs down into its own stuff sack",
         "with taped seams to keep out the rain", "built to survive windy campsites"),
        ("weekend camping trips", "backcountry nights under the stars",
         "family campground getaways", "cold nights camping in the mountains"),
        (25.0, 450.0),
    ),
    "board games": _Vocab(
        ("strategy board game", "cooperative board game", "party card game",
         "deck-building game", "trivia game", "chess set"),
        ("family-friendly", "competitive", "award-winning", "deluxe edition", "classic",
         "fast-paced"),
        ("with beautifully illustrated cards", "with a clever tile-laying twist",
         "for two to six players", "with quick-to-learn rules and deep strategy"),
        ("game nights with friends", "rainy family afternoons", "tabletop strategy fans",
         "laughs around the kitchen table"),
        (15.0, 90.0),
    ),
    "yoga": _Vocab(
        ("yoga mat", "foam yoga block", "yoga stretching strap", "meditation cushion",
         "yoga wheel", "yoga bolster"),
        ("non-slip", "eco-friendly", "extra-thick", "travel", "cushioned", "natural rubber"),
        ("with a grippy textured surface", "that supports your joints in deep poses",
         "made from sustainable materials", "with alignment lines printed on top"),
        ("a daily vinyasa flow", "hot yoga classes", "restorative stretching and meditation",
         "deepening your balance poses"),
        (12.0, 140.0),
    ),
    "gardening": _Vocab(
        ("pruning shears", "garden trowel", "watering can", "raised garden bed",
         "seed starter kit", "garden hose"),
        ("heavy-duty", "ergonomic", "rust-resistant", "beginner-friendly", "lightweight",
         "weatherproof"),
        ("with a comfortable cushioned grip", "built to last season after season",
         "that makes planting and weeding easier", "with a rust-proof finish"),
        ("growing tomatoes and herbs", "tending flower beds and borders",
         "a thriving vegetable patch", "spring planting in the backyard"),
        (8.0, 200.0),
    ),
    "kitchen knives": _Vocab(
        ("chef's knife", "santoku knife", "paring knife", "bread knife", "knife block set",
         "carving knife"),
        ("Japanese steel", "forged", "Damascus", "high-carbon", "razor-sharp", "professional"),
        ("with a full-tang ergonomic handle", "that holds a razor-sharp edge",
         "with a precisely balanced blade", "hand-honed to a 15-degree edge"),
        ("slicing vegetables and herbs", "carving roasts and dicing onions",
         "everyday home cooking prep", "serious knife work in the kitchen"),
        (20.0, 300.0),
    ),
    "headphones & audio": _Vocab(
        ("wireless headphones", "noise-cancelling earbuds", "Bluetooth speaker",
         "studio monitor headphones", "soundbar", "portable headphone amplifier"),
        ("high-fidelity", "bass-rich", "premium", "low-latency", "compact", "long-battery"),
        ("with active noise cancellation", "with crisp highs and deep bass",
         "with a 30-hour battery life", "with multipoint Bluetooth pairing"),
        ("listening to music on the commute", "mixing tracks in a home studio",
         "immersive movie nights", "podcasts and calls on the go"),
        (25.0, 400.0),
    ),
    "science fiction books": _Vocab(
        ("space opera novel", "cyberpunk thriller", "time travel novel",
         "first contact anthology", "dystopian novel", "hard science fiction paperback"),
        ("award-winning", "bestselling", "gripping", "mind-bending", "epic", "classic"),
        ("about a starship crew lost beyond the edge of the galaxy",
         "set in a neon-lit megacity of the future",
         "exploring artificial intelligence and what makes us human",
         "with a twist ending you won't see coming"),
        ("fans of starships and alien worlds", "late-night reading",
         "science fiction book clubs", "readers who love big ideas about the future"),
        (8.0, 30.0),
    ),
    "baby care": _Vocab(
        ("baby stroller", "convertible car seat", "baby monitor", "diaper bag",
         "baby bottle set", "nursery swaddle blanket"),
        ("newborn-safe", "lightweight", "hypoallergenic", "organic cotton", "parent-approved",
         "easy-fold"),
        ("designed with a newborn's comfort in mind", "that makes late-night feedings easier",
         "with soft, gentle materials for delicate skin",
         "that keeps your little one safe and snug"),
        ("new parents and their newborns", "daily outings with a toddler",
         "peaceful nights in the nursery", "caring for your baby at home"),
        (10.0, 600.0),
    ),
    "dog supplies": _Vocab(
        ("dog leash", "orthopedic dog bed", "dog chew toy", "no-pull dog harness",
         "rope tug toy", "dog grooming brush"),
        ("durable", "reflective", "machine-washable", "vet-recommended", "puppy-safe",
         "heavy-duty"),
        ("built to survive enthusiastic chewers", "that keeps your pup comfortable",
         "with a sturdy, comfortable fit", "made for dogs of every size"),
        ("daily walks with your dog", "training a new puppy",
         "keeping your dog happy at home", "active dogs who love the outdoors"),
        (8.0, 120.0),
    ),
    "watercolor painting": _Vocab(
        ("watercolor paint set", "sable round brush", "cold-press watercolor paper pad",
         "watercolor mixing palette", "watercolor sketchbook", "watercolor brush set"),
        ("artist-grade", "student", "vibrant", "portable", "professional", "pigment-rich"),
        ("with richly pigmented transparent colors", "that blends smoothly wet-on-wet",
         "with a fine point for delicate washes", "that won't buckle under heavy washes"),
        ("painting landscapes en plein air", "botanical watercolor illustration",
         "learning watercolor techniques", "loose, expressive washes in the studio"),
        (6.0, 120.0),
    ),
    "cycling": _Vocab(
        ("road bike helmet", "cycling jersey", "bike light set", "clipless bike pedals",
         "GPS cycling computer", "padded bib shorts"),
        ("aerodynamic", "lightweight", "high-visibility", "breathable", "carbon", "race-fit"),
        ("built for long days in the saddle", "with reflective details for night rides",
         "tested by competitive road cyclists", "that shaves seconds off your climbs"),
        ("long road rides", "commuting to work by bike", "gran fondo race day",
         "weekend group rides"),
        (20.0, 350.0),
    ),
    "skin care": _Vocab(
        ("hydrating face serum", "daily moisturizer", "mineral sunscreen SPF 50",
         "gentle facial cleanser", "retinol night cream", "clay face mask"),
        ("fragrance-free", "dermatologist-tested", "vegan", "lightweight", "soothing",
         "oil-free"),
        ("with hyaluronic acid and niacinamide",
         "that absorbs quickly without a greasy feel",
         "with soothing aloe and ceramides", "gentle enough for sensitive skin"),
        ("a glowing morning skincare routine", "dry and sensitive skin",
         "calming redness and breakouts", "protecting your face from the sun"),
        (8.0, 90.0),
    ),
    "fishing": _Vocab(
        ("spinning reel", "fishing rod", "tackle box", "fly fishing reel", "fishing lure kit",
         "landing net"),
        ("saltwater", "lightweight", "corrosion-resistant", "telescopic", "pro-grade",
         "freshwater"),
        ("made from tough, corrosion-proof materials", "trusted by seasoned anglers",
         "built for hard-fighting fish", "with everything you need on the water"),
        ("bass fishing on the lake", "casting from the pier", "fly fishing mountain streams",
         "early morning trips after trout"),
        (10.0, 300.0),
    ),
    "home office": _Vocab(
        ("mesh office chair", "standing desk", "monitor arm", "desk organizer",
         "LED desk lamp", "wireless keyboard"),
        ("adjustable", "minimalist", "space-saving", "ergonomic", "sturdy", "modern"),
        ("with lumbar support for long workdays", "that keeps cables neatly hidden",
         "with a clean, clutter-free design", "that improves your posture at the desk"),
        ("working from home", "long video-call days", "a tidy, productive workspace",
         "remote work in a small apartment"),
        (15.0, 600.0),
    ),
    "baking": _Vocab(
        ("stand mixer", "loaf pan", "silicone baking mat", "sourdough proofing basket",
         "cake decorating kit", "digital kitchen scale"),
        ("professional", "nonstick", "heavy-gauge", "bakery-grade", "dishwasher-safe",
         "classic"),
        ("that bakes evenly golden crusts", "that makes kneading dough effortless",
         "with precise measurements down to the gram",
         "that releases cakes and cookies cleanly"),
        ("homemade sourdough bread", "birthday cakes and cupcakes", "weekend cookie baking",
         "pastry and pie making"),
        (8.0, 450.0),
    ),
    "guitars": _Vocab(
        ("acoustic guitar", "electric guitar", "classical guitar", "bass guitar",
         "parlor guitar", "twelve-string guitar"),
        ("solid-top", "vintage-style", "beginner", "handcrafted", "tour-grade", "travel-size"),
        ("with a warm, resonant tone", "with smooth low action for easy playing",
         "that stays in tune night after night", "with rich sustain and clear chords"),
        ("learning your first chords", "playing live on stage", "fingerstyle blues and folk",
         "recording guitar riffs at home"),
        (120.0, 1500.0),
    ),
    "smartphones": _Vocab(
        ("5G smartphone", "Android phone", "camera phone", "foldable smartphone",
         "rugged phone", "mini smartphone"),
        ("flagship", "budget-friendly", "dual-SIM", "256 GB", "fast-charging", "refurbished"),
        ("with a triple-lens camera", "with an all-day battery and fast charging",
         "with a bright OLED display", "with 5G and plenty of storage"),
        ("mobile photography", "streaming and gaming on the go",
         "staying connected while traveling", "everyday calls, chats and apps"),
        (150.0, 1300.0),
    ),
    "tea": _Vocab(
        ("loose leaf green tea", "Earl Grey black tea", "cast iron teapot", "matcha whisk set",
         "herbal tea sampler", "glass tea infuser"),
        ("organic", "hand-picked", "premium", "Japanese-style", "traditional", "single-estate"),
        ("with a delicate floral aroma", "that steeps a smooth, calming cup",
         "sourced from high-mountain tea gardens",
         "that brings out the flavor of loose tea leaves"),
        ("a relaxing afternoon tea ritual", "brewing matcha and sencha",
         "cozy evenings with a warm cup of tea", "tea lovers exploring new blends"),
        (6.0, 90.0),
    ),
    "hiking boots": _Vocab(
        ("waterproof hiking boot", "leather backpacking boot", "mid-cut hiking boot",
         "approach shoe", "mountaineering boot", "lightweight hiking shoe"),
        ("Gore-Tex", "ankle-supporting", "rugged", "all-terrain", "Vibram-soled", "insulated"),
        ("with a deep-lug outsole for steep descents", "with supportive ankle padding",
         "with a breathable waterproof membrane",
         "that stays comfortable over long miles on the trail"),
        ("multi-day backpacking trips", "rocky alpine trails", "muddy spring hikes",
         "weekend hill walking"),
        (70.0, 320.0),
    ),
    "photography": _Vocab(
        ("mirrorless camera", "prime lens", "camera tripod", "camera backpack",
         "lens filter kit", "speedlight flash"),
        ("full-frame", "compact", "weather-sealed", "professional", "travel", "fast-aperture"),
        ("with rugged, pro-level build quality", "that helps you capture crisp, detailed images",
         "trusted by wedding and travel photographers", "built for shooting on location"),
        ("landscape and travel photography", "portrait photo sessions", "street photography",
         "capturing family moments on camera"),
        (30.0, 2500.0),
    ),
    "video games": _Vocab(
        ("open-world RPG", "racing video game", "co-op shooter", "puzzle adventure game",
         "wireless game controller", "gaming headset"),
        ("multiplayer", "best-selling", "next-gen", "indie", "competitive", "story-driven"),
        ("with hours of immersive gameplay", "with online multiplayer and ranked matches",
         "with responsive controls and vivid worlds",
         "that keeps you playing late into the night"),
        ("weekend gaming sessions", "playing online with friends", "console and PC gamers",
         "couch co-op evenings"),
        (15.0, 80.0),
    ),
    "cocktails & bar tools": _Vocab(
        ("cocktail shaker set", "double jigger", "bar spoon", "cocktail muddler",
         "whiskey stones", "wine decanter"),
        ("stainless steel", "copper-plated", "bartender-grade", "elegant", "weighted",
         "professional"),
        ("that mixes perfectly balanced cocktails", "with a weighted, balanced feel",
         "that chills drinks without watering them down",
         "with a polished, bar-ready finish"),
        ("mixing martinis and margaritas at home", "hosting cocktail parties",
         "whiskey tasting nights", "home bartending"),
        (10.0, 120.0),
    ),
    "aquarium fish keeping": _Vocab(
        ("aquarium tank", "canister filter", "aquarium heater", "LED aquarium light",
         "aquarium air pump", "aquascaping tool set"),
        ("freshwater", "low-noise", "energy-efficient", "nano", "planted-tank", "reef-safe"),
        ("that keeps the water crystal clear", "with a gentle flow for tropical fish",
         "that helps live aquarium plants thrive", "with an easy-clean design"),
        ("keeping tropical fish", "a planted freshwater aquarium", "beginner fish keepers",
         "a healthy home reef tank"),
        (6.0, 400.0),
    ),
    "swimming": _Vocab(
        ("swim goggles", "competition swimsuit", "swim cap", "swim kickboard", "swim fins",
         "swim tracker watch"),
        ("anti-fog", "chlorine-resistant", "hydrodynamic", "training", "open-water",
         "silicone"),
        ("with a leak-proof seal", "that glides through the water",
         "built to last through daily pool laps", "with a snug, comfortable fit"),
        ("lap swimming at the pool", "open-water triathlon training", "swim team practice",
         "improving your freestyle stroke"),
        (8.0, 250.0),
    ),
    "knitting & yarn": _Vocab(
        ("merino wool yarn", "bamboo knitting needles", "crochet hook set",
         "chunky knit blanket kit", "stitch marker set", "yarn winder"),
        ("hand-dyed", "soft", "beginner-friendly", "luxury", "ergonomic", "natural"),
        ("that feels soft against the skin", "with smooth tips that glide through stitches",
         "in rich, hand-dyed colors", "with clear patterns and instructions"),
        ("knitting cozy winter sweaters", "crocheting blankets and scarves",
         "learning to knit", "weekend craft projects"),
        (5.0, 80.0),
    ),
    "skateboarding": _Vocab(
        ("complete skateboard", "skateboard deck", "longboard", "skateboard wheels",
         "skateboard trucks", "skate helmet"),
        ("pro", "maple", "street", "cruiser", "durable", "park-ready"),
        ("that pops ollies with ease", "with smooth, fast bearings",
         "built to handle rough concrete", "with a grippy griptape top"),
        ("street skating", "cruising around town", "learning kickflips at the skatepark",
         "downhill carving"),
        (20.0, 250.0),
    ),
    "tennis": _Vocab(
        ("tennis racket", "tennis balls", "tennis racket bag", "tennis string set",
         "tennis shoe", "tennis overgrip pack"),
        ("lightweight", "control", "power", "tournament", "all-court", "championship"),
        ("with a large sweet spot", "that adds spin and control",
         "built for long baseline rallies", "with a comfortable, shock-absorbing feel"),
        ("weekend matches at the club", "improving your tennis serve",
         "competitive tennis tournaments", "doubles with friends"),
        (5.0, 260.0),
    ),
    "vinyl records & turntables": _Vocab(
        ("belt-drive turntable", "vinyl record cleaning kit", "phono preamp",
         "turntable cartridge", "record storage crate", "turntable slipmat"),
        ("vintage", "audiophile", "hi-fi", "retro", "anti-static", "classic"),
        ("with warm analog sound", "that keeps your records dust-free",
         "with precise speed control", "that brings out rich detail from vinyl"),
        ("spinning classic albums", "building a vinyl record collection",
         "audiophile listening sessions", "digging through crates for vinyl"),
        (10.0, 500.0),
    ),
    "makeup": _Vocab(
        ("matte lipstick", "volumizing mascara", "eyeshadow palette", "liquid foundation",
         "makeup brush set", "makeup setting spray"),
        ("long-wear", "cruelty-free", "smudge-proof", "shimmering", "buildable", "velvet"),
        ("with rich, blendable pigment", "that lasts all day without smudging",
         "in flattering everyday shades", "with a smooth, lightweight finish"),
        ("a natural everyday makeup look", "glamorous evening makeup", "bold party looks",
         "quick morning makeup routines"),
        (6.0, 70.0),
    ),
    "bird watching": _Vocab(
        ("birding binoculars", "bird feeder", "birding field guide", "spotting scope",
         "hummingbird feeder", "wooden birdhouse"),
        ("waterproof", "squirrel-proof", "compact", "high-definition", "weatherproof",
         "wildlife-friendly"),
        ("that attracts colorful songbirds", "with crisp, bright optics",
         "built for all-weather outdoor use", "that helps you identify bird species quickly"),
        ("backyard bird watching", "spotting warblers on spring migration",
         "nature walks with binoculars", "birding trips to the wetlands"),
        (10.0, 600.0),
    ),
    "cat supplies": _Vocab(
        ("cat scratching post", "self-cleaning litter box", "cat tree", "feather wand cat toy",
         "catnip mouse toy", "cat carrier"),
        ("sturdy", "cozy", "odor-control", "indoor", "plush", "vet-approved"),
        ("that keeps your cat entertained for hours", "with a soft, cozy perch",
         "that keeps the house fresh", "made for curious indoor cats"),
        ("indoor cats", "playful kittens", "happy cats at home", "multi-cat households"),
        (8.0, 250.0),
    ),
    "houseplants": _Vocab(
        ("monstera plant", "snake plant", "fiddle leaf fig", "self-watering planter",
         "pothos hanging basket", "succulent collection"),
        ("low-light", "air-purifying", "easy-care", "potted", "tropical", "indoor"),
        ("that thrives indoors with little care", "with lush, glossy green leaves",
         "in a decorative ceramic pot", "that brightens any room"),
        ("brightening a living room", "beginner plant parents",
         "a green corner in the home office", "decorating small apartments with plants"),
        (10.0, 120.0),
    ),
    "rock climbing": _Vocab(
        ("climbing harness", "climbing shoes", "chalk bag", "belay device",
         "dynamic climbing rope", "crash pad"),
        ("lightweight", "all-round", "bouldering", "sport", "trad", "durable"),
        ("with a secure, comfortable fit", "that grips the tiniest holds",
         "built for long days at the crag", "with a safety-tested design"),
        ("indoor bouldering sessions", "outdoor sport climbing", "multi-pitch adventures",
         "learning to climb at the gym"),
        (15.0, 300.0),
    ),
    "jewelry": _Vocab(
        ("sterling silver necklace", "hoop earrings", "diamond stud earrings",
         "charm bracelet", "engagement ring", "pendant necklace"),
        ("handcrafted", "14k gold", "minimalist", "vintage-inspired", "elegant", "dainty"),
        ("with a polished, hypoallergenic finish", "set with sparkling stones",
         "that layers beautifully", "in a gift-ready box"),
        ("anniversary gifts", "everyday elegant style", "weddings and special occasions",
         "a thoughtful birthday present"),
        (25.0, 1200.0),
    ),
}
# fmt: on

#: The category names :func:`make_catalog` can use, in the order it takes them.
CATEGORIES: tuple[str, ...] = tuple(_VOCAB)

# Appended to titles once every descriptor x noun pair of a category is used.
_SERIES = (
    "Pro",
    "Plus",
    "Lite",
    "Max",
    "Elite",
    "Sport",
    "Studio",
    "Mini",
    "Classic",
    "X",
)
_CONNECTORS = ("made for", "ideal for", "great for", "designed for", "perfect for")
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "for", "in", "of", "on", "the", "to", "with"}
)


# --------------------------------------------------------------------------- helpers
# Only Random.random() is used: its stream is stable across Python versions, unlike
# choice/shuffle/randint, whose implementation has changed before.


def _below(rng: random.Random, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _pick(rng: random.Random, seq: Sequence):
    return seq[_below(rng, len(seq))]


def _shuffle(rng: random.Random, xs: list) -> None:
    for i in range(len(xs) - 1, 0, -1):
        j = _below(rng, i + 1)
        xs[i], xs[j] = xs[j], xs[i]


def _weighted(rng: random.Random, weights: Sequence[float]) -> int:
    x = rng.random() * sum(weights)
    for i, w in enumerate(weights):
        x -= w
        if x < 0:
            return i
    return len(weights) - 1


def _title_case(phrase: str) -> str:
    """Capitalise each word (and each part of a hyphenated word), keeping acronyms.

    >>> _title_case("chef's knife with a pour-over LED set of 5G phones")
    "Chef's Knife with a Pour-Over LED Set of 5G Phones"
    """
    words = []
    for k, word in enumerate(phrase.split()):
        if k > 0 and word in _SMALL_WORDS:
            words.append(word)
        else:
            words.append("-".join(p[:1].upper() + p[1:] for p in word.split("-")))
    return " ".join(words)


def _article(word: str) -> str:
    """'a' or 'an' for the word that follows.

    >>> [_article(w) for w in ("ultralight", "USB", "LED", "8-inch", "espresso", "14k", "unique")]
    ['an', 'a', 'an', 'an', 'an', 'a', 'a']
    """
    w = word.lower()
    if (
        word[:1].isupper()
        and word.split("-")[0].isupper()
        and len(word.split("-")[0]) > 1
    ):
        return (
            "an" if w[0] in "aefhilmnorsx" else "a"
        )  # an acronym, read letter by letter
    if w.startswith(("uni", "use", "usu", "ut", "eu", "one")):
        return "a"
    if w.startswith(("8", "11", "18")):
        return "an"
    return "an" if w[0] in "aeiou" else "a"


def _plural(noun: str) -> bool:
    """Whether a product noun is plural ("pruning shears", not "prime lens").

    >>> [_plural(n) for n in ("pruning shears", "prime lens", "chess set", "tennis balls")]
    [True, False, False, True]
    """
    last = noun.split()[-1].lower()
    return (
        last.endswith("s")
        and not last.endswith("ss")
        and last not in {"lens", "tennis"}
    )


def _plural_verb(feature: str) -> str:
    """Make a feature phrase agree with a plural noun ("that makes" -> "that make").

    >>> [_plural_verb(f) for f in ("that makes it easy", "that mixes drinks", "with a grip")]
    ['that make it easy', 'that mix drinks', 'with a grip']
    """
    words = feature.split(" ", 2)
    if len(words) < 2 or words[0] != "that" or not words[1].endswith("s"):
        return feature
    verb = words[1]
    if verb.endswith(("xes", "shes", "ches", "sses")):
        verb = verb[:-2]
    elif not verb.endswith("ss"):
        verb = verb[:-1]
    return " ".join(["that", verb, *words[2:]])


# --------------------------------------------------------------------------- catalog


def make_catalog(
    n_categories: int = 24, items_per_category: int = 20, seed: int = 0
) -> list[dict]:
    """Generate a product catalog of plain dicts.

    Each category (the first ``n_categories`` of :data:`CATEGORIES`) gets
    ``items_per_category`` items; titles pair a descriptor with a product noun
    of the category ("Lightweight Trail Running Shoe"), and a series name or a
    number is appended when the pairs run out, so titles are unique across the
    catalog.  The text is one sentence saying what the item is and what it is
    for, in the category's own vocabulary.  Prices are sampled log-uniformly
    from a range plausible for the category and end in ``.99``.

    Parameters
    ----------
    n_categories : int
        How many categories, from 1 to ``len(CATEGORIES)``.
    items_per_category : int
        Items per category, at least 1.
    seed : int
        Seed; the same arguments always give the same catalog.

    Returns
    -------
    list of dict
        Items with keys ``item_id`` (``"i0001"``, ... in catalog order),
        ``title``, ``category``, ``text`` and ``price`` (float), grouped by
        category in the order of :data:`CATEGORIES`.

    Raises
    ------
    ValueError
        If ``n_categories`` or ``items_per_category`` is out of range.

    Examples
    --------
    >>> catalog = make_catalog(n_categories=2, items_per_category=3, seed=0)
    >>> item = catalog[0]
    >>> sorted(item)
    ['category', 'item_id', 'price', 'text', 'title']
    >>> item["item_id"], item["category"]
    ('i0001', 'running shoes')
    >>> item["title"]
    'Breathable Cushioned Running Trainer'
    >>> item["text"]
    'A breathable cushioned running trainer with a seamless knit upper, ideal for easy recovery jogs.'
    >>> item["price"]
    91.99
    >>> [it["category"] for it in catalog]
    ['running shoes', 'running shoes', 'running shoes', 'espresso & coffee', 'espresso & coffee', 'espresso & coffee']
    >>> make_catalog(2, 3, seed=0) == catalog
    True
    """
    if not 1 <= n_categories <= len(CATEGORIES):
        raise ValueError(
            f"n_categories must be in 1..{len(CATEGORIES)}, got {n_categories}"
        )
    if items_per_category < 1:
        raise ValueError(
            f"items_per_category must be at least 1, got {items_per_category}"
        )
    rng = random.Random(seed)
    total = n_categories * items_per_category
    width = max(4, len(str(total)))
    seen_titles: set[str] = set()
    items: list[dict] = []
    for category in CATEGORIES[:n_categories]:
        vocab = _VOCAB[category]
        pairs = [(a, n) for a in vocab.adjectives for n in vocab.nouns]
        _shuffle(rng, pairs)
        lo, hi = vocab.price
        for k in range(items_per_category):
            adjective, noun = pairs[k % len(pairs)]
            round_ = k // len(pairs)
            title = _title_case(f"{adjective} {noun}")
            if round_:
                title += " " + _SERIES[(round_ - 1) % len(_SERIES)]
                if round_ > len(_SERIES):
                    title += f" {(round_ - 1) // len(_SERIES) + 1}"
            base, n = title, 2
            while title in seen_titles:
                title, n = f"{base} {n}", n + 1
            seen_titles.add(title)
            feature = _pick(rng, vocab.features)
            use = _pick(rng, vocab.uses)
            connector = _pick(rng, _CONNECTORS)
            if _plural(noun):
                head, feature = f"{adjective} {noun}", _plural_verb(feature)
            else:
                head = f"{_article(adjective)} {adjective} {noun}"
            text = f"{head} {feature}, {connector} {use}."
            price = math.exp(
                math.log(lo) + rng.random() * (math.log(hi) - math.log(lo))
            )
            items.append(
                {
                    "item_id": f"i{len(items) + 1:0{width}d}",
                    "title": title,
                    "category": category,
                    "text": text[0].upper() + text[1:],
                    "price": round(math.floor(price) + 0.99, 2),
                }
            )
    return items


# --------------------------------------------------------------------------- users


@dataclass
class _User:
    category: str
    remaining: int  # events left before the next drift
    taken: set[str] = field(default_factory=set)


class DriftingUsers:
    """Simulated users whose interest drifts from one category to another.

    Each user has a current category.  With probability ``focus`` an event's
    item comes from it, otherwise from a random other category; within a
    category, items the user has not taken yet are preferred (weighted by a
    fixed, Zipf-like popularity), and taken ones are reused only once the
    category is exhausted.  After about ``drift_every`` events of that user
    (uniformly 75 %-125 % of it, drawn again at each switch) the user switches
    to a different category.

    Parameters
    ----------
    catalog : list of dict
        Items with at least ``item_id`` and ``category`` (``title`` is used for
        search queries when present); usually from :func:`make_catalog`.
    n_users : int
        Number of users, ``"u000"``, ``"u001"``, ...
    focus : float
        Probability, in [0, 1], that an event comes from the current interest.
    drift_every : int
        Mean number of a user's events between switches; 0 or less: never drift.
    seed : int
        Seed; the same arguments give the same events.
    start_ts : float
        Timestamp (seconds) before the first event.
    mean_gap_s : float
        Mean gap between consecutive events (exponential, at least 1 ms).
    scenes : sequence of str
        Scenes, drawn uniformly; ``"search"`` events carry a query.

    Examples
    --------
    >>> users = DriftingUsers(make_catalog(4, 10), n_users=3, seed=1)
    >>> users.users
    ('u000', 'u001', 'u002')
    >>> events = list(users.events(200))
    >>> events[0]["event_id"], sorted(events[0])
    ('e-1', ['event_id', 'item_id', 'query', 'scene', 'ts', 'type', 'user_id'])
    >>> all(a["ts"] < b["ts"] for a, b in zip(events, events[1:]))
    True
    >>> {e["query"] is None for e in events if e["scene"] != "search"}
    {True}
    >>> users.interest("u001") in users.categories
    True
    """

    def __init__(
        self,
        catalog: list[dict],
        n_users: int = 50,
        focus: float = 0.85,
        drift_every: int = 25,
        seed: int = 0,
        start_ts: float = 1_700_000_000.0,
        mean_gap_s: float = 30.0,
        scenes: Sequence[str] = ("home", "search", "detail", "cart"),
    ) -> None:
        if not catalog:
            raise ValueError("catalog is empty")
        if n_users < 1:
            raise ValueError(f"n_users must be at least 1, got {n_users}")
        if not 0.0 <= focus <= 1.0:
            raise ValueError(f"focus must be in [0, 1], got {focus}")
        if not mean_gap_s > 0:
            raise ValueError(f"mean_gap_s must be positive, got {mean_gap_s}")
        if not scenes:
            raise ValueError("scenes is empty")
        self._rng = random.Random(seed)
        self._focus = float(focus)
        self._drift_every = int(drift_every)
        self._scenes = tuple(scenes)
        self._mean_gap = float(mean_gap_s)
        self._ts = float(start_ts)
        self._seq = 0

        by_cat: dict[str, list[dict]] = {}
        for item in catalog:
            by_cat.setdefault(item["category"], []).append(item)
        self._categories = tuple(by_cat)
        self._items = {c: [it["item_id"] for it in its] for c, its in by_cat.items()}
        # Fixed Zipf-like popularity within each category, in a seeded random order.
        self._weights: dict[str, list[float]] = {}
        for c, ids in self._items.items():
            ranks = list(range(len(ids)))
            _shuffle(self._rng, ranks)
            self._weights[c] = [1.0 / (r + 1) ** 0.8 for r in ranks]
        self._queries = {it["item_id"]: _queries_for(it) for it in catalog}

        width = max(3, len(str(n_users - 1)))
        self._users: dict[str, _User] = {}
        for i in range(n_users):
            category = _pick(self._rng, self._categories)
            self._users[f"u{i:0{width}d}"] = _User(category, self._next_drift())

    # -- public API

    @property
    def users(self) -> tuple[str, ...]:
        """The user ids, in order."""
        return tuple(self._users)

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories of the catalog, in order of first appearance."""
        return self._categories

    def interest(self, user_id: str) -> str:
        """The user's current category: the truth, for scoring demos and tests.

        Read right after receiving an event of this user, it is the category
        that event was drawn under (a drift happens just before a user's next
        event, never after the last one).

        Examples
        --------
        >>> users = DriftingUsers(make_catalog(3, 5), n_users=2, seed=0)
        >>> users.interest("u000") in users.categories
        True
        """
        return self._user(user_id).category

    def switch(self, user_id: str, category: str | None = None) -> str:
        """Force the user's interest to ``category`` (default: a random other one).

        The drift countdown restarts.  Returns the new category.

        Examples
        --------
        >>> users = DriftingUsers(make_catalog(3, 5), n_users=2, seed=0)
        >>> users.switch("u001", "camping gear")
        'camping gear'
        >>> users.interest("u001")
        'camping gear'
        >>> users.switch("u001") != "camping gear"
        True
        """
        state = self._user(user_id)
        if category is None:
            category = self._other(state.category)
        elif category not in self._items:
            raise ValueError(f"unknown category {category!r}")
        state.category = category
        state.remaining = self._next_drift()
        return category

    def events(self, n: int) -> Iterator[dict]:
        """Generate ``n`` events interleaved across users, in increasing ``ts``.

        Successive calls continue the same stream (timestamps, sequence
        numbers, interests).  Each event is a dict with ``event_id``
        (``"e-<seq>"``), ``user_id``, ``item_id``, ``type`` (one of
        :data:`EVENT_TYPES`, with :data:`EVENT_TYPE_PROBS`), ``ts`` (seconds,
        rounded to the millisecond), ``scene`` and ``query`` (a short search
        string when the scene is ``"search"``, else ``None``).

        Examples
        --------
        >>> users = DriftingUsers(make_catalog(3, 5), n_users=4, seed=0)
        >>> first = list(users.events(5))
        >>> [e["event_id"] for e in first]
        ['e-1', 'e-2', 'e-3', 'e-4', 'e-5']
        >>> next(users.events(1))["ts"] > first[-1]["ts"]
        True
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self._events(n)

    # -- internals

    def _events(self, n: int) -> Iterator[dict]:
        rng = self._rng
        user_ids = tuple(self._users)
        for _ in range(n):
            user_id = _pick(rng, user_ids)
            state = self._users[user_id]
            if self._drift_every > 0 and state.remaining <= 0:
                state.category = self._other(state.category)
                state.remaining = self._next_drift()
            state.remaining -= 1
            category = state.category
            if len(self._categories) > 1 and rng.random() >= self._focus:
                category = self._other(category)
            item_id = self._take(state, category)
            type_ = EVENT_TYPES[_weighted(rng, EVENT_TYPE_PROBS)]
            scene = _pick(rng, self._scenes)
            query = _pick(rng, self._queries[item_id]) if scene == "search" else None
            gap = max(0.001, round(-math.log(1.0 - rng.random()) * self._mean_gap, 3))
            self._ts = round(self._ts + gap, 3)
            self._seq += 1
            yield {
                "event_id": f"e-{self._seq}",
                "user_id": user_id,
                "item_id": item_id,
                "type": type_,
                "ts": self._ts,
                "scene": scene,
                "query": query,
            }

    def _user(self, user_id: str) -> _User:
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"unknown user {user_id!r}") from None

    def _other(self, category: str) -> str:
        others = [c for c in self._categories if c != category]
        return _pick(self._rng, others) if others else category

    def _next_drift(self) -> int:
        d = self._drift_every
        if d <= 0:
            return 0
        lo, hi = max(1, round(0.75 * d)), max(1, round(1.25 * d))
        return lo + _below(self._rng, hi - lo + 1)

    def _take(self, state: _User, category: str) -> str:
        ids, weights = self._items[category], self._weights[category]
        fresh = [k for k, i in enumerate(ids) if i not in state.taken]
        if fresh:
            k = fresh[_weighted(self._rng, [weights[k] for k in fresh])]
        else:
            k = _weighted(self._rng, weights)
        state.taken.add(ids[k])
        return ids[k]


def _queries_for(item: dict) -> tuple[str, ...]:
    """Short search strings a user might type to find ``item``.

    >>> _queries_for({"title": "Compact Espresso Machine", "category": "espresso & coffee"})
    ('espresso machine', 'compact espresso machine', 'espresso & coffee')
    >>> _queries_for({"title": "Blue Widget Deluxe", "category": "widgets"})
    ('widget deluxe', 'widgets')
    """
    category = str(item.get("category", "")).lower()
    title = str(item.get("title", ""))
    vocab = _VOCAB.get(item.get("category", ""))
    if vocab is not None:
        for noun in vocab.nouns:
            if _title_case(noun) in title:
                queries = [noun.lower()]
                for adjective in vocab.adjectives:
                    if title.startswith(_title_case(adjective) + " "):
                        queries.append(f"{adjective} {noun}".lower())
                        break
                return (*queries, category)
    tail = " ".join(title.lower().split()[-2:])
    return (tail, category) if tail and tail != category else (category,)
