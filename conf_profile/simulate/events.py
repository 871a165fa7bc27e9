"""The five raw tables of one week, built column-wise (numpy indices, pyarrow strings; no loop per event).

How evidence is produced, per event: the *persona* (the user, or the other person on a shared device) is
drawn first; with a small per-source probability the event is a *cue* about one attribute, whose class is
the persona's true class with probability RELIABILITY[attribute] and otherwise a stereotyped guess (the class
of a random user); every other event follows the persona's category preferences. Engagement (completion,
likes) is higher for content that matches the persona, so "most engaged first" documents carry more signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import SimulateSettings
from conf_profile.simulate import banks as B
from conf_profile.simulate import vocab as V
from conf_profile.simulate.dirt import decorate, inject, negate, pii_text
from conf_profile.simulate.population import AGE_P, LIFE, OCC, SIM_CLASSES
from conf_profile.simulate.rng import rng_for
from conf_profile.simulate.text import Bank, Ref, concat, where
from conf_profile.simulate.users import US_PER_DAY, Users
from conf_profile.simulate.world import Week

# Per event of a source: probability that it is a cue about the attribute (the rest is topical content).
CUE_RATES: dict[str, dict[str, float]] = {
    "watch": {"gender": 0.015, "age_group": 0.03, "occupation": 0.06, "life_stage": 0.05, "education": 0.045,
              "consumption_level": 0.02, "city_tier": 0.015},
    "search": {"gender": 0.02, "age_group": 0.03, "occupation": 0.09, "life_stage": 0.07, "education": 0.07,
               "consumption_level": 0.04, "city_tier": 0.04},
    "comment": {"gender": 0.04, "age_group": 0.05, "occupation": 0.09, "life_stage": 0.08, "education": 0.07,
                "consumption_level": 0.02, "city_tier": 0.03},
}
RELIABILITY = {"gender": 0.7, "age_group": 0.6, "occupation": 0.65, "life_stage": 0.65, "education": 0.6,
               "consumption_level": 0.55, "city_tier": 0.55}
SHARED_SHARE = 0.3  # share of a shared-device user's events that come from the other person
DAY_P = np.array([0.13, 0.13, 0.13, 0.14, 0.15, 0.16, 0.16])
HOUR_P = np.array([2, 1, 0.6, 0.4, 0.3, 0.4, 1, 2, 3, 3, 3, 3.5, 5, 4.5, 3.5, 3.5, 4, 4.5, 5.5, 7, 8, 8.5, 7, 4])
TREND_QUERY_P = 0.05
NAV_QUERY_P = 0.08
CATEGORY_REACTION_P = 0.6
CONSUMPTION_PRICE = np.array([0.55, 1.0, 2.1])
IP_HOME_P = np.array([0.85, 0.72, 0.52, 0.42])  # ip_city resolves to the home city (tier1, tier2, tier3, rural)
IP_GATEWAY_P = np.array([0.0, 0.12, 0.33, 0.42])  # ... to a city one tier up (mobile gateways); else anywhere


@dataclass
class WatchLog:
    """Watch events before they become a table (comments need them to pick the video commented on)."""

    uix: np.ndarray
    persona: np.ndarray
    video: np.ndarray
    day: np.ndarray
    ts: np.ndarray
    watch_seconds: np.ndarray
    liked: np.ndarray
    shared: np.ndarray
    per_user: np.ndarray  # events per active user (aligned with week.active)


# ---- shared pieces ---------------------------------------------------------------------------------------
def counts(rng: np.random.Generator, users: Users, wk: Week, mean: np.ndarray) -> np.ndarray:
    """Events per active user this week: Poisson around the user's rate, with weekly ups and downs;
    newcomers only from their join day."""
    a = wk.active
    part = (7 - users.first_day(wk.index, a)) / 7
    return rng.poisson(mean * rng.gamma(5.0, 0.2, len(a)) * part)


def event_times(rng: np.random.Generator, users: Users, wk: Week, uix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(day in week, UTC microseconds) inside the day; weekends and evenings are busier."""
    n = len(uix)
    first = users.first_day(wk.index, uix)
    day = np.where(first == 0, rng.choice(7, n, p=DAY_P), first + (rng.random(n) * (7 - first)).astype(np.int64))
    return day, wk.day0_us + day * US_PER_DAY + time_of_day(rng, n)


def time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    hour = rng.choice(24, n, p=HOUR_P / HOUR_P.sum())
    return hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)


def personas(rng: np.random.Generator, users: Users, uix: np.ndarray) -> np.ndarray:
    co = users.co_user[uix]
    return np.where((co >= 0) & (rng.random(len(uix)) < SHARED_SHARE), co, uix)


