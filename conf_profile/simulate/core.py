"""`simulate(lake, sim)`: write W weeks of raw platform logs (one Parquet file per table and day) and the
gold labels apart under gold/.

Why weeks are independent: each week's tables come from random streams keyed by (seed, week, table), so
`week_tables` regenerates any week byte-identically without the weeks before it.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from conf_profile.config import SimulateSettings
from conf_profile.errors import ConfigError
from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout
from conf_profile.progress import bar
from conf_profile.schema import GOLD_SCHEMA, RAW_SCHEMAS, RAW_TABLES
from conf_profile.simulate import events as E
from conf_profile.simulate.dirt import duplicate_index, null_where
from conf_profile.simulate.population import SIM_CLASSES, check_taxonomy
from conf_profile.simulate.rng import rng_for
from conf_profile.simulate.text import Ref
from conf_profile.simulate.users import Users, build_users
from conf_profile.simulate.world import build_week
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy

GOLD_DIR = LakeLayout.gold_dir
# Columns (besides user_id) that go missing at `null_rate`, per table.
NULLABLE = {
    "profiles": ["device_model", "ip_city"],
    "watch_events": ["video_title", "video_category", "creator_id", "video_seconds"],
    "searches": ["query"],
    "comments": ["video_id", "text"],
    "purchases": ["item_category", "price"],
}
EVENT_TABLES = ("watch_events", "searches", "comments", "purchases")  # duplicates are events delivered twice


def default_start(today: date | None = None) -> date:
    """The Monday four weeks before today, so intervals are Monday-aligned weeks."""
    today = today or date.today()
    return today - timedelta(days=today.weekday()) - timedelta(weeks=4)


def check_settings(sim: SimulateSettings) -> None:
    """Reject settings that would write nonsense, naming each bad field."""
    bad = [f"users={sim.users} (at least 1)"] if sim.users < 1 else []
    bad += [f"weeks={sim.weeks} (at least 1)"] if sim.weeks < 1 else []
    for name, value in sim.model_dump().items():
        if name.endswith("_rate") and not 0 <= value <= (0.5 if name == "duplicate_rate" else 1):
            bad.append(f"{name}={value} (a share in [0, {0.5 if name == 'duplicate_rate' else 1}])")
    if bad:
        raise ConfigError(f"Invalid simulate settings: {'; '.join(bad)}.",
                          "Fix them in the config file, the CONF_PROFILE_SIMULATE__* environment or the CLI flags.")


def simulate(lake: Lake, sim: SimulateSettings) -> dict:
    t0 = time.perf_counter()
    check_settings(sim)
    check_taxonomy(load_taxonomy())
    start = sim.start or default_start()
    users = build_users(sim, start)
    rows = dict.fromkeys(RAW_TABLES, 0)
    with bar("simulate", total=sim.weeks * len(RAW_TABLES), unit="table") as progress:
        for week in range(sim.weeks):
            days = [start + timedelta(days=7 * week + d) for d in range(7)]
            for name, (table, day) in week_tables(sim, users, start, week).items():
                rows[name] += write_days(lake, name, table, day, days)
                progress.update()
    lake.write_committed_table(GOLD_DIR, gold_table(users), meta={"seed": sim.seed, "start": start.isoformat(),
                                                                  "weeks": sim.weeks, "users": users.n})
    return {
        "users": sim.users, "weeks": sim.weeks, "start": start.isoformat(), "seed": sim.seed, "rows": rows,
        "gold_users": users.n,
        "intervals": [str(Interval.week_starting(start + timedelta(weeks=w))) for w in range(sim.weeks)],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def simulate_week(lake: Lake, sim: SimulateSettings, week: int) -> dict[str, int]:
    """Rewrite the raw partitions of one week (0-based) of a run with these settings; nothing else is read
    or written. Rows per table."""
    check_settings(sim)
    start = sim.start or default_start()
    days = [start + timedelta(days=7 * week + d) for d in range(7)]
    users = build_users(sim.model_copy(update={"weeks": week + 1}), start)
    return {name: write_days(lake, name, table, day, days)
            for name, (table, day) in week_tables(sim, users, start, week).items()}


def week_tables(sim: SimulateSettings, users: Users, start: date, week: int) -> dict[str, tuple[pa.Table, np.ndarray]]:
    """The five raw tables of one week, each with the day (0-6) of every row, dirt applied."""
    wk = build_week(sim, users, start, week)
    log = E.watch_log(sim, users, wk)
    comment_cols, comment_day, commented_event = E.comments(sim, users, wk, log)
    commented = np.zeros(len(log.uix), bool)
    commented[commented_event] = True
    raw = {
        "profiles": E.profiles(sim, users, wk),
        "watch_events": (E.watch_table(log, users, wk, commented), log.day),
        "searches": E.searches(sim, users, wk),
        "comments": (comment_cols, comment_day),
        "purchases": E.purchases(sim, users, wk),
    }
    return {name: finish(sim, week, name, cols, day) for name, (cols, day) in raw.items()}


def finish(sim: SimulateSettings, week: int, name: str, cols: dict, day: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Nulls (drawn per original row, so a duplicate copies them), duplicates and time order on row indices,
    then every column gathered once. Profiles never lose a user's weekly row: their null user_ids come as
    extra broken copies of rows."""
    rng = rng_for(sim.seed, week, f"dirt:{name}")
    n = len(day)
    missing = {col: rng.random(n) < sim.null_rate for col in ["user_id", *NULLABLE[name]]}
    rate = sim.null_rate if name == "profiles" else sim.duplicate_rate if name in EVENT_TABLES else 0.0
    idx = duplicate_index(rng, n, rate)
    pos = np.argsort(np.asarray(cols["ts"])[idx], kind="stable")  # a copy stays next to its original
    order = idx[pos]
    masks = {col: m[order] for col, m in missing.items()}
    if name == "profiles":
        masks["user_id"] = np.r_[False, idx[1:] == idx[:-1]][pos]
    arrays = []
    for f in RAW_SCHEMAS[name]:
        arr = _column(cols[f.name], order, f.type)
        arrays.append(null_where(arr, masks[f.name]) if f.name in masks else arr)
    return pa.Table.from_arrays(arrays, schema=RAW_SCHEMAS[name]), np.asarray(day)[order]


