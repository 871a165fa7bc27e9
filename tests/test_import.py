"""`conf-profile import`: an export is mapped, cast, partitioned by day; bad rows are counted and set aside."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conf_profile.config import Settings
from conf_profile.data.importer import Mapping, cast_column, import_file
from conf_profile.errors import ConfProfileError
from conf_profile.storage import Lake

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "import"


@pytest.fixture()
def lake(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k, raising=False)
    return Lake.open(str(tmp_path / "lake"), create=True)


def test_the_documented_example_imports_through_the_cli(lake, capsys):
    from conf_profile.cli import main

    code = main(["import", "--source", str(EXAMPLE / "searches.csv"), "--mapping",
                 str(EXAMPLE / "searches_mapping.yaml"), "--table", "searches", "--lake", lake.uri, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert (out["rows_read"], out["rows_written"], out["rows_rejected"]) == (6, 4, 2)
    assert out["rejected_by_reason"] == {"ts_not_timestamp": 1, "ts_missing": 1}
    assert out["days"] == ["2026-11-09", "2026-11-10", "2026-11-12"]
    day = lake.read_table(f"raw/searches/dt=2026-11-09/{Path(out['files'][0]).name}")
    assert day.schema.names == ["user_id", "ts", "query"] and day["query"].to_pylist() == [
        "best stroller 2026", "easy dinner recipes"]
    rejected = pq.read_table(out["rejected_path"])
    assert rejected["member"].to_pylist() == ["u003", "u004"] and rejected["reason"].to_pylist() == [
        "ts_not_timestamp", "ts_missing"]
    again = main(["import", "--source", str(EXAMPLE / "searches.csv"), "--mapping",
                  str(EXAMPLE / "searches_mapping.yaml"), "--table", "searches", "--lake", lake.uri, "--json"])
    capsys.readouterr()
    assert again == 0 and len(lake.list_files("raw/searches", ".parquet")) == 3  # replaced, not doubled


def test_jsonl_with_constants_and_bad_numbers(lake, tmp_path):
    src = tmp_path / "buys.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"uid": "a", "time": "2026-11-09T10:00:00+01:00", "amount": "12.5"},
        {"uid": "b", "time": "2026-11-10T10:00:00", "amount": "twelve"},
        {"uid": "c", "time": "2026-11-11T10:00:00Z", "amount": "3"}]) + "\n")
    m = Mapping(columns={"user_id": "uid", "ts": "time", "price": "amount"}, constants={"item_category": "books"})
    s = import_file(lake, Settings(lake=lake.uri), "purchases", src, m)
    assert (s["rows_written"], s["rejected_by_reason"]) == (2, {"price_not_double": 1})
    t = pa.concat_tables(lake.read_table(f) for f in sorted(lake.list_files("raw/purchases", ".parquet")))
    assert t["item_category"].to_pylist() == ["books", "books"] and t["price"].to_pylist() == [12.5, 3.0]
    assert t["ts"][0].as_py().hour == 9  # +01:00 -> UTC


def test_unconfigured_table_and_unmapped_required_column_are_named(lake, tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("user_id,ts\nu,2026-11-09T00:00:00\n")
    with pytest.raises(ConfProfileError, match="'listens' is not configured"):
        import_file(lake, Settings(lake=lake.uri), "listens", src, Mapping())
    with pytest.raises(ConfProfileError, match="required column searches.query"):
        import_file(lake, Settings(lake=lake.uri), "searches", src, Mapping())


def test_cast_column_marks_only_bad_values():
    out, bad = cast_column(pa.array(["1", "x", None, "", " 3 "]), pa.int64())
    assert out.to_pylist() == [1, None, None, None, 3] and bad.tolist() == [False, True, False, False, False]
    out, bad = cast_column(pa.array(["yes", "0", "maybe"]), pa.bool_())
    assert out.to_pylist() == [True, False, None] and bad.tolist() == [False, False, True]