def sample_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per event from row `rows[i]` of `probs` (flattened CDF + one searchsorted)."""
    k = probs.shape[1]
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    flat = (cum + np.arange(len(probs))[:, None]).ravel()
    pos = np.searchsorted(flat, rows + rng.random(len(rows)) * (1 - 1e-12), side="right")
    return np.clip(pos - rows * k, 0, k - 1)


def cue_draw(rng: np.random.Generator, source: str, users: Users, wk: Week, persona: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is_cue, flat cue key, truthful) per event; the cue's class is right with prob. RELIABILITY, else that
    of a random user known by this week (later arrivals must not change an earlier week)."""
    attrs = B.CUE_ATTRS
    rates = np.array([CUE_RATES[source][a] for a in attrs])
    ai = np.searchsorted(np.cumsum(rates), rng.random(len(persona)), side="right")
    is_cue = ai < len(attrs)
    ai = np.minimum(ai, len(attrs) - 1)
    single = np.stack([users.lat.single[a] for a in attrs], axis=1)
    truth = single[persona, ai]
    noise = single[rng.integers(0, wk.known, len(persona)), ai]
    rel = np.array([RELIABILITY[a] for a in attrs])[ai]
    cls = np.where(rng.random(len(persona)) < rel, truth, noise)
    key = np.array([B.cue_offset(a) for a in attrs])[ai] + cls
    return is_cue, key, cls == truth


def cue_group(users: Users, key: np.ndarray, persona: np.ndarray) -> np.ndarray:
    return 2 * key + users.lat.single["gender"][persona]


def pick_where(rng: np.random.Generator, choices: list[tuple[np.ndarray, Bank, np.ndarray]], n: int) -> pa.Array:
    """Row i gets a string from the first (mask, bank, group) whose mask is true; picks only those rows."""
    taken = np.zeros(n, bool)
    order, parts = [], []
    for mask, bank, group in choices:
        sel = np.flatnonzero(mask & ~taken)
        taken[sel] = True
        order.append(sel)
        parts.append(bank.pick(group[sel], rng))
    pos = np.concatenate(order)
    return pa.concat_arrays(parts).take(pa.array(np.argsort(pos, kind="stable")))


# ---- tables ----------------------------------------------------------------------------------------------
def watch_log(sim: SimulateSettings, users: Users, wk: Week) -> WatchLog:
    rng = rng_for(sim.seed, wk.index, "watch_events")
    per_user = counts(rng, users, wk, users.watch_rate[wk.active])
    uix = np.repeat(wk.active, per_user)
    persona = personas(rng, users, uix)
    n = len(uix)
    is_cue, key, truthful = cue_draw(rng, "watch", users, wk, persona)
    cat = sample_rows(rng, wk.prefs, persona)
    video = wk.catalogue.pick(rng, np.where(is_cue, len(B.CATEGORIES) + key, cat))
    aligned = np.where(is_cue, truthful, interest_categories(users)[persona, wk.catalogue.category[video]])
    completion = np.where(aligned, rng.beta(2.2, 1.8, n), rng.beta(1.5, 2.1, n))
    watch = np.round(wk.catalogue.seconds[video] * completion, 1)
    liked = rng.random(n) < 0.04 + 0.12 * aligned + 0.08 * completion
    shared = rng.random(n) < 0.01 + 0.02 * aligned
    day, ts = event_times(rng, users, wk, uix)
    watch = _dirty_numbers(rng, watch, sim)
    return WatchLog(uix, persona, video, day, ts, watch, liked, shared, per_user)


def interest_categories(users: Users) -> np.ndarray:
    """(users, categories) bool: the category belongs to one of the user's gold interests."""
    m = np.zeros((len(SIM_CLASSES["interests"]), len(B.CATEGORIES)), bool)
    for i, name in enumerate(SIM_CLASSES["interests"]):
        for c in V.INTEREST_CATEGORIES[name]:
            m[i, B.CATEGORIES.index(c)] = True
    return (users.lat.interests.astype(np.int64) @ m.astype(np.int64)) > 0


def watch_table(log: WatchLog, users: Users, wk: Week, commented: np.ndarray) -> dict[str, pa.Array]:
    cat = wk.catalogue
    return {
        "user_id": Ref(users.user_id, log.uix), "ts": log.ts, "video_id": Ref(cat.video_id, log.video),
        "video_title": Ref(cat.title, log.video),
        "video_category": Ref(pa.array(B.CATEGORIES, pa.string()), cat.category[log.video]),
        "creator_id": Ref(cat.creator, log.video), "watch_seconds": log.watch_seconds,
        "video_seconds": cat.seconds[log.video], "liked": log.liked, "shared": log.shared, "commented": commented,
    }


