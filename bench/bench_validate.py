"""Validation of ~1M watch events: `validate_interval` (GX 1.x suites + Arrow split + outputs) against a plain
pandas baseline that reads the same partitions, applies the same checks, splits and writes the same files.

Run: `python -m bench.bench_validate`. Medians over `repeats`; the ratio is ours / baseline, measured in the
same run. A breakdown of one run shows where the time goes (read, GX, Arrow split, outputs).

`suites` measures the GX part alone, in rows per second on one core (Arrow's thread pool is set to one
thread for it, so nothing runs on a second core; rows per wall second and per CPU second, since the box is
shared): ours (`_judge` from the Arrow table: text encoding, row hashes and row key, the pandas frame, both
suites' expectations validated as one GX graph with configurations built once), the previous way
(`to_pandas()` + one `Batch.validate` per suite, GX's whole-row duplicate check) and plain GX (one
`to_pandas()` frame, one suite holding the same number of expectations with GX's whole-row duplicate check,
one `Batch.validate`, context and batch definition made outside the timing; and GX's own speed with 8
expectations), all on the same tables in the same run.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from conf_profile.config import Settings, row_floor
from conf_profile.data import validate as v
from conf_profile.data.extract import read_raw
from conf_profile.data.validation import checks as ck
from conf_profile.intervals import Interval
from conf_profile.schema import RAW_SCHEMAS, RAW_TABLES
from conf_profile.simulate.banks import VIDEO_CATEGORIES
from conf_profile.storage import Lake

IV = Interval.parse("2026-11-16..2026-11-23")
SMALL_ROWS = 2_000  # per day, for the four other tables


# ---- synthetic lake ---------------------------------------------------------------------------------------
def _prefixed(prefix: str, ints: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(ints).cast(pa.string()), "")


def watch_day(day, n: int, rng: np.random.Generator) -> pa.Table:
    """One day of watch events with the usual dirt: ~0.2 % null users, ~0.1 % negative watch time,
    ~0.5 % over-long titles, ~0.5 % unknown categories, ~1 % exact duplicates."""
    base = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    ts = pa.array(np.datetime64(base.replace(tzinfo=None), "us") + rng.integers(0, 86_400_000_000, n)
                  .astype("timedelta64[us]")).cast(pa.timestamp("us", tz="UTC"))
    users = _prefixed("u", rng.integers(0, 10_000, n))
    users = pc.if_else(pa.array(rng.random(n) < 0.002), pa.scalar(None, pa.string()), users)
    titles = _prefixed("video title ", rng.integers(0, 50_000, n))
    titles = pc.if_else(pa.array(rng.random(n) < 0.005), "x" * 2100, titles)
    cats = pa.array(np.array(VIDEO_CATEGORIES)[rng.integers(0, len(VIDEO_CATEGORIES), n)])
    cats = pc.if_else(pa.array(rng.random(n) < 0.005), "crypto", cats)
    video_s = rng.uniform(10, 1200, n)
    watch = video_s * rng.random(n)
    watch[rng.random(n) < 0.001] = -1.0
    t = pa.table({
        "user_id": users, "ts": ts, "video_id": _prefixed("v", rng.integers(0, 50_000, n)), "video_title": titles,
        "video_category": cats, "creator_id": _prefixed("c", rng.integers(0, 2_000, n)),
        "watch_seconds": watch, "video_seconds": video_s, "liked": rng.random(n) < 0.1,
        "shared": rng.random(n) < 0.02, "commented": rng.random(n) < 0.03,
    }).cast(RAW_SCHEMAS["watch_events"])
    return pa.concat_tables([t, t.take(rng.integers(0, n, n // 100))])


def small_day(name: str, day, n: int, rng: np.random.Generator) -> pa.Table:
    """A clean day of one of the other tables (only their row floors matter here)."""
    base = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    cols: dict[str, Any] = {}
    for f in RAW_SCHEMAS[name]:
        if pa.types.is_timestamp(f.type):
            cols[f.name] = [base + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400, n)]
        elif f.name == "item_category":
            cols[f.name] = ["books"] * n
        elif pa.types.is_string(f.type):
            cols[f.name] = _prefixed(f"{f.name}-{day}-", np.arange(n))
        elif pa.types.is_integer(f.type):
            cols[f.name] = rng.integers(1950, 2010, n)
        else:
            cols[f.name] = rng.uniform(1, 100, n)
    return pa.table(cols).cast(RAW_SCHEMAS[name])


def build_lake(root: str, rows: int = 1_000_000, seed: int = 0) -> Lake:
    lake, rng = Lake.open(root), np.random.default_rng(seed)
    per_day = rows // 7
    for day in IV.days():
        lake.write_partition("watch_events", day, watch_day(day, per_day, rng))
        for name in RAW_TABLES:
            if name != "watch_events":
                lake.write_partition(name, day, small_day(name, day, SMALL_ROWS, rng))
    return lake


# ---- baseline: plain pandas, same reads, same checks, same outputs -------------------------------------------------
def pandas_baseline(lake: Lake, settings: Settings) -> dict[str, int]:
    vs, lo, hi = settings.validation, *ck.ts_bounds(IV, settings.validation.ts_skew_hours)
    kept_rows = {}
    for name in RAW_TABLES:
        dset = lake.dataset(lake.raw_dir(name), schema=RAW_SCHEMAS[name].append(pa.field("dt", pa.string())))
        df = dset.to_table(filter=ds.field("dt").isin([d.isoformat() for d in IV.days()])).to_pandas()
        bad = pd.DataFrame({"user_id_null": df["user_id"].isna(), "ts_null": df["ts"].isna(),
                            "ts_outside": (df["ts"] < lo) | (df["ts"] >= hi)})
        bad["user_id_blank"] = df["user_id"].str.fullmatch(r"\s*").fillna(False).astype(bool)
        for col, bound, strict, required in ck.NUMERIC_RANGES.get(name, []):
            bad[col] = (df[col] <= bound) if strict else (df[col] < bound)
            bad[col + "_inf"] = np.isinf(df[col])
            if required:
                bad[col + "_null"] = df[col].isna()
        bad["duplicate"] = df.drop(columns="dt").duplicated()
        spec = settings.source.tables[name]
        for col in spec.text_columns:
            bad[col + "_long"] = df[col].str.len() > vs.max_text_chars
        for col in spec.category_columns:
            vocab = vs.vocabularies.get(f"{name}.{col}")
            if vocab is not None:
                bad[col + "_unknown"] = df[col].notna() & ~df[col].isin(vocab)
        any_bad = bad.any(axis=1)
        share = bad.mean()  # the pass/fail decision: any critical share above tolerance
        _ = bool((share[["user_id_null", "ts_null", "ts_outside"]] > vs.critical_max_bad_fraction).any())
        quarantined = df[any_bad].assign(reason=bad[any_bad].idxmax(axis=1))
        base = Lake.run_dir(IV, "baseline", name)
        lake.write_table(f"{base}/quarantine.parquet", pa.Table.from_pandas(quarantined, preserve_index=False))
        lake.write_table(f"{base}/clean.parquet", pa.Table.from_pandas(df[~any_bad], preserve_index=False))
        kept_rows[name] = int((~any_bad).sum())
    return kept_rows


# ---- measurement -------------------------------------------------------------------------------------------------
def breakdown(lake: Lake, settings: Settings) -> dict[str, float]:
    """One run of watch_events split into its parts (GX already imported)."""
    gx, ctx = v._gx_context()
    vs = settings.validation
    t0 = time.perf_counter()
    read = read_raw(lake, "watch_events", IV)
    t1 = time.perf_counter()
    checks = ck.row_checks("watch_events", IV, vs)
    _, encoded, row_key = v._judge(gx, ctx, "watch_events", read.table, checks, vs,
                                   RAW_SCHEMAS["watch_events"].names, row_floor(settings, "watch_events"), False)
    t2 = time.perf_counter()
    masks = {c.reason: ck.mask(c, read.table, encoded, row_key) for c in checks if not c.keep}  # as validate
    v.split_rows(read.table, masks)
    t3 = time.perf_counter()
    return {"rows": read.table.num_rows, "read_s": round(t1 - t0, 3), "gx_judge_s": round(t2 - t1, 3),
            "arrow_masks_split_s": round(t3 - t2, 3)}


def _suite_of(gx: Any, name: str, checks: list[ck.RowCheck], settings: Settings) -> list[Any]:
    """The table's expectations the plain way: on a plain `to_pandas()` frame (no row key column), so the
    duplicate rule is GX's own whole-row check, `ExpectCompoundColumnsToBeUnique` over every column."""
    vs, e = settings.validation, gx.expectations
    columns, row_count = ck.table_expectations(gx, name, row_floor(settings, name))
    columns = e.ExpectTableColumnsToMatchSet(column_set=[c for c in columns.column_set if c != ck.ROW_KEY],
                                             exact_match=True, meta=columns.meta)

    def plain(c: ck.RowCheck) -> Any:
        if c.kind != "unique":
            return ck.expectation(gx, c, vs.critical_max_bad_fraction)
        return e.ExpectCompoundColumnsToBeUnique(column_list=list(c.columns),
                                                 meta={"check": c.reason, "critical": c.critical})
    return [columns, row_count, *(plain(c) for c in checks)]


