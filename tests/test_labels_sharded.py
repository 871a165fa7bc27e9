"""The aggregate stage streamed over user shards: the same rows as the whole week when the calibration sample
covers every user, every user with a small sample, and never more than one shard (or the sample) encoded."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_labels_aggregate import IV, TAX, TEACHERS, _world

from conf_profile.config import Settings
from conf_profile.errors import LakeError
from conf_profile.labels import aggregate_interval, aggregate_whole_week, sharded
from conf_profile.layout import RunLayout
from conf_profile.shards import commit_shards, shard_of
from conf_profile.storage import Lake
from conf_profile.testing import commit_stages

SHARDS = 3
N = 300


def _sharded_lake(root, shards: int = SHARDS, users_subset: slice = slice(None)) -> tuple[Lake, list[str]]:
    """Documents built per user shard (each shard folder records the shard count) and teacher shard i = the
    answers of document shard i's users, as the documents and label stages lay them out."""
    lake = Lake.open(str(root))
    users, answers, _ = _world()
    lay = RunLayout(IV)
    docs = pa.table({"user_id": users, "document": [f"## profile\nnickname: ⟦{u}⟧" for u in users],
                     "n_events": [3] * N, "n_chars": [30] * N})
    of = shard_of(docs["user_id"], shards)
    for i in range(shards):
        lake.write_committed_table(lay.documents_shard(i), docs.filter(pa.array(of == i)), meta={"shards": shards})
    commit_shards(lake, lay.documents, shards)
    tid, aof = pc.cast(answers["teacher_id"], pa.string()), shard_of(answers["user_id"], shards)
    for t in TEACHERS:
        for i in range(shards):
            mine = pc.and_(pc.equal(tid, t), pa.array(aof == i))
            lake.write_committed_table(Lake.run_dir(IV, "teachers", t, f"shard-{i}"), answers.filter(mine))
    commit_stages(lake, IV, "documents", "label")
    return lake, users


def _settings(lake: Lake, shards: int = SHARDS) -> Settings:
    s = Settings.load(lake=lake.uri)
    s.labels.shards = shards
    s.labels.teachers = [t for t in s.labels.teachers if t.name in TEACHERS]
    return s


def _read(lake: Lake, name: str, keys: list[str]) -> pa.Table:
    t = lake.read_committed(getattr(RunLayout(IV), name))
    return t.sort_by([(k, "ascending") for k in keys])


KEYS = {"votes": ["user_id", "attribute", "method"], "teacher_predictions": ["teacher_id", "user_id", "attribute"],
        "distill": ["user_id"], "rl_prompts": ["user_id"]}


@pytest.mark.parametrize("rationale", [False, True])
def test_streamed_equals_whole_week(tmp_path, rationale):
    lake, users = _sharded_lake(tmp_path / "lake")
    settings = _settings(lake)
    settings.labels.include_rationale = rationale
    assert settings.labels.calibration_sample_users >= N  # the default sample covers this week
    settings.labels.class_cap_factor = 1.0  # tight caps: some users are capped out, across shards
    whole = aggregate_whole_week(lake, IV, settings)
    expected = {k: _read(lake, k, keys) for k, keys in KEYS.items()}
    cal_whole = lake.read_json(RunLayout(IV).calibration)

    streamed = aggregate_interval(lake, IV, settings)
    assert streamed["aggregated_shards"] == SHARDS and whole["aggregated_shards"] == 1
    for k, keys in KEYS.items():
        got = _read(lake, k, keys)
        assert got.num_rows == expected[k].num_rows, k
        assert got.equals(expected[k]), k
    assert lake.read_json(RunLayout(IV).calibration) == cal_whole
    assert whole["capped_out"] > 0
    for k in ("users", "eval_users", "answers", "teachers", "excluded_error_rows", "excluded_invalid_rows",
              "excluded_no_document_rows", "distill_records", "capped_out", "capped_out_by_attribute", "rl_prompts",
              "calibration", "calibration_points", "prior_shift_changed", "coverage", "shards", "missing_teachers"):
        assert streamed[k] == whole[k], k
    # one manifest per dataset, over this run's parts only (the whole week's part-0 is gone)
    m = lake.manifest(RunLayout(IV).votes)
    assert len(m["files"]) == SHARDS and "part-0.parquet" not in lake.listdir(RunLayout(IV).votes)
    assert lake.manifest(RunLayout(IV).distill)["meta"]["records"] == whole["distill_records"]
    # a rerun of the same week commits the same content under the same fingerprints (nothing downstream reruns)
    prints = {k: lake.fingerprint(getattr(RunLayout(IV), k)) for k in KEYS}
    aggregate_interval(lake, IV, settings)
    assert {k: lake.fingerprint(getattr(RunLayout(IV), k)) for k in KEYS} == prints


def test_small_sample_still_profiles_every_user_and_encodes_one_shard_at_a_time(tmp_path, monkeypatch):
    lake, users = _sharded_lake(tmp_path / "lake")
    settings = _settings(lake)
    k = int(0.3 * N)
    settings.labels.calibration_sample_users = k
    seen: list[int] = []
    encode = sharded.encode

    def counting(table, *args, users=None, **kw):
        seen.append(len(pc.unique(table["user_id"])) if users is None else len(users))
        return encode(table, *args, users=users, **kw)

    monkeypatch.setattr(sharded, "encode", counting)
    s = aggregate_interval(lake, IV, settings)
    assert s["users"] == N and s["calibration_sample_users"] == k
    votes = lake.read_committed(RunLayout(IV).votes)
    assert sorted(pc.unique(votes["user_id"]).to_pylist()) == sorted(users)
    assert votes.num_rows == 3 * N * len(TAX.attributes)
    largest = int(np.bincount(shard_of(pa.array(users), SHARDS)).max())
    assert len(seen) == SHARDS + 1  # the sample, then each shard once
    assert max(seen) <= max(largest, k) < N  # never the whole week at once


def test_unsharded_documents_and_errors(tmp_path):
    lake, users = _sharded_lake(tmp_path / "lake")
    # documents committed as one table (an older build): split by shard_of here, same outputs
    docs = lake.read_committed(RunLayout(IV).documents)
    lake.delete(RunLayout(IV).documents)
    lake.write_committed_table(RunLayout(IV).documents, docs)
    s = aggregate_interval(lake, IV, _settings(lake))
    assert s["users"] == N
    lake.delete(Lake.run_dir(IV, "teachers", TEACHERS[0], "shard-1", "_manifest.json"))
    with pytest.raises(LakeError, match=f"{TEACHERS[0]}/shard-1"):
        aggregate_interval(lake, IV, _settings(lake))