def _column(col: Ref | pa.Array | np.ndarray, order: np.ndarray, type_: pa.DataType) -> pa.Array:
    if isinstance(col, Ref):
        return col.reorder(order).materialise().cast(type_)
    if isinstance(col, pa.Array):
        return col.take(pa.array(order)).cast(type_)
    return pa.array(np.asarray(col)[order], type_)


def write_days(lake: Lake, name: str, table: pa.Table, day: np.ndarray, days: list[date]) -> int:
    """One file per day (an empty day still gets its file, so every partition of the week exists)."""
    bounds = np.searchsorted(day, np.arange(8))
    for d, when in enumerate(days):
        lake.write_partition(name, when, table.slice(bounds[d], bounds[d + 1] - bounds[d]))
    return table.num_rows


def gold_table(users: Users) -> pa.Table:
    """Long form: one row per (user, attribute); single attributes one label, interests 1-3 (sorted)."""
    n = users.n
    names = list(SIM_CLASSES)
    labels = []
    for attr in names:
        if attr == "interests":
            order = np.argsort(SIM_CLASSES[attr])  # alphabetical, as Taxonomy.check_label normalises
            flags = users.lat.interests[:, order]
            values = pa.array(np.array(SIM_CLASSES[attr])[order]).take(pa.array(np.nonzero(flags)[1]))
            offsets = np.concatenate([[0], np.cumsum(flags.sum(1))]).astype(np.int32)
            labels.append(pa.ListArray.from_arrays(pa.array(offsets), values))
        else:
            values = pa.array(SIM_CLASSES[attr]).take(pa.array(users.lat.single[attr]))
            labels.append(pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), values))
    # Interleave attribute-major columns into user-major rows.
    row = (np.arange(n)[:, None] + n * np.arange(len(names))[None, :]).ravel()
    label = pa.concat_arrays(labels).take(pa.array(row))
    user = users.user_id.take(pa.array(np.repeat(np.arange(n), len(names))))
    attribute = pa.array(np.tile(names, n))
    return pa.Table.from_arrays([user, attribute, label], schema=GOLD_SCHEMA)