def _fresh_context() -> Any:
    """A new ephemeral GX context (ours is one per process, `v._gx_context`)."""
    return v._gx_context.__wrapped__()[1]


def suites(lake: Lake, settings: Settings, repeats: int = 3) -> dict[str, Any]:
    """Rows/s of the GX suites: ours, the previous way, plain GX on one dataframe (same expectation count)."""
    gx, _ = v._gx_context()
    tables = {n: read_raw(lake, n, IV).table for n in RAW_TABLES}
    checks = {n: ck.row_checks(n, IV, settings.validation) for n in RAW_TABLES}
    rows = sum(t.num_rows for t in tables.values())
    n_exp = sum(len(_suite_of(gx, n, checks[n], settings)) for n in RAW_TABLES)

    def ours() -> None:  # from the Arrow table: text encoding, row hashes and key, pandas frame, GX
        _, ctx = v._gx_context()
        for n, t in tables.items():
            v._judge(gx, ctx, n, t, checks[n], settings.validation, RAW_SCHEMAS[n].names, row_floor(settings, n),
                     False)

    def previous() -> None:  # plain frames, GX's whole-row duplicate check, one validation per suite
        ctx = _fresh_context()
        for n, t in tables.items():
            crit, warn = gx.ExpectationSuite(name=f"{n}.critical"), gx.ExpectationSuite(name=f"{n}.warning")
            for e in _suite_of(gx, n, checks[n], settings):
                (crit if e.meta["critical"] else warn).add_expectation(e)
            batch = ctx.data_sources.get("raw").add_dataframe_asset(n).add_batch_definition_whole_dataframe(
                "interval").get_batch(batch_parameters={"dataframe": t.to_pandas()})
            [batch.validate(ctx.suites.add(s), result_format="SUMMARY") for s in (crit, warn)]

    big = max(tables, key=lambda n: tables[n].num_rows)
    one_rows = tables[big].num_rows
    cycle = _suite_of(gx, big, checks[big], settings)

    plain_ctx = _fresh_context()  # set up outside the timing: GX's own speed is its validation
    plain_def = plain_ctx.data_sources.get("raw").add_dataframe_asset("one").add_batch_definition_whole_dataframe(
        "all")

    def plain_gx(count: int = n_exp) -> None:
        suite = gx.ExpectationSuite(name="one")
        for i in range(count):  # by default the same number of expectations as ours, all on the one frame
            e = cycle[i % len(cycle)]
            suite.add_expectation(type(e)(**{**e.configuration.kwargs, "meta": {"i": i}}))
        batch = plain_def.get_batch(batch_parameters={"dataframe": tables[big].to_pandas()})
        batch.validate(suite, result_format="SUMMARY")

    threads = pa.cpu_count()
    pa.set_cpu_count(1)  # one core: the rows/s figures are per core
    times: dict[str, list[float]] = {"ours": [], "previous": [], "plain_gx": [], "plain_gx_8": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    for _ in range(repeats):
        for key, fn in (("ours", ours), ("previous", previous), ("plain_gx", plain_gx),
                        ("plain_gx_8", lambda: plain_gx(8))):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    pa.set_cpu_count(threads)
    med = {k: statistics.median(x) for k, x in times.items()}
    mcpu = {k: statistics.median(x) for k, x in cpu.items()}
    return {
        "rows_all_tables": rows, "expectations": n_exp, "plain_gx_frame": f"{big} ({one_rows:,} rows)",
        "ours_s": round(med["ours"], 3), "previous_s": round(med["previous"], 3),
        "plain_gx_s": round(med["plain_gx"], 3),
        "ours_mrows_per_s": round(rows / med["ours"] / 1e6, 2),
        "previous_mrows_per_s": round(rows / med["previous"] / 1e6, 2),
        "plain_gx_mrows_per_s": round(one_rows / med["plain_gx"] / 1e6, 2),
        "ratio_ours_over_plain_gx_rows_per_s": round(rows / med["ours"] / (one_rows / med["plain_gx"]), 2),
        "speedup_over_previous": round(med["previous"] / med["ours"], 2),
        # per core: rows per CPU second of this (single-threaded) process; the box is shared, so wall time
        # measures the neighbours too
        "ours_cpu_s": round(mcpu["ours"], 3), "plain_gx_cpu_s": round(mcpu["plain_gx"], 3),
        "ours_mrows_per_cpu_s": round(rows / mcpu["ours"] / 1e6, 2),
        "plain_gx_mrows_per_cpu_s": round(one_rows / mcpu["plain_gx"] / 1e6, 2),
        "ratio_ours_over_plain_gx_rows_per_cpu_s": round(rows / mcpu["ours"] / (one_rows / mcpu["plain_gx"]), 2),
        # GX's own speed on a small suite (8 expectations, the first of the big table's): the "~1M rows/s" figure
        "plain_gx_8_s": round(med["plain_gx_8"], 3), "plain_gx_8_cpu_s": round(mcpu["plain_gx_8"], 3),
        "plain_gx_8_mrows_per_cpu_s": round(one_rows / mcpu["plain_gx_8"] / 1e6, 2),
    }


def bench(repeats: int = 3, rows: int = 1_000_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        lake = build_lake(tmp, rows)
        build_s = time.perf_counter() - t0
        settings = Settings(lake=lake.uri)
        t0 = time.perf_counter()
        import great_expectations  # noqa: F401 - measured once: every process pays it on first validate

        import_s = time.perf_counter() - t0
        ours, base = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            summary = v.validate_interval(lake, IV, settings)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kept = pandas_baseline(lake, settings)
            base.append(time.perf_counter() - t0)
        if kept["watch_events"] != summary["tables"]["watch_events"]["rows_kept"]:
            raise RuntimeError(f"baseline kept {kept['watch_events']}, validate kept "
                               f"{summary['tables']['watch_events']['rows_kept']}: not the same checks")
        parts = breakdown(lake, settings)
        gx_suites = suites(lake, settings, repeats)
    ours_m, base_m = statistics.median(ours), statistics.median(base)
    return {
        "rows_watch_events": summary["tables"]["watch_events"]["rows_in"],
        "rows_quarantined_watch_events": summary["tables"]["watch_events"]["rows_quarantined"],
        "repeats": repeats, "validate_median_s": round(ours_m, 3), "pandas_baseline_median_s": round(base_m, 3),
        "ratio_validate_over_baseline": round(ours_m / base_m, 2), "gx_import_s": round(import_s, 2),
        "build_lake_s": round(build_s, 2), "watch_events_breakdown": parts, "suites": gx_suites,
    }


if __name__ == "__main__":
    print(json.dumps(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=2))
