"""The ProfileBench-style simulator: layout and schemas, gold kept apart, determinism, dirt rates measured on
the written tables, class balance, drift/churn, learnability bands, and the CLI entry point."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conf_profile.config import SimulateSettings
from conf_profile.errors import ConfigError
from conf_profile.intervals import Interval
from conf_profile.schema import GOLD_SCHEMA, RAW_SCHEMAS, RAW_TABLES
from conf_profile.simulate import default_start, simulate, simulate_week
from conf_profile.simulate.population import SIM_CLASSES, check_taxonomy, draw_latents
from conf_profile.simulate.users import build_users
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy

START = date(2026, 11, 2)  # a Monday
SMALL = dict(users=300, weeks=1, start=START)
# Elevated dirt so each rate is measured on enough rows; tolerances below are binomial.
DIRTY = dict(pii_rate=0.1, injection_rate=0.08, duplicate_rate=0.05, null_rate=0.02, out_of_range_rate=0.02,
             long_text_rate=0.05, emoji_rate=0.1, non_ascii_rate=0.05, comments_per_user=10.0)
PII = re.compile(r"[\w.+-]+@[\w-]+\.[a-z]{2,}|\d{3}[ -]?\d{4}[ -]?\d{4}|\d{15,}")
INJECTION = re.compile(r"instruction", re.I)


def _lake(tmp_path, name: str, **settings) -> tuple[Lake, dict]:
    lake = Lake.open(str(tmp_path / name))
    return lake, simulate(lake, SimulateSettings(**{**SMALL, **settings}))


def _raw(lake: Lake, table: str):
    return lake.dataset(f"raw/{table}").to_table()


def _digests(lake: Lake, under: str) -> dict[str, str]:
    return {f: hashlib.sha256(lake.read_bytes(f)).hexdigest() for f in lake.list_files(under, ".parquet")}


def _close(share: float, rate: float, n: int) -> bool:
    return abs(share - rate) <= 4 * np.sqrt(rate * (1 - rate) / n) + 0.003


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    return _lake(tmp_path_factory.mktemp("sim"), "dirty", **DIRTY)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    zero = {k: 0.0 for k in DIRTY if k.endswith("_rate")}
    return _lake(tmp_path_factory.mktemp("sim"), "clean", **zero)


def test_summary_and_one_file_per_table_and_day_with_raw_schema(dirty):
    lake, summary = dirty
    assert summary["intervals"] == ["2026-11-02..2026-11-09"] and summary["start"] == "2026-11-02"
    assert summary["gold_users"] >= summary["users"] == 300
    days = [d.isoformat() for d in Interval.parse(summary["intervals"][0]).days()]
    for table in RAW_TABLES:
        files = lake.list_files(f"raw/{table}", ".parquet")
        assert files == [f"raw/{table}/dt={d}/part-0.parquet" for d in days]
        for f, d in zip(files, days, strict=True):
            t = pq.read_table(lake.path(f))
            assert t.schema.equals(RAW_SCHEMAS[table], check_metadata=False), (f, t.schema)
            ts = t["ts"].cast("int64").to_numpy()
            lo = int(np.datetime64(d, "us").astype(np.int64))
            assert ((ts >= lo) & (ts < lo + 86_400_000_000)).all(), f"{f}: ts outside its day"
        assert summary["rows"][table] == _raw(lake, table).num_rows
    assert summary["rows"]["watch_events"] > 300 * 40  # ~100 per active user on average


def test_gold_is_apart_complete_and_valid(dirty):
    lake, summary = dirty
    assert not any("gold" in f for f in lake.list_files("raw"))
    gold_like = {"label", "attribute", *SIM_CLASSES}
    for table in RAW_TABLES:
        assert not gold_like & set(_raw(lake, table).schema.names)
    gold = lake.read_committed("gold/labels")
    assert gold.schema.equals(GOLD_SCHEMA, check_metadata=False)
    df = gold.to_pandas()
    assert df.groupby("user_id").attribute.apply(list).map(lambda a: a == list(SIM_CLASSES)).all()
    assert df.user_id.nunique() == summary["gold_users"]
    taxonomy = load_taxonomy()
    for attr in taxonomy.attributes:
        labels = df[df.attribute == attr.name].label.map(list)
        sizes = labels.map(len)
        assert (sizes.between(1, 3) if attr.is_multi else sizes.eq(1)).all(), attr.name
        assert labels.map(lambda ls, a=attr: set(ls) <= set(a.classes)).all(), attr.name
    in_raw = set()
    for table in RAW_TABLES:
        in_raw |= set(pc.unique(_raw(lake, table)["user_id"]).drop_null().to_pylist())
    assert in_raw <= set(df.user_id)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, _ = _lake(tmp_path, "a", users=120)
    b, _ = _lake(tmp_path, "b", users=120)
    c, _ = _lake(tmp_path, "c", users=120, seed=8)
    da, db, dc = _digests(a, "raw"), _digests(b, "raw"), _digests(c, "raw")
    assert da == db and _digests(a, "gold") == _digests(b, "gold")
    assert da.keys() == dc.keys() and all(da[k] != dc[k] for k in da if "watch_events" in k)


def test_a_week_does_not_depend_on_later_weeks(tmp_path):
    one, _ = _lake(tmp_path, "one", users=120, weeks=1)
    two, summary = _lake(tmp_path, "two", users=120, weeks=2)
    first = _digests(one, "raw")
    assert {k: v for k, v in _digests(two, "raw").items() if k in first} == first
    assert len(summary["intervals"]) == 2 and summary["gold_users"] > 120  # newcomers in week 2
    alone = Lake.open(str(tmp_path / "alone"))
    rows = simulate_week(alone, SimulateSettings(**{**SMALL, "users": 120, "weeks": 2}), 1)
    second = {k: v for k, v in _digests(two, "raw").items() if k not in first}
    assert _digests(alone, "raw") == second and sum(rows.values()) > 0


def test_dirt_rates_are_honoured(dirty):
    lake, _ = dirty
    tables = {t: _raw(lake, t).drop_columns(["dt"]).to_pandas() for t in RAW_TABLES}
    for t in ("watch_events", "searches", "comments", "purchases"):
        df = tables[t]
        assert _close(df.duplicated().mean(), DIRTY["duplicate_rate"], len(df)), t
    for t, df in tables.items():
        assert _close(df.user_id.isna().mean(), DIRTY["null_rate"], len(df)), t
    watch, buys = tables["watch_events"], tables["purchases"]
    assert _close((watch.watch_seconds < 0).mean(), DIRTY["out_of_range_rate"], len(watch))
    assert _close((buys.price < 0).mean(), DIRTY["out_of_range_rate"], len(buys))
    text = tables["comments"].drop_duplicates().text.dropna()
    n = len(text)
    assert n > 1500
    assert _close(text.str.contains(INJECTION).mean(), DIRTY["injection_rate"], n)
    assert _close(text.str.contains(PII).mean(), DIRTY["pii_rate"], n)
    assert _close((text.str.len() > 2000).mean(), DIRTY["long_text_rate"], n)
    non_ascii = 1 - (1 - DIRTY["emoji_rate"]) * (1 - DIRTY["non_ascii_rate"])
    assert _close(text.map(lambda s: not s.isascii()).mean(), non_ascii, n)
    bios = tables["profiles"].bio.fillna("")
    assert _close(bios.str.contains(PII).mean(), DIRTY["pii_rate"], len(bios))
    many = build_users(SimulateSettings(**{**SMALL, **DIRTY, "users": 6000}), START).bio.to_pandas().fillna("")
    assert _close(many.str.contains(PII).mean(), DIRTY["pii_rate"], len(many))  # per user, tighter
    assert _close((many.str.len() > 2000).mean(), DIRTY["long_text_rate"], len(many))


def test_zero_rates_mean_no_dirt(clean):
    lake, _ = clean
    for t in RAW_TABLES:
        df = _raw(lake, t).drop_columns(["dt"]).to_pandas()
        assert df.user_id.notna().all(), t
        if t != "profiles":
            assert not df.duplicated().any(), t
    assert (_raw(lake, "watch_events")["watch_seconds"].to_numpy() >= 0).all()
    assert (_raw(lake, "purchases")["price"].to_numpy() >= 0).all()
    text = _raw(lake, "comments")["text"].to_pandas()
    assert not text.str.contains(INJECTION).any() and not text.str.contains(PII).any()
    assert text.str.len().max() < 2000 and text.map(str.isascii).all()


def test_class_balance_and_dependencies():
    lat = draw_latents(40_000, np.random.default_rng(0))
    s = lat.single
    for attr, classes in SIM_CLASSES.items():
        share = lat.interests.mean(0) if attr == "interests" else np.bincount(s[attr], minlength=len(classes)) / lat.n
        assert share.min() >= 0.02 and share.max() <= 0.6, (attr, share.round(3))
    occ, age, life = SIM_CLASSES["occupation"], SIM_CLASSES["age_group"], SIM_CLASSES["life_stage"]
    retired = s["occupation"] == occ.index("retired")
    assert (s["age_group"][retired] == age.index("55_plus")).mean() > 0.6
    assert (s["occupation"][s["age_group"] == age.index("under_18")] == occ.index("student")).mean() > 0.9
    parents = np.isin(s["life_stage"], [life.index("parent_young_children"), life.index("parent_school_children")])
    parenting = lat.interests[:, SIM_CLASSES["interests"].index("parenting")]
    assert parenting[parents].mean() > 3 * parenting[~parents].mean()
    tier, cons = s["city_tier"], s["consumption_level"]
    assert (cons[tier == 0] == 2).mean() > 2 * (cons[tier == 3] == 2).mean()
    assert (s["education"][s["occupation"] == occ.index("tech_professional")] >= 2).mean() > 0.6


def test_written_gold_has_every_class(dirty):
    lake, _ = dirty
    df = lake.read_committed("gold/labels").to_pandas().explode("label")
    for attr, classes in SIM_CLASSES.items():
        share = df[df.attribute == attr].label.value_counts(normalize=True).reindex(classes).fillna(0)
        assert (share >= 0.01).all(), (attr, share.round(3).to_dict())


def test_profiles_cover_active_users_and_weeks_drift_and_churn(tmp_path):
    lake, summary = _lake(tmp_path, "drift", users=400, weeks=2, churn_rate=0.2, new_user_rate=0.2)
    weeks = [Interval.parse(i) for i in summary["intervals"]]
    active, mixes = [], []
    for iv in weeks:
        days = ds.field("dt").isin([d.isoformat() for d in iv.days()])
        prof = set(lake.dataset("raw/profiles").to_table(filter=days)["user_id"].drop_null().to_pylist())
        watch = lake.dataset("raw/watch_events").to_table(filter=days)
        users = set()
        for t in ("watch_events", "searches", "comments", "purchases"):
            users |= set(lake.dataset(f"raw/{t}").to_table(filter=days)["user_id"].drop_null().to_pylist())
        assert users <= prof  # every active user has a profile row that week
        per_day = lake.dataset("raw/profiles").to_table(filter=days)["dt"].to_pandas().value_counts()
        assert len(per_day) == 7 and per_day.min() > 0.5 * per_day.mean()  # daily snapshots, spread out
        active.append(prof)
        cats = watch["video_category"].drop_null().to_pandas().value_counts(normalize=True)
        mixes.append(cats)
    assert len(active[0] - active[1]) > 0.1 * len(active[0])  # churn
    assert len(active[1] - active[0]) > 0.1 * len(active[0])  # arrivals
    drift = (mixes[0] - mixes[1]).abs().sum()
    assert drift > 0.02
    titles = [set(lake.dataset("raw/watch_events").to_table(filter=ds.field("dt").isin(
        [d.isoformat() for d in iv.days()]))["video_id"].drop_null().to_pylist()) for iv in weeks]
    assert not titles[0] & titles[1]  # each week has its own catalogue


def test_evidence_is_learnable_but_not_trivial(tmp_path):
    from bench.simulator_probe import probe

    lake, summary = _lake(tmp_path, "probe", users=600)
    f1 = probe(lake, Interval.parse(summary["intervals"][0]))
    for attr, classes in SIM_CLASSES.items():
        guess = 25 if attr == "interests" else 100 / len(classes)  # about what guessing without evidence gets
        assert guess + 5 < f1[attr] < 85, (attr, f1)  # learnable, but a keyword list does not solve it
    assert 35 < f1["mean"] < 70, f1


def test_default_start_and_bad_settings(tmp_path):
    assert default_start(date(2026, 11, 19)) == date(2026, 10, 19)
    assert default_start(date(2026, 11, 16)).weekday() == 0
    with pytest.raises(ConfigError, match="users"):
        simulate(Lake.open(str(tmp_path / "never")), SimulateSettings(users=0))
    assert not Lake.open(str(tmp_path / "never")).list_files("")
    taxonomy = load_taxonomy().model_copy(deep=True)
    taxonomy.attributes[0].classes.append("nonbinary")
    with pytest.raises(ConfigError, match="gender"):
        check_taxonomy(taxonomy)


def test_cli_simulate_json(tmp_path, capsys):
    from conf_profile.cli import main

    code = main(["simulate", "--users", "60", "--weeks", "1", "--start", "2026-11-02", "--seed", "3",
                 "--lake", str(tmp_path / "cli"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] is True
    assert {"users", "weeks", "start", "seed", "rows", "gold_users", "intervals"} <= out.keys()
    assert out["users"] == 60 and out["seed"] == 3 and set(out["rows"]) == set(RAW_TABLES)
    assert Interval.parse(out["intervals"][0]) == Interval.week_starting(date(2026, 11, 2))
