"""Extract: partition pruning, bad files excluded and named (never raised), safe casts, latest week."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conf_profile.data.extract import latest_interval, read_raw, safe_cast_possible
from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.schema import RAW_SCHEMAS
from conf_profile.storage import Lake

IV = Interval.parse("2026-11-16..2026-11-23")
SCHEMA = RAW_SCHEMAS["searches"]


def searches(day: date, n: int = 5) -> pa.Table:
    base = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return pa.table({"user_id": [f"u{i}" for i in range(n)],
                     "ts": [base + timedelta(hours=i) for i in range(n)],
                     "query": [f"q {day} {i}" for i in range(n)]}, schema=SCHEMA)


@pytest.fixture
def lake(tmp_path) -> Lake:
    lk = Lake.open(str(tmp_path / "lake"))
    for day in [IV.start - timedelta(days=1), *IV.days(), IV.end]:
        lk.write_partition("searches", day, searches(day))
    return lk


def test_reads_only_the_interval_with_the_contract_schema(lake):
    r = read_raw(lake, "searches", IV)
    assert r.table.schema == SCHEMA.append(pa.field("dt", pa.string()))
    assert r.table.num_rows == 35 and sorted(set(r.table["dt"].to_pylist())) == [d.isoformat() for d in IV.days()]
    assert r.files_read == [f"raw/searches/dt={d}/part-0.parquet" for d in IV.days()]
    assert r.excluded == [] and r.missing_days == [] and r.empty_days == [] and r.notes == []


def test_files_outside_the_interval_are_never_opened(lake):
    for day in (IV.start - timedelta(days=1), IV.end):
        lake.write_bytes(f"raw/searches/dt={day}/part-0.parquet", b"not parquet at all")
        lake.write_bytes(f"raw/searches/dt={day}/part-1.parquet", b"")
    r = read_raw(lake, "searches", IV)
    assert r.excluded == [] and r.table.num_rows == 35


def test_a_stray_file_outside_any_day_folder_is_ignored(lake):
    lake.write_table("raw/searches/part-0.parquet", searches(IV.start))
    lake.write_bytes("raw/searches/notes.parquet", b"not parquet")
    r = read_raw(lake, "searches", IV)
    assert r.table.num_rows == 35 and r.excluded == []


def test_corrupt_footer_is_excluded_with_path_and_error(lake):
    bad = f"raw/searches/dt={IV.days()[2]}/part-1.parquet"
    lake.write_bytes(bad, b"garbage")
    r = read_raw(lake, "searches", IV)
    assert [(e.path, e.kind) for e in r.excluded] == [(bad, "corrupt")] and "Parquet" in r.excluded[0].error
    assert r.table.num_rows == 35 and bad not in r.files_read


def test_corrupt_pages_fall_back_to_file_by_file(lake):
    """A valid footer over corrupt data pages passes the footer check and breaks the fast scan."""
    day = IV.days()[4]
    big = pa.table({"user_id": [f"user-{i}" for i in range(50_000)],
                    "ts": pa.array([datetime(2026, 11, 20, tzinfo=UTC)] * 50_000, SCHEMA.field("ts").type),
                    "query": [f"query number {i * 7919}" for i in range(50_000)]})
    buf = io.BytesIO()
    pq.write_table(big, buf, compression="zstd")
    data = bytearray(buf.getvalue())
    data[len(data) // 3: len(data) // 3 + 256] = bytes(256)
    bad = f"raw/searches/dt={day}/part-1.parquet"
    lake.write_bytes(bad, bytes(data))
    r = read_raw(lake, "searches", IV)
    assert [(e.path, e.kind) for e in r.excluded] == [(bad, "corrupt")]
    assert "decompression" in r.excluded[0].error  # found while scanning pages, not at the footer
    assert r.table.num_rows == 35 and len(r.files_read) == 7


def test_schema_drift_is_excluded_safe_differences_are_cast(lake):
    d = IV.days()
    good = searches(d[0])
    lake.write_table(f"raw/searches/dt={d[0]}/part-0.parquet", good.drop_columns(["query"]))
    lake.write_table(f"raw/searches/dt={d[1]}/part-0.parquet",
                     good.set_column(0, "user_id", pa.array(range(5), pa.int64())))
    naive = good.set_column(1, "ts", good["ts"].cast(pa.timestamp("ns")))  # no time zone, ns
    lake.write_table(f"raw/searches/dt={d[2]}/part-0.parquet", naive.append_column("extra", pa.array([1] * 5)))
    lake.write_table(f"raw/searches/dt={d[3]}/part-0.parquet",
                     good.set_column(2, "query", good["query"].dictionary_encode()))
    r = read_raw(lake, "searches", IV)
    kinds = {e.path.split("/")[2]: (e.kind, e.error) for e in r.excluded}
    assert kinds == {f"dt={d[0]}": ("schema", "missing required column 'query'"),
                     f"dt={d[1]}": ("schema", "column 'user_id' is int64, expected string (no safe cast)")}
    assert r.table.num_rows == 25 and r.table.schema.field("ts").type == SCHEMA.field("ts").type
    assert "dropped extra column 'extra' in 1 file(s)" in r.notes
    assert any(n.startswith("cast ts timestamp[ns]->timestamp[us, tz=UTC]") for n in r.notes)
    assert len(r.schema_errors) == 2 and not r.all_files_unreadable
    assert good["ts"].to_pylist()[0] in r.table["ts"].to_pylist()  # naive read as UTC, same instant


def test_empty_and_missing_partitions(lake):
    d = IV.days()
    lake.write_partition("searches", d[1], SCHEMA.empty_table())
    lake.delete(f"raw/searches/dt={d[2]}")
    lake.delete(f"raw/searches/dt={d[3]}/part-0.parquet")  # the folder stays, with no file in it
    r = read_raw(lake, "searches", IV)
    assert r.missing_days == [d[2].isoformat()]
    assert r.empty_days == [d[1].isoformat(), d[3].isoformat()]
    assert r.table.num_rows == 20 and r.excluded == []


def test_a_table_without_any_partition_reads_empty(lake):
    r = read_raw(lake, "purchases", IV)
    assert r.table.num_rows == 0 and r.table.schema.names == [*RAW_SCHEMAS["purchases"].names, "dt"]
    assert len(r.missing_days) == 7 and r.files_read == []


def test_unknown_table_is_a_clear_error(lake):
    with pytest.raises(LakeError, match="Unknown raw table 'clicks'"):
        read_raw(lake, "clicks", IV)


def test_safe_casts_are_widening_only():
    assert safe_cast_possible(pa.int32(), pa.float64()) and safe_cast_possible(pa.null(), pa.string())
    assert safe_cast_possible(pa.large_string(), pa.string())
    assert not safe_cast_possible(pa.string(), pa.float64()) and not safe_cast_possible(pa.float64(), pa.int32())
    assert not safe_cast_possible(pa.int64(), pa.bool_())


# ---- latest_interval -------------------------------------------------------------------------------------------
def write_watch_days(lake: Lake, days: list[date]) -> None:
    for day in days:
        lake.write_bytes(f"raw/watch_events/dt={day}/part-0.parquet", b"content is not read here")


def test_latest_interval_is_the_newest_full_monday_week(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    start = date(2026, 11, 4)  # a Wednesday: the first week is partial
    write_watch_days(lake, [start + timedelta(days=i) for i in range(26)])  # up to Sun 29 Nov
    write_watch_days(lake, [date(2026, 11, 30), date(2026, 12, 1)])  # a newer, partial week
    assert latest_interval(lake) == Interval.parse("2026-11-23..2026-11-30")
    lake.delete("raw/watch_events/dt=2026-11-25")  # a hole makes that week not full
    assert latest_interval(lake) == Interval.parse("2026-11-16..2026-11-23")


def test_latest_interval_without_a_full_week_names_the_fix(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    with pytest.raises(LakeError) as info:
        latest_interval(lake)
    assert "conf-profile simulate" in str(info.value) and "--lake" in str(info.value)
    write_watch_days(lake, [date(2026, 11, 16) + timedelta(days=i) for i in range(6)])
    with pytest.raises(LakeError, match="6 day partition"):
        latest_interval(lake)
