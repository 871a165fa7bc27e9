"""Validation: GX suites judge, Arrow masks split rows; every row lands in exactly one place; bad input fails
with a readable error after the report and quarantine are written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.cli import main
from conf_profile.config import Settings, ValidationSettings
from conf_profile.data.validate import format_summary, split_rows, validate_interval
from conf_profile.data.validation.checks import duplicate_mask
from conf_profile.errors import ValidationFailed
from conf_profile.intervals import Interval
from conf_profile.schema import RAW_SCHEMAS
from conf_profile.simulate.banks import ITEM_CATEGORIES, VIDEO_CATEGORIES
from conf_profile.storage import Lake

IV = Interval.parse("2026-11-16..2026-11-23")  # a Monday-aligned week
N = 30  # rows per table and day: 210 per table, so 2 bad rows are < 1 % and 3 are > 1 %
ROWS = 7 * N


def day_table(name: str, day, n: int = N) -> pa.Table:
    """n valid, distinct rows of a raw table for one day."""
    schema = RAW_SCHEMAS[name]
    i = np.arange(n)
    base = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    tag = day.isoformat()
    values = {
        "user_id": [f"u{k % 17}" for k in i],
        "ts": [base + timedelta(minutes=int(k) * 40) for k in i],
        "video_category": [VIDEO_CATEGORIES[k % len(VIDEO_CATEGORIES)] for k in i],
        "item_category": [ITEM_CATEGORIES[k % len(ITEM_CATEGORIES)] for k in i],
        "registered_at": [base - timedelta(days=400)] * n,
        "declared_birth_year": [1980 + int(k % 30) for k in i],
        "watch_seconds": (i * 3.0).tolist(),
        "video_seconds": (i * 3.0 + 10).tolist(),
        "price": (i * 1.5).tolist(),
        "liked": (i % 2 == 0).tolist(), "shared": (i % 3 == 0).tolist(), "commented": (i % 5 == 0).tolist(),
    }
    cols = {f.name: values.get(f.name, [f"{f.name} {tag} #{k}" for k in i]) for f in schema}
    return pa.table(cols, schema=schema)


def write_week(lake: Lake, skip: tuple[str, ...] = ()) -> None:
    for name in RAW_SCHEMAS:
        for day in IV.days():
            if (name, day.isoformat()) not in skip:
                lake.write_partition(name, day, day_table(name, day))


def put(table: pa.Table, column: str, rows: list[int], value) -> pa.Table:
    """Set `column` to `value` on the given row positions (the test's way to plant bad data)."""
    values = table.column(column).to_pylist()
    for r in rows:
        values[r] = value
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, table.schema.field(idx), pa.array(values, table.schema.field(idx).type))


def settings(lake: Lake, **validation) -> Settings:
    s = Settings(lake=lake.uri)
    s.validation = ValidationSettings(**validation)
    return s


def run(lake: Lake, **validation) -> dict:
    return validate_interval(lake, IV, settings(lake, **validation))


def fail(lake: Lake, **validation) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        run(lake, **validation)
    return info.value


def quarantine(lake: Lake, table: str) -> pa.Table:
    return lake.read_table(Lake.run_dir(IV, "validation", "quarantine", f"{table}.parquet"))


def report(lake: Lake) -> dict:
    return lake.read_json(Lake.run_dir(IV, "validation", "report.json"))


def assert_counts_add_up(summary: dict) -> None:
    for name, t in summary["tables"].items():
        assert t["rows_in"] == t["rows_kept"] + t["rows_quarantined"], name


@pytest.fixture
def lake(tmp_path) -> Lake:
    lk = Lake.open(str(tmp_path / "lake"))
    write_week(lk)
    return lk


