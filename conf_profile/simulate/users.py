"""Users over the whole simulation: cohorts (the first week's users, then arrivals), churn, and the static
traits that profile rows show (nickname, bio, declared fields, device, home city) or that drive activity.

Why cohorts with their own random stream: week w's newcomers depend only on (seed, w), so regenerating one
week needs no other week's draws.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import SimulateSettings
from conf_profile.simulate import banks as B
from conf_profile.simulate import vocab as V
from conf_profile.simulate.cues import DISCLOSURES, GENDER_SLOTS
from conf_profile.simulate.dirt import decorate, pii_text
from conf_profile.simulate.population import LIFE, SIM_CLASSES, Latents, draw_latents
from conf_profile.simulate.rng import rng_for
from conf_profile.simulate.text import choose, concat, int_strings, where

US_PER_DAY = 86_400_000_000
DISCLOSE_ATTRS = {"age_group": 0.3, "occupation": 0.35, "life_stage": 0.15, "education": 0.1, "city_tier": 0.1}
SPARSE_WATCH = 2.0  # mean watch events per week of a sparse user


@dataclass
class Users:
    """Column-wise users; every array has one entry per user (global index = position)."""

    user_id: pa.Array
    lat: Latents
    join_week: np.ndarray
    join_day: np.ndarray  # first active day inside the join week (0 for the first cohort)
    last_week: np.ndarray  # last active week (inclusive); churn
    registered_us: np.ndarray
    watch_rate: np.ndarray  # mean watch events per week
    sparse: np.ndarray
    search_prop: np.ndarray
    comment_prop: np.ndarray
    shop_prop: np.ndarray
    co_user: np.ndarray  # the other person on a shared device, -1 if none
    home_city: np.ndarray  # index into banks.CITY_LIST
    device: np.ndarray  # index into banks.DEVICE_LIST
    taste: np.ndarray  # (n, categories) personal taste multipliers
    nickname: pa.Array
    bio: pa.Array
    declared_gender: pa.Array
    declared_year: pa.Array
    disclosure: pa.Array  # explicit self-statement for comments, null if none (or put in the bio)

    @property
    def n(self) -> int:
        return len(self.join_week)

    def active(self, week: int) -> np.ndarray:
        return np.flatnonzero((self.join_week <= week) & (self.last_week >= week))

    def first_day(self, week: int, idx: np.ndarray) -> np.ndarray:
        """First active day in `week` of users `idx`: the join day for newcomers, else 0."""
        return np.where(self.is_new(week, idx), self.join_day[idx], 0)

    def is_new(self, week: int, idx: np.ndarray) -> np.ndarray:
        """Registered during `week` (the first cohort registered before the simulation)."""
        return (self.join_week[idx] == week) & (week > 0)


def build_users(sim: SimulateSettings, start: date) -> Users:
    """The first cohort plus one arrival cohort per later week, concatenated."""
    n_new = int(round(sim.new_user_rate * sim.users))
    parts, first = [], 0
    for week in range(sim.weeks):
        n = sim.users if week == 0 else n_new
        if n:
            parts.append(draw_cohort(sim, start, week, first, n))
            first += n
    return concat_users(parts)


def draw_cohort(sim: SimulateSettings, start: date, week: int, first: int, n: int) -> Users:
    """`n` users joining in `week`, with global indices from `first`."""
    rng = rng_for(sim.seed, week, "users")
    lat = draw_latents(n, rng)
    join_day = np.zeros(n, np.int64) if week == 0 else rng.integers(0, 7, n)
    stay = rng.geometric(sim.churn_rate, n) if sim.churn_rate > 0 else np.full(n, 10**6)
    week_us = day_us(start) + week * 7 * US_PER_DAY
    if week == 0:  # registered some time before the simulation
        registered = week_us - (rng.integers(1, 1500, n) * US_PER_DAY + rng.integers(0, US_PER_DAY, n))
    else:
        registered = week_us + join_day * US_PER_DAY + rng.integers(0, US_PER_DAY, n)
    shared = rng.random(n) < sim.shared_device_rate
    cons = lat.single["consumption_level"]
    users = Users(
        user_id=pc.binary_join_element_wise("u", int_strings(np.arange(first, first + n), 7), ""), lat=lat,
        join_week=np.full(n, week), join_day=join_day, last_week=week + stay - 1, registered_us=registered,
        **activity(rng, sim, cons),
        co_user=np.where(shared, first + rng.integers(0, n, n), -1),
        home_city=home_cities(rng, lat.single["city_tier"]), device=devices(rng, cons),
        taste=np.exp(rng.normal(0, 0.35, (n, len(B.CATEGORIES)))),
        nickname=nicknames(rng, lat, start.year), bio=bios(rng, lat, sim),
        declared_gender=declared_gender(rng, lat, sim), declared_year=declared_year(rng, lat, sim, start.year),
        disclosure=pa.nulls(n, pa.string()),
    )
    return add_disclosures(users, rng, sim)


def activity(rng: np.random.Generator, sim: SimulateSettings, cons: np.ndarray) -> dict[str, np.ndarray]:
    """Heavy-tailed watch rates (log-normal) whose mean over all users is `watch_per_user`, sparse users
    with a handful of events, and per-user propensities to search, comment and buy (big spenders buy more)."""
    n = len(cons)
    sparse = rng.random(n) < sim.sparse_user_rate
    dense = max(sim.watch_per_user - sim.sparse_user_rate * SPARSE_WATCH, 1.0) / max(1 - sim.sparse_user_rate, 1e-9)
    return {
        "sparse": sparse, "watch_rate": np.where(sparse, SPARSE_WATCH, dense * np.exp(rng.normal(-0.5, 1.0, n))),
        "search_prop": np.exp(rng.normal(-0.18, 0.6, n)), "comment_prop": np.exp(rng.normal(-0.72, 1.2, n)),
        "shop_prop": rng.gamma(2.0, 0.5, n) * np.array([0.7, 1.0, 1.6])[cons],
    }


def day_us(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000


def home_cities(rng: np.random.Generator, tier: np.ndarray) -> np.ndarray:
    sizes = np.array([len(V.CITIES[t]) for t in ("tier1", "tier2", "tier3", "rural")])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return offsets[tier] + (rng.random(len(tier)) * sizes[tier]).astype(np.int64)


def devices(rng: np.random.Generator, cons: np.ndarray) -> np.ndarray:
    """Mostly a phone of the user's spending level; hand-me-downs and carrier deals blur it."""
    sizes = np.array([len(V.DEVICES[c]) for c in ("low", "medium", "high")])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    level = np.where(rng.random(len(cons)) < 0.62, cons, rng.integers(0, 3, len(cons)))
    return offsets[level] + (rng.random(len(cons)) * sizes[level]).astype(np.int64)


