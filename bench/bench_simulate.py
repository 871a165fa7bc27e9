"""Simulator speed: the vectorised `simulate` (10k users x 1 week, ~1M watch events) against a plain
per-user, per-row Python/pandas generator writing the same tables (same row count per user and table,
same string banks, same per-day Parquet layout) in the same run. Medians of `repeats` runs.

    python -m bench.bench_simulate            # prints one JSON object
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from conf_profile.config import SimulateSettings
from conf_profile.schema import RAW_SCHEMAS, RAW_TABLES
from conf_profile.simulate import banks as B
from conf_profile.simulate import simulate
from conf_profile.simulate import vocab as V
from conf_profile.simulate.population import SIM_CLASSES
from conf_profile.simulate.users import build_users
from conf_profile.storage import Lake

START = date(2026, 11, 2)


def bench(repeats: int = 3, users: int = 10_000) -> dict:
    sim = SimulateSettings(users=users, weeks=1, start=START)
    banks = python_banks()  # rendering the banks is shared set-up, timed for neither side
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        fast, summary = [], {}
        for i in range(repeats):
            t0 = time.perf_counter()
            summary = simulate(Lake.open(f"{tmp}/vectorised-{i}"), sim)
            fast.append(time.perf_counter() - t0)
        plan = row_plan(Lake.open(f"{tmp}/vectorised-0"))
        slow, base_rows = [], {}
        for i in range(repeats):
            t0 = time.perf_counter()
            base_rows = baseline(Lake.open(f"{tmp}/baseline-{i}"), sim, plan, banks)
            slow.append(time.perf_counter() - t0)
    f, s = statistics.median(fast), statistics.median(slow)
    return {
        "users": users, "weeks": 1, "rows": summary["rows"], "baseline_rows": base_rows,
        "simulate_median_s": round(f, 2), "baseline_median_s": round(s, 2), "speedup": round(s / f, 1),
        "simulate_runs_s": [round(x, 2) for x in fast], "baseline_runs_s": [round(x, 2) for x in slow],
        "watch_events_per_s": int(summary["rows"]["watch_events"] / f),
    }


def row_plan(lake: Lake) -> dict[str, pd.Series]:
    """Rows per user (null user ids included) of every table the vectorised run wrote."""
    return {t: lake.dataset(f"raw/{t}").to_table(columns=["user_id"]).to_pandas()["user_id"]
            .value_counts(dropna=False) for t in RAW_TABLES}


def python_banks() -> dict:
    return {
        "titles": [B.titles().values[o:o + n].to_pylist() for o, n in zip(B.titles().offsets, B.titles().sizes, strict=True)],
        "suffixes": B.title_suffixes().values.to_pylist(),
        "cue_watch": B.cues("watch").values.to_pylist(), "cue_search": B.cues("search").values.to_pylist(),
        "cue_comment": B.cues("comment").values.to_pylist(), "queries": B.queries().values.to_pylist(),
        "reactions": B.reactions().values.to_pylist(), "bios": B.bio_interests().values.to_pylist(),
        "injections": B.injections().values.to_pylist(),
    }


def baseline(lake: Lake, sim: SimulateSettings, plan: dict[str, pd.Series], banks: dict) -> dict[str, int]:
    """The straightforward way: one Python dict per row, random choices per field, pandas to Parquet."""
    rnd = random.Random(sim.seed)
    people = build_users(sim, START)
    interests = people.lat.interests
    popularity = [V.CATEGORY_POPULARITY[c] for c in B.CATEGORIES]
    weights = {}
    for u in range(people.n):  # per-user category weights, the way a loop-minded generator computes them
        w = list(popularity)
        for k, name in enumerate(SIM_CLASSES["interests"]):
            if interests[u, k]:
                for cat, boost in V.INTEREST_CATEGORIES[name].items():
                    w[B.CATEGORIES.index(cat)] += 10 * boost
        weights[f"u{u:07d}"] = w
    makers = {"profiles": _profile_row, "watch_events": _watch_row, "searches": _search_row,
              "comments": _comment_row, "purchases": _purchase_row}
    rows = {}
    for table in RAW_TABLES:
        records = []
        for user, n in plan[table].items():
            uid = None if pd.isna(user) else user
            w = weights.get(uid, popularity)
            for _ in range(int(n)):
                records.append(makers[table](rnd, uid, w, banks, sim))
        rows[table] = write_per_day(lake, table, pd.DataFrame.from_records(records))
    return rows


def _ts(rnd: random.Random) -> datetime:
    day = datetime(START.year, START.month, START.day, tzinfo=UTC)
    return day + timedelta(days=rnd.randrange(7), seconds=rnd.uniform(0, 86_399))


def _profile_row(rnd, uid, w, banks, sim) -> dict:
    bio = " | ".join(rnd.sample(banks["bios"], rnd.randint(1, 3))) if rnd.random() < 0.6 else None
    return {"user_id": uid, "ts": _ts(rnd), "nickname": f"{rnd.choice(V.NICK_WORDS)}_{rnd.choice(V.NICK_NOUNS)}",
            "bio": bio, "declared_gender": rnd.choice(["male", "female", None, None]),
            "declared_birth_year": rnd.choice([None, rnd.randint(1950, 2012)]),
            "device_model": rnd.choice(B.DEVICE_LIST), "ip_city": rnd.choice(B.CITY_LIST),
            "registered_at": _ts(rnd) - timedelta(days=rnd.randint(1, 1500))}


def _watch_row(rnd, uid, w, banks, sim) -> dict:
    c = rnd.choices(range(len(B.CATEGORIES)), weights=w)[0]
    if rnd.random() < 0.25:
        title = rnd.choice(banks["cue_watch"])
    else:
        title = rnd.choice(banks["titles"][c]) + rnd.choice(banks["suffixes"])
    seconds = float(round(V.CATEGORY_SECONDS[B.CATEGORIES[c]] * rnd.lognormvariate(0, 0.6)))
    watched = round(seconds * rnd.betavariate(1.6, 2.0), 1)
    if rnd.random() < sim.out_of_range_rate:
        watched = -watched
    return {"user_id": uid, "ts": _ts(rnd), "video_id": f"v{rnd.randrange(10**9)}", "video_title": title,
            "video_category": B.CATEGORIES[c], "creator_id": f"c{rnd.randrange(24_000):05d}",
            "watch_seconds": watched, "video_seconds": seconds, "liked": rnd.random() < 0.1,
            "shared": rnd.random() < 0.02, "commented": rnd.random() < 0.03}


def _search_row(rnd, uid, w, banks, sim) -> dict:
    query = rnd.choice(banks["cue_search"]) if rnd.random() < 0.35 else rnd.choice(banks["queries"])
    return {"user_id": uid, "ts": _ts(rnd), "query": query}


def _comment_row(rnd, uid, w, banks, sim) -> dict:
    text = rnd.choice(banks["cue_comment"]) if rnd.random() < 0.4 else rnd.choice(banks["reactions"])
    if rnd.random() < sim.injection_rate:
        text += " " + rnd.choice(banks["injections"])
    if rnd.random() < sim.pii_rate:
        text += f" email me at {rnd.choice(V.FIRST_NAMES['female'])}{rnd.randint(1, 9999)}@{rnd.choice(V.EMAIL_DOMAINS)}"
    if rnd.random() < sim.emoji_rate:
        text += rnd.choice(V.EMOJI)
    return {"user_id": uid, "ts": _ts(rnd), "video_id": f"v{rnd.randrange(10**9)}", "text": text}


def _purchase_row(rnd, uid, w, banks, sim) -> dict:
    item = rnd.choice(B.ITEMS)
    price = round(V.ITEM_PRICE[item] * rnd.lognormvariate(0, 0.6), 2)
    return {"user_id": uid, "ts": _ts(rnd), "item_category": item, "price": price}


def write_per_day(lake: Lake, table: str, df: pd.DataFrame) -> int:
    df = df.sort_values("ts")
    day = df["ts"].dt.date
    for i in range(7):
        d = START + timedelta(days=i)
        part = pa.Table.from_pandas(df[day == d], schema=RAW_SCHEMAS[table], preserve_index=False)
        lake.write_partition(table, d, part)
    return len(df)


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    np.seterr(all="ignore")
    print(json.dumps(bench(repeats), indent=2))
