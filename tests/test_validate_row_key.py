"""The fast paths of validation change no verdict: the row key is exact (hash collisions included), and the
lean GX run (configurations built once, our fingerprint instead of GX's) gives GX's own results."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from conf_profile.config import Settings, row_floor
from conf_profile.data import validate as v
from conf_profile.data.validation import checks as ck
from conf_profile.schema import RAW_SCHEMAS
from conf_profile.storage import Lake
from tests.test_validate import IV, day_table, put, write_week


def _value(x):
    """Arrow's group-by equality as a Python key: NaN equals NaN, -0.0 differs from 0.0, null is null."""
    if isinstance(x, float):
        return ("nan",) if math.isnan(x) else ("f", x, math.copysign(1.0, x))
    return x


def reference_key(table: pa.Table) -> np.ndarray:
    first: dict[tuple, int] = {}
    rows = zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    return np.array([first.setdefault(tuple(_value(x) for x in row), i) for i, row in enumerate(rows)])


def dirty_table(n: int = 600, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = datetime(2026, 11, 16, tzinfo=UTC)
    floats = [None, float("nan"), 0.0, -0.0, 1.5, float("inf")]
    table = pa.table({
        "s": pa.array([[None, "a", "b", " "][k] for k in rng.integers(0, 4, n)]),
        "f": pa.array([floats[k] for k in rng.integers(0, len(floats), n)], pa.float64()),
        "ts": pa.array([None if k == 0 else base + timedelta(seconds=int(k)) for k in rng.integers(0, 3, n)],
                       pa.timestamp("us", tz="UTC")),
        "b": pa.array([[None, True, False][k] for k in rng.integers(0, 3, n)]),
        "i": pa.array(rng.integers(0, 2, n), pa.int32()),
    })
    return pa.concat_tables([table.slice(0, n // 2), table.slice(n // 2)])  # two chunks


@pytest.mark.parametrize("mix", ["real", "weak", "constant"])
def test_row_key_is_exact_even_when_hashes_collide(monkeypatch, mix):
    table = dirty_table()
    if mix == "weak":  # many collisions between different rows
        monkeypatch.setattr(ck, "_mix", lambda h, x: (h + x) % np.uint64(5))
    elif mix == "constant":  # every row is a candidate: the exact pass alone decides
        monkeypatch.setattr(ck, "_mix", lambda h, x: h)
    expected = reference_key(table)
    assert len(set(expected)) < len(expected) - 100  # the table does hold many copies
    for t in (table, ck.encode_text(table)):
        key = ck.first_identical_row(t)
        assert (key == expected).all()
        assert ck.duplicate_mask(t).to_pylist() == (expected != np.arange(len(expected))).tolist()


def test_row_key_of_a_table_without_copies_is_the_row_index():
    t = pa.table({"x": [1, 2, 3], "y": ["a", "a", None]})
    assert ck.first_identical_row(t).tolist() == [0, 1, 2]
    assert ck.first_identical_row(t.slice(0, 0)).tolist() == []


def _gx_results(name: str, table: pa.Table, lean: bool, monkeypatch) -> list[dict]:
    if not lean:
        monkeypatch.setattr(v, "_lean_gx", lambda fingerprinted: contextlib.nullcontext())
    settings = Settings(lake="/tmp/unused")
    vs = settings.validation
    gx, ctx = v._gx_context()
    checks = ck.row_checks(name, IV, vs)
    results, _, _ = v._judge(gx, ctx, name, table, checks, vs, RAW_SCHEMAS[name].names,
                             row_floor(settings, name), False)
    monkeypatch.undo()
    return [r.to_json_dict() for res in results for r in res.results]


def test_lean_gx_gives_gx_own_results_and_leaves_gx_as_it_was(monkeypatch):
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    before = Expectation.__dict__["configuration"], engine.HASH_THRESHOLD
    day = IV.days()[1]
    t = put(put(day_table("watch_events", day), "user_id", [2], None), "watch_seconds", [3], -1.0)
    t = pa.concat_tables([t, t.slice(5, 2)]).append_column("dt", pa.array([day.isoformat()] * (t.num_rows + 2)))
    lean = _gx_results("watch_events", t, True, monkeypatch)
    plain = _gx_results("watch_events", t, False, monkeypatch)
    assert lean == plain
    assert (Expectation.__dict__["configuration"], engine.HASH_THRESHOLD) == before
    counts = {r["expectation_config"]["meta"]["check"]: r["result"].get("unexpected_count") for r in lean}
    assert counts["user_id_null"] == 1 and counts["watch_seconds_negative"] == 1 and counts["duplicate"] == 4


def test_data_docs_carry_the_arrow_fingerprint_not_a_second_pandas_hash(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    write_week(lake)
    v.validate_interval(lake, IV, Settings(lake=lake.uri))
    page = lake.read_bytes(Lake.run_dir(IV, "validation", "data_docs", "watch_events.critical.html")).decode()
    assert "arrow_row_hash_md5" in page and "pandas_data_fingerprint" not in page


def test_null_samples_render_and_duplicate_examples_are_rows(tmp_path, caplog):
    lake = Lake.open(str(tmp_path / "lake"))
    write_week(lake)
    day = IV.days()[2]
    t = put(day_table("watch_events", day), "user_id", [1], None)
    lake.write_partition("watch_events", day, pa.concat_tables([t, t.slice(3, 1)]))
    with caplog.at_level("ERROR"):
        s = v.validate_interval(lake, IV, Settings(lake=lake.uri))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # GX's renderer read every sample value
    rep = lake.read_json(Lake.run_dir(IV, "validation", "report.json"))["tables"]["watch_events"]
    by_check = {e["check"]: e for e in rep["expectations"]}
    assert by_check["user_id_null"]["examples"] == ["nan"]
    dup = by_check["duplicate"]
    assert dup["unexpected_count"] == 2 and dup["rows_quarantined"] == 1
    assert dup["examples"][0].startswith(f"{{'user_id': 'u3', 'ts': '{day}T02:00:00+00:00'")
    assert s["tables"]["watch_events"]["rows_quarantined"] == 2