def nicknames(rng: np.random.Generator, lat: Latents, year: int) -> pa.Array:
    """Styles: name + birth-year digits (an age cue), name + digits, word_noun, role words, interest words."""
    n = lat.n
    gender = lat.single["gender"]
    name_g = np.where(rng.random(n) < 0.85, gender, 1 - gender)
    names = [V.FIRST_NAMES["male"], V.FIRST_NAMES["female"]]
    name = where(name_g == 0, choose(names[0], rng.integers(0, len(names[0]), n)),
                 choose(names[1], rng.integers(0, len(names[1]), n)))
    yy = int_strings((year - lat.age_years) % 100, 2)
    digits = int_strings(rng.integers(1, 1000, n))
    words = concat(choose(V.NICK_WORDS, rng.integers(0, len(V.NICK_WORDS), n)), "_",
                   choose(V.NICK_NOUNS, rng.integers(0, len(V.NICK_NOUNS), n)))
    life = lat.single["life_stage"]
    parent = np.isin(life, [LIFE.index("parent_young_children"), LIFE.index("parent_school_children")])
    role_kind = np.where(parent, 0, np.where(life == LIFE.index("empty_nester"), 1, 2))
    role = B.nick_roles().pick(3 * gender + role_kind, rng)
    top = np.argmax(lat.interests, axis=1)
    hobby = concat(choose([V.NICK_INTEREST[i] for i in SIM_CLASSES["interests"]], top), "_", digits)
    style = rng.choice(5, n, p=[0.25, 0.2, 0.3, 0.12, 0.13])
    out = where(style == 0, concat(name, yy), concat(name, digits))
    out = where(style == 2, words, out)
    out = where(style == 3, role, out)
    return where(style == 4, hobby, out)


def bios(rng: np.random.Generator, lat: Latents, sim: SimulateSettings) -> pa.Array:
    """Optional parts (hobby, life stage, job, age, city, ...) joined by a separator; null for ~40 %."""
    n = lat.n
    some_interest = np.argmax(lat.interests * rng.random(lat.interests.shape), axis=1)
    parts = [_bio_part(rng, B.bio_interests().pick(some_interest, rng), 0.65)]
    for attr, p in (("life_stage", 0.35), ("occupation", 0.22), ("age_group", 0.12), ("city_tier", 0.1),
                    ("gender", 0.1), ("education", 0.08), ("consumption_level", 0.06)):
        parts.append(_bio_part(rng, cue_text(rng, "bio", attr, lat, np.arange(n), 0.85), p))
    parts.append(_bio_part(rng, B.bio_fillers().pick(np.zeros(n, np.int64), rng), 0.25))
    sep = choose([" | ", " · ", ", ", " / "], rng.integers(0, 4, n))
    joined = concat(*[where(np.asarray(pc.equal(p, "")), p, concat(sep, p)) for p in parts])
    clean = pc.utf8_ltrim(joined, " |·,/")
    text = pc.utf8_ltrim_whitespace(bio_dirt(rng, clean, sim))
    # Users whose bio carries dirt always show it, so the dirt rates hold per profile row.
    has = ((rng.random(n) < 0.6) | np.asarray(pc.not_equal(text, clean))) & np.asarray(pc.not_equal(text, ""))
    return where(has, text, pa.nulls(n, pa.string()))