def comments(sim: SimulateSettings, users: Users, wk: Week, log: WatchLog) -> tuple[dict, np.ndarray, np.ndarray]:
    """Comments on watched videos (same persona, minutes after watching, same day). Returns the columns,
    the day of each row and the index of the watch event each one comments on."""
    rng = rng_for(sim.seed, wk.index, "comments")
    a = wk.active
    ratio = sim.comments_per_user / sim.watch_per_user
    mean = np.where(users.sparse[a], 0.3, ratio * users.watch_rate[a] * users.comment_prop[a])
    per_user = np.where(log.per_user > 0, counts(rng, users, wk, mean), 0)
    owner = np.repeat(np.arange(len(a)), per_user)
    starts = np.concatenate([[0], np.cumsum(log.per_user)[:-1]])
    event = starts[owner] + (rng.random(len(owner)) * log.per_user[owner]).astype(np.int64)
    uix, persona = log.uix[event], log.persona[event]
    day = log.day[event]
    end = wk.day0_us + (day + 1) * US_PER_DAY - 1
    ts = np.minimum(log.ts[event] + rng.exponential(6 * 60e6, len(event)).astype(np.int64), end)
    first = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, bool)
    text = comment_text(rng, sim, users, wk, persona, wk.catalogue.category[log.video[event]], uix, first)
    vid = wk.catalogue.video_id.take(pa.array(log.video[event]))
    return {"user_id": Ref(users.user_id, uix), "ts": ts, "video_id": vid, "text": text}, day, event


def comment_text(rng: np.random.Generator, sim: SimulateSettings, users: Users, wk: Week, persona: np.ndarray,
                 category: np.ndarray, uix: np.ndarray, first: np.ndarray) -> pa.Array:
    n = len(persona)
    is_cue, key, _ = cue_draw(rng, "comment", users, wk, persona)
    react = np.where(rng.random(n) < CATEGORY_REACTION_P, category, len(B.CATEGORIES))
    body = pick_where(rng, [(is_cue, B.cues("comment"), cue_group(users, key, persona)),
                            (np.ones(n, bool), B.reactions(), react)], n)
    zeros = np.zeros(n, np.int64)
    text = concat(B.openers().pick(zeros, rng), body, B.closers().pick(zeros, rng))
    disclosure = users.disclosure.take(pa.array(uix))
    says = first & np.asarray(pc.is_valid(disclosure))
    text = where(says, concat(pc.fill_null(disclosure, ""), ", ", text), text)
    text = where(rng.random(n) < sim.pii_rate, concat(text, pii_text(rng, n)), text)
    text = inject(rng, text, sim.injection_rate)
    return decorate(rng, text, sim)


def searches(sim: SimulateSettings, users: Users, wk: Week) -> tuple[dict, np.ndarray]:
    rng = rng_for(sim.seed, wk.index, "searches")
    a = wk.active
    ratio = sim.searches_per_user / sim.watch_per_user
    mean = np.where(users.sparse[a], 0.6, ratio * users.watch_rate[a] * users.search_prop[a])
    uix = np.repeat(a, counts(rng, users, wk, mean))
    persona = personas(rng, users, uix)
    n = len(uix)
    is_cue, key, _ = cue_draw(rng, "search", users, wk, persona)
    r = rng.random(n)
    trend, nav = r < TREND_QUERY_P, r >= 1 - NAV_QUERY_P
    topic = wk.trending[rng.integers(0, len(wk.trending), n)]
    cat = np.where(nav, len(B.CATEGORIES), sample_rows(rng, wk.prefs, persona))
    query = pick_where(rng, [(is_cue, B.cues("search"), cue_group(users, key, persona)),
                             (trend, B.trending_queries(), topic), (np.ones(n, bool), B.queries(), cat)], n)
    day, ts = event_times(rng, users, wk, uix)
    return {"user_id": Ref(users.user_id, uix), "ts": ts, "query": query}, day