# ---- a clean week ----------------------------------------------------------------------------------------------
def test_clean_week_passes_and_writes_every_output(lake):
    s = run(lake)
    assert s["success"] is True and s["failed_expectations"] == []
    assert s["interval"] == str(IV)
    for name in RAW_SCHEMAS:
        assert s["tables"][name] == {"rows_in": ROWS, "rows_kept": ROWS, "rows_quarantined": 0, "files_excluded": []}
        clean = lake.read_committed(Lake.run_dir(IV, "clean", name))
        assert clean.num_rows == ROWS and clean.column_names == [*RAW_SCHEMAS[name].names, "dt"]
        assert quarantine(lake, name).num_rows == 0
    rep = report(lake)
    assert rep["success"] is True
    exps = rep["tables"]["watch_events"]["expectations"]
    assert {e["suite"] for e in exps} == {"watch_events.critical", "watch_events.warning"}
    assert all(e["success"] for e in exps)
    assert {e["expectation"] for e in exps} >= {"expect_column_values_to_not_be_null", "expect_table_row_count_to_be_between",
                                                "expect_column_values_to_be_between", "expect_column_values_to_be_unique"}
    dup = next(e for e in exps if e["check"] == "duplicate")  # GX judged the row key, the report says whole rows
    assert dup["expectation"] == "expect_column_values_to_be_unique" and dup["column"] is None
    html = lake.read_bytes(Lake.run_dir(IV, "validation", "report.html")).decode()
    assert "PASSED" in html and "data_docs/watch_events.critical.html" in html
    page = lake.read_bytes(Lake.run_dir(IV, "validation", "data_docs", "watch_events.critical.html")).decode()
    assert "watch_seconds" in page  # rendered by GX's Data Docs renderer
    assert "PASSED" in format_summary(s)


# ---- critical: schema -------------------------------------------------------------------------------------------
def test_missing_column_fails_names_the_file_and_keeps_good_rows(lake):
    day = IV.days()[2]
    lake.write_partition("watch_events", day, day_table("watch_events", day).drop_columns(["video_id"]))
    err = fail(lake)
    path = f"raw/watch_events/dt={day}/part-0.parquet"
    assert "watch_events" in err.message and path in err.message and "video_id" in err.message
    assert err.exit_code == 3 and "rerun" in err.fix
    t = err.report["tables"]["watch_events"]
    assert t["files_excluded"] == [{"path": path, "error": "missing required column 'video_id'", "kind": "schema"}]
    assert t["rows_in"] == ROWS - N == t["rows_kept"] + t["rows_quarantined"]
    assert report(lake)["success"] is False
    assert not lake.exists(Lake.run_dir(IV, "clean"))  # no clean data on a failed run
    assert quarantine(lake, "watch_events").num_rows == 0  # written even though the run failed


def test_wrong_type_fails_but_a_safe_widening_is_cast(lake):
    day = IV.days()[1]
    good = day_table("watch_events", day)
    as_int = good.set_column(6, "watch_seconds", pc.cast(good["watch_seconds"], pa.int64()))
    lake.write_partition("watch_events", day, as_int)
    s = run(lake)
    assert s["tables"]["watch_events"]["rows_kept"] == ROWS
    assert any("cast watch_seconds int64->double in 1 file(s)" in w for w in s["warnings"])

    as_text = good.set_column(6, "watch_seconds", pc.cast(good["watch_seconds"], pa.string()))
    lake.write_partition("watch_events", day, as_text)
    err = fail(lake)
    assert "watch_seconds" in err.message and "string" in err.message and "drifted" in err.message


# ---- critical: row-level, with tolerance ------------------------------------------------------------------------
def test_few_null_user_ids_are_quarantined_and_the_run_passes(lake):
    day = IV.days()[0]
    lake.write_partition("searches", day, put(day_table("searches", day), "user_id", [3, 7], None))
    s = run(lake)
    assert s["success"] is True
    assert s["tables"]["searches"] == {"rows_in": ROWS, "rows_kept": ROWS - 2, "rows_quarantined": 2,
                                      "files_excluded": []}
    q = quarantine(lake, "searches")
    assert q["reason"].to_pylist() == ["user_id_null", "user_id_null"] and q["user_id"].null_count == 2
    assert "searches: 2 row(s) quarantined (user_id_null)" in s["warnings"]
    clean = lake.read_committed(Lake.run_dir(IV, "clean", "searches"))
    assert clean["user_id"].null_count == 0