def _bio_part(rng: np.random.Generator, text: pa.Array, p: float) -> pa.Array:
    return pc.if_else(pa.array(rng.random(len(text)) < p), text, "")


def bio_dirt(rng: np.random.Generator, text: pa.Array, sim: SimulateSettings) -> pa.Array:
    """PII, emoji, non-ASCII and over-long bios, per user, at the configured rates."""
    n = len(text)
    pii = rng.random(n) < sim.pii_rate
    text = where(pii, concat(text, pii_text(rng, n)), text)
    return decorate(rng, text, sim)


def cue_text(rng: np.random.Generator, source: str, attr: str, lat: Latents, persona: np.ndarray,
             reliability: float) -> pa.Array:
    """One cue per row about `attr` of `persona`: its true class with prob. `reliability`, else the class of
    a random other user (stereotyped noise that follows the population, so majority classes are over-hit)."""
    truth = lat.single[attr][persona]
    noise = lat.single[attr][rng.integers(0, lat.n, len(persona))]
    cls = np.where(rng.random(len(persona)) < reliability, truth, noise)
    group = 2 * (B.cue_offset(attr) + cls) + lat.single["gender"][persona]
    return B.cues(source).pick(group, rng)


def declared_gender(rng: np.random.Generator, lat: Latents, sim: SimulateSettings) -> pa.Array:
    n = lat.n
    g = lat.single["gender"]
    shown = np.where(rng.random(n) < sim.declared_wrong_rate, 1 - g, g)
    text = choose(["male", "female"], shown)
    return where(rng.random(n) < sim.declared_null_rate, pa.nulls(n, pa.string()), text)


def declared_year(rng: np.random.Generator, lat: Latents, sim: SimulateSettings, year: int) -> pa.Array:
    """True birth year, or a plausible wrong one (picker defaults, joke years), or null."""
    n = lat.n
    true = year - lat.age_years - (rng.random(n) < 0.5)
    wrong = np.where(rng.random(n) < 0.5, rng.integers(1950, 2012, n), rng.choice([1990, 2000, 1980, 1970], n))
    shown = np.where(rng.random(n) < sim.declared_wrong_rate, wrong, true)
    null = rng.random(n) < min(sim.declared_null_rate + 0.05, 1.0)
    return pa.array(shown.astype(np.int32), pa.int32(), mask=null)


def _role(lat: Latents, i: int, rng: np.random.Generator) -> str:
    g = SIM_CLASSES["gender"][lat.single["gender"][i]]
    life = LIFE[lat.single["life_stage"][i]]
    key = "parent" if life.startswith("parent") else "grand" if life == "empty_nester" and lat.age_years[i] >= 55 else "self"
    return str(rng.choice(GENDER_SLOTS[g][key]))


def disclosure_sentences(rng: np.random.Generator, lat: Latents, who: np.ndarray, cities: np.ndarray) -> list[str]:
    """Explicit statements ("as a 45 year old dad") for the few disclosing users: a loop over ~2 % of users."""
    attrs = list(DISCLOSE_ATTRS)
    picked = rng.choice(len(attrs), len(who), p=list(DISCLOSE_ATTRS.values()))
    out = []
    for i, a in zip(who, picked, strict=True):
        attr = attrs[a]
        cls = SIM_CLASSES[attr][lat.single[attr][i]]
        template = str(rng.choice(DISCLOSURES[attr][cls]))
        out.append(template.format(age=lat.age_years[i], role=_role(lat, i, rng), city=B.CITY_LIST[cities[i]]))
    return out


def add_disclosures(users: Users, rng: np.random.Generator, sim: SimulateSettings) -> Users:
    """Half of the disclosers say it in their bio, the others in one comment (see events.comments)."""
    who = np.flatnonzero(rng.random(users.n) < sim.disclosure_rate)
    if not len(who):
        return users
    text = np.full(users.n, None, dtype=object)
    text[who] = disclosure_sentences(rng, users.lat, who, users.home_city)
    sentence = pa.array(text, pa.string())
    in_bio = np.zeros(users.n, bool)
    in_bio[who] = rng.random(len(who)) < 0.5
    with_bio = pc.coalesce(concat(sentence, ". ", users.bio), sentence)
    users.bio = where(in_bio, with_bio, users.bio)
    users.disclosure = where(in_bio, pa.nulls(users.n, pa.string()), sentence)
    return users


def concat_users(parts: list[Users]) -> Users:
    if len(parts) == 1:
        return parts[0]
    out = {}
    for f in fields(Users):
        vals = [getattr(p, f.name) for p in parts]
        if f.name == "lat":
            out[f.name] = Latents(
                {k: np.concatenate([v.single[k] for v in vals]) for k in vals[0].single},
                np.concatenate([v.interests for v in vals]), np.concatenate([v.affinity for v in vals]),
                np.concatenate([v.age_years for v in vals]),
                {k: np.concatenate([v.extra[k] for v in vals]) for k in vals[0].extra})
        elif isinstance(vals[0], pa.Array):
            out[f.name] = pa.concat_arrays(vals)
        else:
            out[f.name] = np.concatenate(vals)
    return Users(**out)
