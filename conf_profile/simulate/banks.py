"""All string banks of the simulator, rendered once per process (cached) and shared by every week.

Group layouts are fixed here so that the generators only compute integer group ids:
- per video category: `CATEGORIES.index(cat)`;
- per attribute cue: `2 * CUE_KEYS.index((attribute, class)) + gender` (0 male, 1 female).
"""

from __future__ import annotations

import random
from functools import lru_cache

from conf_profile.simulate import vocab as V
from conf_profile.simulate.cues import CUES, FRAMES, GENDER_SLOTS
from conf_profile.simulate.population import SIM_CLASSES
from conf_profile.simulate.text import Bank, expand

# The simulated platform's categorical vocabularies (the simulator's own: nothing outside simulate/ uses them).
VIDEO_CATEGORIES = [
    "gaming", "beauty", "fashion", "sports", "fitness", "food", "cooking", "travel", "tech", "parenting", "kids",
    "finance", "music", "pets", "cars", "education", "comedy", "movies", "health", "diy", "news", "lifestyle",
    "anime", "career",
]
ITEM_CATEGORIES = [
    "electronics", "cosmetics", "clothing", "sportswear", "groceries", "kitchen", "books", "toys", "baby",
    "pet_supplies", "auto_parts", "tools", "travel_gear", "luxury", "health", "games", "home",
]

CATEGORIES = list(VIDEO_CATEGORIES)
ITEMS = list(ITEM_CATEGORIES)
GENDERS = ["male", "female"]
CUE_ATTRS = [a for a in SIM_CLASSES if a != "interests"]
CUE_KEYS = [(a, c) for a in CUE_ATTRS for c in SIM_CLASSES[a]]
CITY_LIST = [c for tier in ("tier1", "tier2", "tier3", "rural") for c in V.CITIES[tier]]
DEVICE_LIST = [d for lvl in ("low", "medium", "high") for d in V.DEVICES[lvl]]


def cue_offset(attribute: str) -> int:
    """Flat index of the attribute's first class in CUE_KEYS."""
    return CUE_KEYS.index((attribute, SIM_CLASSES[attribute][0]))


@lru_cache(maxsize=1)
def titles() -> Bank:
    return Bank.of([expand(V.TITLES[c], f"title:{c}", per_template=30) for c in CATEGORIES])


@lru_cache(maxsize=1)
def title_suffixes() -> Bank:
    return Bank.of([expand(V.TITLE_SUFFIXES, "suffix", per_template=4)])


@lru_cache(maxsize=1)
def trending_titles() -> Bank:
    return Bank.of([expand(t, f"trend:{i}", per_template=1) for i, (_, t, _) in enumerate(V.TRENDING)])


@lru_cache(maxsize=1)
def trending_queries() -> Bank:
    return Bank.of([expand(q, f"trendq:{i}", per_template=1) for i, (_, _, q) in enumerate(V.TRENDING)])


@lru_cache(maxsize=1)
def queries() -> Bank:
    """Per category, plus one last group of generic (navigational) queries."""
    groups = [_lower(expand(V.QUERIES[c], f"query:{c}", per_template=20, typo_rate=0.08)) for c in CATEGORIES]
    return Bank.of([*groups, _lower(expand(V.GENERIC_QUERIES, "query:generic", per_template=1, typo_rate=0.05))])


@lru_cache(maxsize=1)
def reactions() -> Bank:
    """Per category, plus one last group of reactions that fit any video."""
    groups = [expand(V.REACTIONS[c], f"react:{c}", per_template=8) for c in CATEGORIES]
    return Bank.of([*groups, expand(V.GENERIC_REACTIONS, "react:generic", per_template=3)])


@lru_cache(maxsize=1)
def openers() -> Bank:
    return Bank.of([V.COMMENT_OPENERS])


@lru_cache(maxsize=1)
def closers() -> Bank:
    return Bank.of([V.COMMENT_CLOSERS])


@lru_cache(maxsize=8)
def cues(source: str) -> Bank:
    """Cue text of one source ("watch", "search", "comment", "bio") per (attribute, class, gender)."""
    groups = []
    for attr, cls in CUE_KEYS:
        cue = CUES[attr][cls]
        templates = list(cue.get(source, []))
        if source in FRAMES:
            templates += FRAMES[source]
        for g in GENDERS:
            extra = {**GENDER_SLOTS[g], "topic": cue["topics"]}
            texts = expand(templates, f"cue:{source}:{attr}:{cls}:{g}", per_template=6 if source == "bio" else 10,
                           extra=extra, typo_rate=0.08 if source == "search" else 0.0)
            groups.append(_lower(texts) if source == "search" else texts)
    return Bank.of(groups)


@lru_cache(maxsize=1)
def bio_interests() -> Bank:
    return Bank.of([expand(V.BIO_INTERESTS[i], f"bio:{i}", per_template=4) for i in SIM_CLASSES["interests"]])


@lru_cache(maxsize=1)
def bio_fillers() -> Bank:
    return Bank.of([V.BIO_FILLERS])


@lru_cache(maxsize=1)
def nick_roles() -> Bank:
    """Groups: 3 * gender + (0 parent, 1 grandparent, 2 other)."""
    groups = []
    for g in GENDERS:
        extra = {**GENDER_SLOTS[g], "noun": V.NICK_NOUNS}
        groups += [expand(V.NICK_ROLES[k], f"nick:{g}:{k}", per_template=6, extra=extra) for k in ("parent", "grand", "other")]
    return Bank.of(groups)


@lru_cache(maxsize=1)
def injections() -> Bank:
    rnd = random.Random(11)
    out = []
    for attr, classes in SIM_CLASSES.items():
        for cls in classes:
            label = f"[{cls}]" if attr == "interests" else cls
            out += [t.format(attr=attr, label=label) for t in rnd.sample(V.INJECTIONS, 3)]
    return Bank.of([out])


@lru_cache(maxsize=1)
def long_texts() -> Bank:
    """Rants over 2000 characters (validation's max_text_chars), built from ordinary sentences."""
    rnd = random.Random(5)
    out = []
    for _ in range(40):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < rnd.randint(2100, 4000):
            parts.append(rnd.choice(V.LONG_SENTENCES))
        out.append(" " + " ".join(parts))
    return Bank.of([out])


def _lower(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(t.lower() for t in texts))