def test_null_user_ids_above_tolerance_fail_with_share_and_tolerance(lake):
    day = IV.days()[0]
    lake.write_partition("comments", day, put(day_table("comments", day), "user_id", list(range(6)), None))
    err = fail(lake)
    share = 6 / ROWS
    assert "comments: user_id not null failed for 2.86% of rows (6 rows; tolerance 1%)" in err.message
    f = err.report["failed_expectations"][0]
    assert f["table"] == "comments" and f["column"] == "user_id" and f["tolerance"] == 0.01
    assert f["observed"] == pytest.approx(share, abs=1e-6)
    assert quarantine(lake, "comments").num_rows == 6
    # A looser tolerance lets the same data through; the rows are still quarantined.
    s = run(lake, critical_max_bad_fraction=0.05)
    assert s["success"] and s["tables"]["comments"]["rows_quarantined"] == 6


def test_ts_outside_interval_is_quarantined_within_skew_kept(lake):
    day, last = IV.days()[0], IV.days()[-1]
    t = day_table("purchases", day)
    early = datetime(2026, 11, 15, 23, tzinfo=UTC)  # 1 h before START: inside the 2 h skew
    late = datetime(2026, 11, 25, tzinfo=UTC)  # two days after END
    t = put(put(t, "ts", [0], early), "ts", [1], late)
    lake.write_partition("purchases", day, t)
    edge = put(day_table("purchases", last), "ts", [0], datetime(2026, 11, 23, 2, tzinfo=UTC))  # END + skew: out
    lake.write_partition("purchases", last, edge)
    s = run(lake)
    assert s["tables"]["purchases"]["rows_quarantined"] == 2
    q = quarantine(lake, "purchases")
    assert set(q["ts"].to_pylist()) == {late, datetime(2026, 11, 23, 2, tzinfo=UTC)}
    assert set(q["reason"].to_pylist()) == {"ts_outside_interval"}
    exp = next(e for e in report(lake)["tables"]["purchases"]["expectations"] if e["check"] == "ts_outside_interval")
    assert exp["unexpected_count"] == exp["rows_quarantined"] == 2  # GX agrees with the Arrow mask
    # No skew: the early row is out too, and 3 of 210 rows is above the 1 % tolerance.
    err = fail(lake, ts_skew_hours=0)
    assert "purchases: ts inside 2026-11-16..2026-11-23 (±0h) failed for 1.43% of rows" in err.message


def test_negative_watch_seconds_message_counts_and_gx_agrees_with_masks(lake):
    day = IV.days()[3]
    bad_rows = list(range(N))[:7]
    t = put(day_table("watch_events", day), "watch_seconds", bad_rows, -5.0)
    t = put(t, "user_id", [0], None)  # row 0 fails two checks
    lake.write_partition("watch_events", day, t)
    err = fail(lake)
    assert "watch_events: watch_seconds >= 0 failed for 3.33% of rows (7 rows; tolerance 1%)" in err.message
    assert "critical_max_bad_fraction" in err.fix
    rep = report(lake)
    tab = rep["tables"]["watch_events"]
    assert tab["quarantined_by_reason"] == {"user_id_null": 1, "watch_seconds_negative": 7}
    assert tab["rows_quarantined"] == 7 and tab["rows_in"] == ROWS
    q = quarantine(lake, "watch_events")
    assert sorted(q["reason"].to_pylist()) == ["user_id_null; watch_seconds_negative"] + ["watch_seconds_negative"] * 6
    for e in tab["expectations"]:  # the GX judge and the Arrow splitter count the same rows
        if "rows_quarantined" in e and e["check"] != "duplicate":
            assert e["rows_quarantined"] == e["unexpected_count"], e["check"]