def purchases(sim: SimulateSettings, users: Users, wk: Week) -> tuple[dict, np.ndarray]:
    """Items follow interests and life stage; prices scale with the persona's consumption level."""
    rng = rng_for(sim.seed, wk.index, "purchases")
    a = wk.active
    mean = np.where(users.sparse[a], 0.1, sim.purchases_per_user * users.shop_prop[a])
    uix = np.repeat(a, counts(rng, users, wk, mean))
    persona = personas(rng, users, uix)
    item = sample_rows(rng, item_prefs(users), persona)
    cons = users.lat.single["consumption_level"][persona]
    base = np.array([V.ITEM_PRICE[i] for i in B.ITEMS])[item]
    price = np.round(base * CONSUMPTION_PRICE[cons] * np.exp(rng.normal(0, 0.45, len(uix))), 2)
    price = _dirty_numbers(rng, price, sim)
    day, ts = event_times(rng, users, wk, uix)
    cols = {"user_id": Ref(users.user_id, uix), "ts": ts,
            "item_category": Ref(pa.array(B.ITEMS, pa.string()), item), "price": price}
    return cols, day


def item_prefs(users: Users) -> np.ndarray:
    items, s = B.ITEMS, users.lat.single
    base = np.array([V.ITEM_BASE[i] for i in items])
    inter = np.zeros((len(SIM_CLASSES["interests"]), len(items)))
    for k, name in enumerate(SIM_CLASSES["interests"]):
        for it, w in V.INTEREST_ITEMS[name].items():
            inter[k, items.index(it)] = w
    w = base[None, :] / base.sum() * 3 + users.lat.affinity @ inter
    life, cons, age = s["life_stage"], s["consumption_level"], s["age_group"]
    for item, mask, add in [
        ("baby", life == LIFE.index("parent_young_children"), 0.8),
        ("toys", np.isin(life, [LIFE.index("parent_young_children"), LIFE.index("parent_school_children")]), 0.4),
        ("luxury", cons == 2, 0.25), ("luxury", cons == 1, 0.02),
        ("groceries", s["occupation"] == OCC.index("homemaker"), 0.6),
        ("books", s["occupation"] == OCC.index("student"), 0.3),
        ("health", age == list(AGE_P).index("55_plus"), 0.3),
    ]:
        w[mask, items.index(item)] += add
    return w / w.sum(1, keepdims=True)


def profiles(sim: SimulateSettings, users: Users, wk: Week) -> tuple[dict, np.ndarray]:
    """Daily snapshots of changed users: every active user once a week (newcomers on their join day), some
    twice (a change of IP city while travelling)."""
    rng = rng_for(sim.seed, wk.index, "profiles")
    a = wk.active
    new = users.is_new(wk.index, a)
    day1 = np.where(new, users.join_day[a], rng.integers(0, 7, len(a)))
    again = ~new & (rng.random(len(a)) < 0.3)
    day2 = (day1 + 1 + rng.integers(0, 6, len(a))) % 7
    uix = np.concatenate([a, a[again]])
    day = np.concatenate([day1, day2[again]])
    ts = wk.day0_us + day * US_PER_DAY + time_of_day(rng, len(uix))
    end = wk.day0_us + (day + 1) * US_PER_DAY - 1
    ts = np.where(ts < users.registered_us[uix], np.minimum(users.registered_us[uix] + 60_000_000, end), ts)
    take = pa.array(uix)
    cols = {
        "user_id": users.user_id.take(take), "ts": ts, "nickname": users.nickname.take(take),
        "bio": users.bio.take(take), "declared_gender": users.declared_gender.take(take),
        "declared_birth_year": users.declared_year.take(take),
        "device_model": pa.array(B.DEVICE_LIST, pa.string()).take(pa.array(users.device[uix])),
        "ip_city": pa.array(B.CITY_LIST, pa.string()).take(pa.array(ip_cities(rng, users, uix))),
        "registered_at": users.registered_us[uix],
    }
    return cols, day


def ip_cities(rng: np.random.Generator, users: Users, uix: np.ndarray) -> np.ndarray:
    """Home city, or a bigger city's gateway (small towns often geolocate to the provincial capital), or
    anywhere (travel, VPN)."""
    n = len(uix)
    tier = users.lat.single["city_tier"][uix]
    sizes = np.array([len(V.CITIES[t]) for t in ("tier1", "tier2", "tier3", "rural")])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    up = np.maximum(tier - 1, 0)
    gateway = offsets[up] + (rng.random(n) * sizes[up]).astype(np.int64)
    anywhere = rng.integers(0, len(B.CITY_LIST), n)
    r = rng.random(n)
    home_p = IP_HOME_P[tier]
    return np.where(r < home_p, users.home_city[uix], np.where(r < home_p + IP_GATEWAY_P[tier], gateway, anywhere))


def _dirty_numbers(rng: np.random.Generator, values: np.ndarray, sim: SimulateSettings) -> np.ndarray:
    return negate(rng, values, sim.out_of_range_rate)
