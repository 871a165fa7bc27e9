"""Learnability probe: how far does a plain keyword reader get on the simulated logs?

A developer's check of the simulator, not part of the pipeline (it reads gold, so only tests, the bench and
docs use it). It reads, per user, roughly what a document shows (latest profile row, the 12 most engaged
videos, 8 most frequent searches, 4 latest comments, 5 dearest purchases), scores a short hand-written
keyword list per class (deliberately written without looking at the generator's vocabulary, as a teacher's
author would), and reports macro-F1 per attribute with `unknown` as abstention (method.md, "Metric").
The simulator aims at roughly 40-65 for such a reader: learnable, not trivial.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from conf_profile.intervals import Interval
from conf_profile.simulate.population import SIM_CLASSES
from conf_profile.storage import Lake

KEYWORDS: dict[str, dict[str, list[str]]] = {
    "gender": {"male": ["beard", "men's", "guy", "dude", "bro", "wife", "girlfriend", "dad", "husband of"],
               "female": ["period", "bra", "women's", "girl", "sis", "husband", "boyfriend", "mom", "makeup"]},
    "age_group": {"under_18": ["homework", "my teacher", "middle school", "high school", "robux", "my mom said"],
                  "18_24": ["college", "dorm", "freshman", "roommate", "internship", "gen z"],
                  "25_34": ["wedding", "first home", "turning 30", "student loan", "millennial"],
                  "35_44": ["turning 40", "mid-career", "minivan", "mortgage"],
                  "45_54": ["menopause", "reading glasses", "at 50", "college fund", "midlife"],
                  "55_plus": ["retire", "grandkid", "pension", "senior", "grandchild"]},
    "occupation": {"student": ["exam", "lecture", "campus", "professor", "scholarship"],
                   "office_worker": ["excel", "meeting", "my boss", "office", "spreadsheet"],
                   "tech_professional": ["software", "developer", "kubernetes", "leetcode", "python", "coding"],
                   "service_worker": ["retail", "barista", "customer", "waiter", "delivery"],
                   "manual_worker": ["construction", "welding", "factory", "electrician", "truck"],
                   "self_employed": ["my shop", "freelanc", "business owner", "my own business"],
                   "healthcare": ["nurse", "doctor", "hospital", "patient", "scrubs"],
                   "educator": ["teacher", "classroom", "my students", "lesson plan", "grading"],
                   "homemaker": ["stay at home", "housewife", "household", "laundry", "cleaning"],
                   "retired": ["retired", "retirement", "pension"]},
    "life_stage": {"student": ["student", "dorm", "exam", "campus"],
                   "single_adult": ["single", "dating", "living alone", "solo"],
                   "couple_no_children": ["married", "honeymoon", "date night", "my husband", "my wife"],
                   "parent_young_children": ["toddler", "baby", "diaper", "potty", "newborn"],
                   "parent_school_children": ["homework help", "teenager", "school run", "my kids", "my son"],
                   "empty_nester": ["empty nest", "grandchild", "grandkid", "kids moved out"]},
    "education": {"secondary_or_below": ["no degree", "without a degree", "high school diploma", "dropped out"],
                  "vocational": ["trade school", "apprentice", "vocational", "certification"],
                  "bachelor": ["bachelor", "graduat", "university", "college degree"],
                  "postgraduate": ["phd", "master's", "thesis", "grad school", "mba"]},
    "consumption_level": {"low": ["cheap", "coupon", "budget", "discount", "afford"],
                          "medium": ["value", "ikea", "costco", "mid-range"],
                          "high": ["luxury", "rolex", "first class", "designer", "five-star"]},
    "city_tier": {"tier1": ["subway", "metro", "cbd", "rent is"],
                  "tier2": ["high-speed rail", "new mall", "provincial"],
                  "tier3": ["small city", "hometown", "small town"],
                  "rural": ["farm", "village", "harvest", "tractor", "crops"]},
}
CITY_TIERS = {"beijing": "tier1", "shanghai": "tier1", "guangzhou": "tier1", "shenzhen": "tier1",
              "chengdu": "tier2", "hangzhou": "tier2", "wuhan": "tier2", "nanjing": "tier2", "chongqing": "tier2",
              "tianjin": "tier2", "xi'an": "tier2", "suzhou": "tier2", "county": "rural"}
HIGH_DEVICES = ("pro", "ultra", "fold", "max")
LOW_DEVICES = ("redmi", "realme", "tecno", "infinix", "galaxy a0", "iphone 8")
CATEGORY_INTERESTS = {"gaming": "gaming", "beauty": "beauty_fashion", "fashion": "beauty_fashion",
                      "sports": "sports_fitness", "fitness": "sports_fitness", "food": "food_cooking",
                      "cooking": "food_cooking", "travel": "travel", "tech": "technology", "parenting": "parenting",
                      "finance": "finance", "music": "music", "pets": "pets", "cars": "automotive",
                      "education": "learning", "comedy": "entertainment", "movies": "entertainment",
                      "health": "health_wellness", "diy": "home_diy"}


def probe(lake: Lake, interval: Interval) -> dict[str, float]:
    """Macro-F1 (0-100) per attribute of the keyword reader on one interval, plus `mean`."""
    docs = user_evidence(lake, interval)
    gold = lake.read_committed("gold/labels").to_pandas()
    gold = gold[gold.user_id.isin(docs.index)]
    out = {}
    for attr, classes in SIM_CLASSES.items():
        truth = gold[gold.attribute == attr].set_index("user_id")["label"].reindex(docs.index)
        if attr == "interests":
            pred = predict_interests(docs)
            out[attr] = multi_f1(truth, pred, classes)
        else:
            pred = predict_single(docs, attr)
            out[attr] = single_f1(truth.map(lambda x: x[0]), pred, classes)
    out["mean"] = float(np.mean(list(out.values())))
    return {k: round(v, 1) for k, v in out.items()}


def _read(lake: Lake, table: str, interval: Interval) -> pd.DataFrame:
    days = [d.isoformat() for d in interval.days()]
    return lake.dataset(f"raw/{table}").to_table(filter=ds.field("dt").isin(days)).to_pandas()


def user_evidence(lake: Lake, interval: Interval) -> pd.DataFrame:
    """Per user: `text` (all user-visible text, lower case), profile fields, categories, purchases."""
    t = {name: _read(lake, name, interval).dropna(subset=["user_id"])
         for name in ("profiles", "watch_events", "searches", "comments", "purchases")}
    prof = t["profiles"].sort_values("ts").groupby("user_id").last()
    w = t["watch_events"].assign(score=lambda d: (d.watch_seconds / d.video_seconds).clip(0, 1).fillna(0) + d.liked)
    w = w.sort_values("score", ascending=False).groupby("user_id").head(12)
    s = t["searches"].groupby(["user_id", "query"]).size().rename("n").reset_index()
    s = s.sort_values("n", ascending=False).groupby("user_id").head(8)
    c = t["comments"].sort_values("ts", ascending=False).groupby("user_id").head(4)
    p = t["purchases"].query("price >= 0").sort_values("price", ascending=False).groupby("user_id").head(5)
    parts = [prof["nickname"].fillna("") + " " + prof["bio"].fillna(""),
             w.groupby("user_id")["video_title"].apply(lambda x: " | ".join(x.dropna())),
             s.groupby("user_id")["query"].apply(" | ".join),
             c.groupby("user_id")["text"].apply(lambda x: " | ".join(x.dropna()))]
    docs = pd.DataFrame(index=prof.index)
    docs["text"] = pd.concat(parts, axis=1).reindex(docs.index).fillna("").agg(" | ".join, axis=1).str.lower()
    docs = docs.join(prof[["declared_gender", "declared_birth_year", "device_model", "ip_city"]])
    docs["year"] = interval.start.year
    docs["categories"] = w.groupby("user_id")["video_category"].apply(list).reindex(docs.index)
    docs["mean_price"] = p.groupby("user_id")["price"].mean().reindex(docs.index)
    return docs


def predict_single(docs: pd.DataFrame, attr: str) -> pd.Series:
    classes = SIM_CLASSES[attr]
    scores = pd.DataFrame({c: docs["text"].str.count("|".join(re.escape(k) for k in KEYWORDS[attr][c])).clip(upper=3)
                           for c in classes}, index=docs.index, dtype=float)
    for c, bonus in field_evidence(docs, attr).items():
        scores[c] += bonus
    best = scores.max(axis=1)
    top = scores.idxmax(axis=1)
    tie = scores.eq(best, axis=0).sum(axis=1) > 1
    return top.where((best >= 1) & ~tie, "unknown")


def field_evidence(docs: pd.DataFrame, attr: str) -> dict[str, pd.Series]:
    """Profile fields and prices, read the way a lexicon teacher's field rules would."""
    if attr == "gender":
        g = docs["declared_gender"]
        return {"male": 2.0 * (g == "male"), "female": 2.0 * (g == "female")}
    if attr == "age_group":
        age = docs["year"] - docs["declared_birth_year"]
        bins = [0, 18, 25, 35, 45, 55, 200]
        return {c: (2.0 * ((age >= lo) & (age < hi))).fillna(0) for c, lo, hi in zip(SIM_CLASSES[attr], bins[:-1], bins[1:], strict=True)}
    if attr == "consumption_level":
        dev = docs["device_model"].fillna("").str.lower()
        price = docs["mean_price"]
        return {"high": 1.0 * dev.str.contains("|".join(HIGH_DEVICES)) + 1.0 * (price > 120),
                "low": 1.0 * dev.str.contains("|".join(LOW_DEVICES)) + 1.0 * (price < 25),
                "medium": 1.0 * price.between(25, 120)}
    if attr == "city_tier":
        city = docs["ip_city"].fillna("").str.lower()
        tier = pd.Series("", index=docs.index)
        for name, t in CITY_TIERS.items():
            tier = tier.mask(city.str.contains(name, regex=False), t)
        return {t: 1.5 * (tier == t) for t in SIM_CLASSES[attr]}
    return {}


def predict_interests(docs: pd.DataFrame) -> pd.Series:
    def labels(cats: object) -> list[str]:
        if not isinstance(cats, list):
            return []
        counts = pd.Series([CATEGORY_INTERESTS.get(c) for c in cats]).dropna().value_counts()
        return list(counts[counts >= 3].index[:3])

    return docs["categories"].map(labels)


def single_f1(truth: pd.Series, pred: pd.Series, classes: list[str]) -> float:
    f1 = []
    for c in classes:
        tp = ((pred == c) & (truth == c)).sum()
        p, t = (pred == c).sum(), (truth == c).sum()
        f1.append(2 * tp / (p + t) if p + t else 0.0)
    return 100 * float(np.mean(f1))


def multi_f1(truth: pd.Series, pred: pd.Series, classes: list[str]) -> float:
    f1 = []
    for c in classes:
        t = truth.map(lambda x, c=c: c in list(x))
        p = pred.map(lambda x, c=c: c in x)
        tp = (t & p).sum()
        f1.append(2 * tp / (t.sum() + p.sum()) if t.sum() + p.sum() else 0.0)
    return 100 * float(np.mean(f1))
