"""Lake storage: local atomic writes and the S3 protocol against moto's server on 127.0.0.1."""

from __future__ import annotations

import socket
from datetime import date

import pyarrow as pa
import pytest
from pydantic import SecretStr

from conf_profile.config import S3Settings
from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.storage import Lake, ensure_bucket, health_check


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3_settings(s3_endpoint) -> S3Settings:
    return S3Settings(endpoint_url=s3_endpoint, access_key=SecretStr("testing"), secret_key=SecretStr("testing"))


def _table(n: int, day: str) -> pa.Table:
    return pa.table({"user_id": [f"u{i}" for i in range(n)], "x": list(range(n)), "day": [day] * n})


def test_s3_partitioned_roundtrip_through_protocol(s3_settings):
    uri = "s3://lake-test/prefix"
    assert ensure_bucket(uri, s3_settings) is True  # created with the minio SDK
    assert ensure_bucket(uri, s3_settings) is False  # idempotent
    assert health_check(uri, s3_settings) == {"reachable": True, "bucket": "lake-test", "bucket_exists": True}
    lake = Lake.open(uri, s3_settings)
    assert lake.is_s3
    for day in (date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 30)):
        lake.write_partition("watch_events", day, _table(3, day.isoformat()))
    assert lake.partition_days("watch_events") == ["2026-11-16", "2026-11-17", "2026-11-30"]
    dataset = lake.dataset("raw/watch_events")
    import pyarrow.dataset as ds

    got = dataset.to_table(filter=ds.field("dt") >= "2026-11-17")
    assert got.num_rows == 6
    assert sorted(set(got.column("day").to_pylist())) == ["2026-11-17", "2026-11-30"]


def test_s3_committed_output_and_model_dir(s3_settings, tmp_path):
    uri = "s3://lake-commit/p"
    ensure_bucket(uri, s3_settings)
    lake = Lake.open(uri, s3_settings)
    rel = Lake.run_dir(Interval.parse("2026-11-16..2026-11-23"), "documents")
    assert not lake.is_committed(rel)
    with pytest.raises(LakeError, match="never written"):
        lake.read_committed(rel)
    lake.write_committed_table(rel, _table(5, "d"))
    assert lake.read_committed(rel).num_rows == 5
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "w.txt").write_text("weights")
    lake.upload_dir(tmp_path / "model", "runs/x/models/sft")
    local = lake.local_dir("runs/x/models/sft", cache=tmp_path / "dl")
    assert (local / "sub" / "w.txt").read_text() == "weights"


def test_local_write_is_atomic_and_commit_drops_leftovers(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    rel = "runs/a/out"
    # A crashed earlier attempt left a stray file and no manifest: readers must not see it.
    lake.write_table(f"{rel}/part-9.parquet", _table(2, "old"))
    assert not lake.is_committed(rel)
    lake.write_committed_table(rel, _table(4, "new"))
    assert lake.listdir(rel) == ["_manifest.json", "part-0.parquet"]
    assert lake.read_committed(rel).column("day").to_pylist() == ["new"] * 4
    # No temp files survive a successful write.
    assert not [p for p in (tmp_path / "lake").rglob(".tmp-*")]


def test_unsupported_scheme_names_the_fix():
    with pytest.raises(LakeError, match="s3://bucket/prefix"):
        Lake.open("gs://bucket/x")


def test_interval_parse_and_errors():
    iv = Interval.parse("2026-11-16..2026-11-23")
    assert iv.key == "2026-11-16_2026-11-23" and len(iv.days()) == 7
    assert Interval.parse(iv.key) == iv
    assert iv.previous() == Interval.parse("2026-11-09..2026-11-16")
    with pytest.raises(Exception, match="START..END"):
        Interval.parse("last week")
    with pytest.raises(Exception, match="empty"):
        Interval.parse("2026-11-23..2026-11-16")
