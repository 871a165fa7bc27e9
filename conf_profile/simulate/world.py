"""One week's world: who is active, what each user tends to watch, what is trending, and the video catalogue.

Why a catalogue: a real platform has videos that many users watch (same id, title, creator, length), so
titles repeat across users and engagement varies per video. Pools: one per video category (this week's
trending videos first, where popularity is highest) and one per attribute cue, (attribute, class).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from conf_profile.config import SimulateSettings
from conf_profile.simulate import banks as B
from conf_profile.simulate import vocab as V
from conf_profile.simulate.cues import CUE_CATEGORIES
from conf_profile.simulate.population import AGE_P, LIFE, OCC, SIM_CLASSES
from conf_profile.simulate.rng import rng_for
from conf_profile.simulate.text import concat, int_strings, where
from conf_profile.simulate.users import Users, day_us

GENERIC_VIDEOS = 240  # per category and week
CUE_VIDEOS = 40  # per (attribute, class) and week
TREND_VIDEOS = 16  # per trending topic and week
TRENDING_PER_WEEK = 4
INTEREST_MASS = 0.45  # weight of one gold interest's categories against the whole popularity baseline (1.0)
POPULARITY_SKEW = 2.5  # within a pool, rank = size * u**skew: a few videos get most views


@dataclass
class Catalogue:
    video_id: pa.Array
    title: pa.Array
    category: np.ndarray
    creator: pa.Array
    seconds: np.ndarray
    pool_start: np.ndarray
    pool_size: np.ndarray

    def pick(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        rank = (rng.random(len(pool)) ** POPULARITY_SKEW * self.pool_size[pool]).astype(np.int64)
        return self.pool_start[pool] + rank


@dataclass
class Week:
    index: int
    start: date
    day0_us: int
    active: np.ndarray  # global indices of this week's active users
    known: int  # users who joined by this week (cohorts are contiguous): noise draws stay among them
    prefs: np.ndarray  # (all users, categories) watch probabilities
    trending: np.ndarray  # indices into vocab.TRENDING
    catalogue: Catalogue


def build_week(sim: SimulateSettings, users: Users, start: date, index: int) -> Week:
    rng = rng_for(sim.seed, index, "world")
    wstart = start + timedelta(days=7 * index)
    trending = rng.choice(len(V.TRENDING), TRENDING_PER_WEEK, replace=False)
    prefs = category_prefs(rng, users, trending)
    known = int((users.join_week <= index).sum())
    return Week(index, wstart, day_us(wstart), users.active(index), known, prefs, trending,
                build_catalogue(rng, wstart, trending))


def category_prefs(rng: np.random.Generator, users: Users, trending: np.ndarray) -> np.ndarray:
    """Popularity (drifting weekly, boosted by trends) + interests + life-stage/age habits, times taste."""
    cats = B.CATEGORIES
    base = np.array([V.CATEGORY_POPULARITY[c] for c in cats]) * np.exp(rng.normal(0, 0.25, len(cats)))
    for t in trending:
        base[cats.index(V.TRENDING[t][0])] *= 1.4
    base /= base.sum()
    inter = np.zeros((len(SIM_CLASSES["interests"]), len(cats)))
    for i, name in enumerate(SIM_CLASSES["interests"]):
        for c, w in V.INTEREST_CATEGORIES[name].items():
            inter[i, cats.index(c)] = w
    inter /= inter.sum(1, keepdims=True)
    w = base[None, :] + INTEREST_MASS * users.lat.affinity @ inter + habits(users)
    w *= users.taste
    return w / w.sum(1, keepdims=True)


def habits(users: Users) -> np.ndarray:
    """Watching that follows life stage and age, not interests (a parent puts on cartoons for the kids)."""
    cats, s = B.CATEGORIES, users.lat.single
    out = np.zeros((users.n, len(cats)))
    ages = list(AGE_P)
    age, life, occ = s["age_group"], s["life_stage"], s["occupation"]
    add = [("kids", life == LIFE.index("parent_young_children"), 0.22),
           ("kids", life == LIFE.index("parent_school_children"), 0.06),
           ("kids", age == ages.index("under_18"), 0.1), ("anime", age <= ages.index("18_24"), 0.06),
           ("education", occ == OCC.index("student"), 0.08), ("news", age >= ages.index("45_54"), 0.06),
           ("health", age == ages.index("55_plus"), 0.06),
           ("career", (age >= 1) & (age <= 2) & (occ != OCC.index("student")), 0.04)]
    for cat, mask, w in add:
        out[mask, cats.index(cat)] += w
    return out


def build_catalogue(rng: np.random.Generator, wstart: date, trending: np.ndarray) -> Catalogue:
    """Category pools (trending videos first), then one pool per attribute cue."""
    cats = B.CATEGORIES
    topic_cat = np.array([cats.index(V.TRENDING[t][0]) for t in trending])
    sizes = np.full(len(cats), GENERIC_VIDEOS) + TREND_VIDEOS * np.bincount(topic_cat, minlength=len(cats))
    cue_cats = np.concatenate([_cue_categories(rng, a, c, CUE_VIDEOS) for a, c in B.CUE_KEYS])
    pool_size = np.concatenate([sizes, np.full(len(B.CUE_KEYS), CUE_VIDEOS)])
    pool_start = np.concatenate([[0], np.cumsum(pool_size)[:-1]])
    n_gen = int(sizes.sum())
    # Category pools: per category, its trending videos (topic titles) then ordinary ones.
    gen_cat = np.repeat(np.arange(len(cats)), sizes)
    slot = np.arange(n_gen) - pool_start[gen_cat]
    trend_n = np.bincount(topic_cat, minlength=len(cats))[gen_cat] * TREND_VIDEOS
    is_trend = slot < trend_n
    topic_of = np.full(n_gen, 0)
    for i, t in enumerate(trending):  # few topics: the loop is over topics, not videos
        mask = (gen_cat == topic_cat[i]) & is_trend
        topic_of[mask] = t
    plain = B.titles().pick(gen_cat, rng)
    trend = B.trending_titles().pick(topic_of, rng)
    gen_title = concat(where(is_trend, trend, plain),
                       B.title_suffixes().pick(np.zeros(n_gen, np.int64), rng))
    cue_key = np.repeat(np.arange(len(B.CUE_KEYS)), CUE_VIDEOS)
    cue_title = B.cues("watch").pick(2 * cue_key + rng.integers(0, 2, len(cue_key)), rng)
    category = np.concatenate([gen_cat, cue_cats])
    n = len(category)
    week_no = (wstart - date(2020, 1, 6)).days // 7
    vid = concat("v", int_strings(np.full(n, week_no)), int_strings(rng.permutation(n), 6))
    creator_rank = (rng.random(n) ** 2 * 400).astype(np.int64)
    creator = concat("c", int_strings(category * 1000 + creator_rank, 5))
    median = np.array([V.CATEGORY_SECONDS[c] for c in cats])[category]
    seconds = np.maximum(np.round(median * np.exp(rng.normal(0, 0.6, n))), 8.0)
    return Catalogue(vid, pa.concat_arrays([gen_title, cue_title]), category, creator, seconds,
                     pool_start.astype(np.int64), pool_size.astype(np.int64))


def _cue_categories(rng: np.random.Generator, attr: str, cls: str, n: int) -> np.ndarray:
    options = np.array([B.CATEGORIES.index(c) for c in CUE_CATEGORIES[attr].get(cls) or CUE_CATEGORIES[attr]["_"]])
    return options[rng.integers(0, len(options), n)]