def test_video_seconds_must_be_positive_and_price_non_negative(lake):
    day = IV.days()[4]
    lake.write_partition("watch_events", day, put(day_table("watch_events", day), "video_seconds", [2], 0.0))
    lake.write_partition("purchases", day, put(day_table("purchases", day), "price", [0], 0.0))  # 0 is fine
    s = run(lake)
    assert quarantine(lake, "watch_events")["reason"].to_pylist() == ["video_seconds_not_positive"]
    assert s["tables"]["purchases"]["rows_quarantined"] == 0


# ---- warnings -----------------------------------------------------------------------------------------------------
VOCAB = {"watch_events.video_category": VIDEO_CATEGORIES}


def test_duplicates_and_long_text_quarantine_unknown_categories_warn_and_none_fails(lake):
    day = IV.days()[5]
    t = day_table("watch_events", day)
    t = put(t, "video_title", [1], "x" * 2001)
    t = put(t, "video_category", list(range(10, 30)), "crypto")  # ~10 % unknown: counted and warned, rows kept
    dup = pa.concat_tables([t, t.slice(4, 1), t.slice(4, 1)])
    lake.write_partition("watch_events", day, dup)
    s = run(lake, vocabularies=VOCAB)
    assert s["success"] is True
    t_sum = s["tables"]["watch_events"]
    assert t_sum["rows_in"] == ROWS + 2 and t_sum["rows_quarantined"] == 2 + 1
    rep = report(lake)["tables"]["watch_events"]
    assert rep["quarantined_by_reason"] == {"duplicate": 2, "video_title_too_long": 1}
    clean = lake.read_committed(Lake.run_dir(IV, "clean", "watch_events"))
    assert pc.sum(pc.equal(clean["video_category"], "crypto")).as_py() == 20  # unknown values are kept
    first = t.slice(4, 1).to_pylist()[0]
    assert sum(r == first for r in clean.drop_columns(["dt"]).to_pylist()) == 1  # the first copy is kept
    dup_exp = next(e for e in rep["expectations"] if e["check"] == "duplicate")
    assert dup_exp["success"] is False and dup_exp["unexpected_count"] == 3  # GX counts all copies
    unknown = next(e for e in rep["expectations"] if e["check"] == "video_category_unknown")
    assert unknown["unexpected_count"] == 20 and "rows_quarantined" not in unknown
    assert any("20 row(s) with a video_category value outside its declared vocabulary (kept" in w
               for w in s["warnings"])
    strict = run(lake, vocabularies=VOCAB, unknown_categories="quarantine")
    assert strict["tables"]["watch_events"]["rows_quarantined"] == 2 + 1 + 20
    assert run(lake)["tables"]["watch_events"]["rows_quarantined"] == 3  # no vocabulary declared: not checked


# ---- files and partitions ------------------------------------------------------------------------------------------
def test_corrupt_file_is_excluded_and_named_good_files_kept(lake):
    bad = f"raw/comments/dt={IV.days()[3]}/part-1.parquet"
    lake.write_bytes(bad, b"PAR1 this is not parquet")
    s = run(lake)
    assert s["success"] is True
    excl = s["tables"]["comments"]["files_excluded"]
    assert [e["path"] for e in excl] == [bad] and excl[0]["kind"] == "corrupt" and excl[0]["error"]
    assert s["tables"]["comments"]["rows_kept"] == ROWS
    assert any(bad in w for w in s["warnings"])
    assert report(lake)["tables"]["comments"]["files_excluded"][0]["path"] == bad


def test_empty_and_missing_partitions_are_warnings(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    d_empty, d_missing = IV.days()[1], IV.days()[2]
    write_week(lake, skip=(("searches", d_empty.isoformat()), ("searches", d_missing.isoformat())))
    lake.write_partition("searches", d_empty, RAW_SCHEMAS["searches"].empty_table())
    s = run(lake)
    assert s["success"] is True
    assert f"searches: empty partition(s) for day(s) {d_empty}" in s["warnings"]
    assert f"searches: no partition for day(s) {d_missing}" in s["warnings"]
    assert s["tables"]["searches"]["rows_in"] == 5 * N


def test_all_files_of_a_table_unreadable_is_critical(lake):
    for day in IV.days():
        lake.write_bytes(f"raw/purchases/dt={day}/part-0.parquet", b"garbage")
    err = fail(lake)  # purchases has a row floor of 0, yet nothing readable is never a normal week
    assert "purchases: none of its 7 file(s) in the interval could be read" in err.message
    assert len(err.report["tables"]["purchases"]["files_excluded"]) == 7


def test_row_floor(lake):
    err = fail(lake, min_rows={"watch_events": ROWS + 1})
    assert f"watch_events: row count >= {ROWS + 1} failed ({ROWS} rows)" in err.message


def test_an_interval_without_data_fails_on_the_row_floor_and_says_where_to_look(lake):
    with pytest.raises(ValidationFailed) as info:
        validate_interval(lake, Interval.parse("2027-01-04..2027-01-11"), settings(lake))
    assert "watch_events: row count >= 100 failed (0 rows)" in info.value.message
    assert "--interval" in info.value.fix


def test_partitions_outside_the_interval_are_never_read(lake):
    for day in (IV.start - timedelta(days=1), IV.end):
        lake.write_bytes(f"raw/watch_events/dt={day}/part-0.parquet", b"corrupt, but not this week's")
    lake.write_partition("searches", IV.end, put(day_table("searches", IV.end), "user_id", [0, 1, 2], None))
    s = run(lake)
    assert s["success"] is True and s["tables"]["watch_events"]["files_excluded"] == []
    assert s["tables"]["searches"]["rows_in"] == ROWS


def test_failed_rerun_removes_the_older_clean_tables(lake):
    run(lake)
    assert lake.is_committed(Lake.run_dir(IV, "clean", "profiles"))
    day = IV.days()[0]
    lake.write_partition("profiles", day, put(day_table("profiles", day), "user_id", list(range(10)), None))
    fail(lake)
    assert not lake.exists(Lake.run_dir(IV, "clean"))


def test_split_rows_puts_every_row_in_exactly_one_place():
    t = pa.table({"x": list(range(6))})
    masks = {"a": pa.array([True, False, False, True, False, False]),
             "b": pa.array([False, False, False, True, True, False])}
    kept, q, by = split_rows(t, masks)
    assert kept["x"].to_pylist() == [1, 2, 5] and q["x"].to_pylist() == [0, 3, 4]
    assert q["reason"].to_pylist() == ["a", "a; b", "b"] and by == {"a": 2, "b": 2}


def test_duplicate_mask_keeps_the_first_copy_across_chunks_and_nulls():
    a = pa.table({"s": ["x", None, "y"], "f": [1.0, None, 2.0]})
    b = pa.table({"s": ["y", None, "x"], "f": [2.0, None, 1.5]})
    t = pa.concat_tables([a, b])  # two chunks: a string's code must not depend on its chunk
    assert duplicate_mask(t).to_pylist() == [False, False, False, True, True, False]


# ---- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_failure_is_one_paragraph_and_one_json_object(lake, capsys):
    day = IV.days()[0]
    lake.write_partition("watch_events", day, put(day_table("watch_events", day), "watch_seconds",
                                                  list(range(10)), -1.0))
    code = main(["validate", "--lake", lake.uri, "--interval", str(IV)])
    out = capsys.readouterr()
    assert code == 3 and "Traceback" not in out.err
    assert out.err.startswith("error: Validation of 2026-11-16..2026-11-23 failed: watch_events: watch_seconds >= 0")
    assert "\n\n" not in out.err.strip()

    code = main(["validate", "--lake", lake.uri, "--interval", str(IV), "--json"])
    out = capsys.readouterr()
    payload = json.loads(out.out)  # exactly one JSON object on stdout
    assert code == 3 and payload["ok"] is False and payload["error"] == "ValidationFailed"
    assert payload["report"]["tables"]["watch_events"]["rows_quarantined"] == 10


def test_cli_latest_interval_passes(lake, capsys):
    code = main(["validate", "--lake", lake.uri, "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["ok"] is True and payload["interval"] == str(IV)
    assert payload["tables"]["watch_events"]["rows_kept"] == ROWS
