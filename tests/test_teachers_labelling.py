"""Sharded, resumable labelling: skip finished shards, redo failed ones, same result as a clean run."""

from __future__ import annotations

import json
import os
import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.cli import main
from conf_profile.config import Settings
from conf_profile.config.teachers import teacher_spec
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.labels.io import read_teacher_outputs as read_all_outputs
from conf_profile.schema import DOCUMENT_SCHEMA
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.teachers.backends.lexicon import LexiconTeacher
from conf_profile.teachers.labelling import (
    LabellingFailed,
    label_interval,
    label_shard,
    shard_dir,
    shard_of,
)
from conf_profile.testing import commit_stages

TAX = load_taxonomy()
A = len(TAX.names)
IV = Interval.parse("2026-11-16..2026-11-23")
TEACHERS = ["lexicon_watch", "lexicon_all"]
SNIPPETS = ["## watch\n- [gaming] ⟦boss guide⟧ 90%", "## searches\n- ⟦cheap stroller⟧",
            "## comments\n- ⟦I'm a nurse⟧", "## profile\ndeclared_age: 51\ncity: Beijing", ""]


def settings(lake_dir, shards: int = 4) -> Settings:
    s = Settings.load(lake=str(lake_dir))
    s.labels.shards = shards
    s.labels.teachers = [t for t in s.labels.teachers if t.name in TEACHERS]
    return s


def write_documents(lake: Lake, n: int = 60, salt: str = "") -> None:
    users = [f"user-{i:04d}" for i in range(n)]
    docs = ["\n".join(SNIPPETS[j] for j in range(len(SNIPPETS)) if (i + j) % 3 == 0) + salt for i in range(n)]
    table = pa.table({"user_id": users, "document": docs, "n_events": [1] * n,
                      "n_chars": [len(d) for d in docs]}, schema=DOCUMENT_SCHEMA)
    lake.write_committed_table(Lake.run_dir(IV, "documents"), table, meta={"documents": n})


def read_teacher_outputs(lake: Lake, interval: Interval, teacher: str, shards: int) -> pa.Table:
    """One teacher's committed rows (the lake reader reads all teachers; keep this teacher's)."""
    table, _ = read_all_outputs(lake, interval, shards)
    return table.filter(pc.equal(table["teacher_id"], teacher))


def mtimes(lake: Lake) -> dict[str, int]:
    out = {}
    for rel in lake.list_files(Lake.run_dir(IV, "teachers")):
        out[rel] = os.stat(lake.path(rel)).st_mtime_ns
    return out


def all_rows(lake: Lake, s: Settings) -> dict[str, pa.Table]:
    return {t: read_teacher_outputs(lake, IV, t, s.labels.shards).sort_by([("user_id", "ascending"),
                                                                          ("attribute", "ascending")])
            for t in TEACHERS}


@pytest.fixture()
def lake(tmp_path):
    lk = Lake.open(str(tmp_path / "lake"))
    write_documents(lk)
    commit_stages(lk, IV, "documents")  # as the documents stage would have committed them
    return lk


@pytest.fixture()
def reference(tmp_path_factory):
    """A clean run in its own lake, to compare resumed runs against."""
    d = tmp_path_factory.mktemp("ref")
    lk = Lake.open(str(d / "lake"))
    write_documents(lk)
    s = settings(d / "lake")
    label_interval(lk, IV, s)
    return all_rows(lk, s)


def test_clean_run_layout_counts_and_shards(lake, tmp_path):
    s = settings(tmp_path / "lake")
    summary = label_interval(lake, IV, s)
    assert summary["interval"] == str(IV) and summary["users"] == 60
    for t in TEACHERS:
        st = summary["teachers"][t]
        assert st == {"backend": "lexicon", "shards_done": 4, "shards_skipped": 0, "shards_failed": 0,
                      "rows": 60 * A, "errors": 0, "users": 60}
        for i in range(4):
            rel = shard_dir(IV, t, i)
            assert rel == f"runs/{IV.key}/teachers/{t}/shard-{i}"
            meta = lake.manifest(rel)["meta"]
            assert meta["rows"] == meta["users"] * A and meta["errors"] == 0
            users = lake.read_committed(rel)["user_id"].to_pylist()
            assert set(shard_of(users, 4)) <= {i}  # each user sits in its hash shard
        table = read_teacher_outputs(lake, IV, t, 4)
        keys = list(zip(table["user_id"].to_pylist(), table["attribute"].to_pylist(), strict=True))
        assert len(keys) == len(set(keys)) == 60 * A  # every user once, no duplicates
    assert sorted(np.bincount(shard_of([f"user-{i:04d}" for i in range(60)], 4))) != [0, 0, 0, 60]


def test_shard_hash_is_stable():
    assert shard_of(["alice", "bob", "carol"], 7).tolist() == shard_of(pa.array(["alice", "bob", "carol"]), 7).tolist()
    assert shard_of(["alice"], 1000)[0] == shard_of(["alice"], 1000)[0]
    # fixed value: a change of hash would silently move users between shards of existing runs
    assert shard_of(["user-0001", "user-0002"], 4).tolist() == _expected_shards()


def _expected_shards() -> list[int]:
    import hashlib

    return [int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little") % 4
            for u in ("user-0001", "user-0002")]


def test_rerun_skips_finished_shards_without_rewriting(lake, tmp_path):
    s = settings(tmp_path / "lake")
    label_interval(lake, IV, s)
    before = mtimes(lake)
    summary = label_interval(lake, IV, s)
    assert all(st["shards_skipped"] == 4 and st["shards_done"] == 0 for st in summary["teachers"].values())
    assert summary["teachers"]["lexicon_all"]["rows"] == 60 * A  # counts come from the manifests
    assert mtimes(lake) == before


def test_deleted_or_corrupt_manifest_is_redone_and_result_identical(lake, tmp_path, reference):
    s = settings(tmp_path / "lake")
    label_interval(lake, IV, s)
    before = mtimes(lake)
    lake.delete(posixpath.join(shard_dir(IV, "lexicon_all", 2), "_manifest.json"))
    lake.write_bytes(posixpath.join(shard_dir(IV, "lexicon_watch", 1), "_manifest.json"), b"{not json")
    summary = label_interval(lake, IV, s)
    assert summary["teachers"]["lexicon_all"]["shards_done"] == 1
    assert summary["teachers"]["lexicon_watch"]["shards_done"] == 1
    after = mtimes(lake)
    changed = {k for k in after if after[k] != before.get(k)}
    assert {posixpath.dirname(k) for k in changed} == {shard_dir(IV, "lexicon_all", 2),
                                                       shard_dir(IV, "lexicon_watch", 1)}
    rows = all_rows(lake, s)
    for t in TEACHERS:
        assert rows[t].equals(reference[t])


def test_crash_mid_way_then_resume(lake, tmp_path, reference, monkeypatch):
    s = settings(tmp_path / "lake")
    calls = {"n": 0}
    real = LexiconTeacher.label_table

    def flaky(self, documents):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real(self, documents)

    monkeypatch.setattr(LexiconTeacher, "label_table", flaky)
    with pytest.raises(LabellingFailed) as err:
        label_interval(lake, IV, s)
    report = err.value.report
    assert report["failed"] == [{"teacher": "lexicon_watch", "shard": 2, "error": "RuntimeError: worker killed"}]
    assert report["teachers"]["lexicon_watch"]["shards_done"] == 3
    assert report["teachers"]["lexicon_all"]["shards_done"] == 4  # the other teacher went on
    assert not lake.is_committed(shard_dir(IV, "lexicon_watch", 2))
    before = mtimes(lake)
    calls["n"] = 100
    summary = label_interval(lake, IV, s)
    assert calls["n"] == 101  # exactly one shard relabelled
    assert summary["teachers"]["lexicon_watch"] == {**summary["teachers"]["lexicon_watch"],
                                                   "shards_done": 1, "shards_skipped": 3}
    after = mtimes(lake)
    assert all(after[k] == v for k, v in before.items())  # finished shards untouched
    rows = all_rows(lake, s)
    for t in TEACHERS:
        assert rows[t].equals(reference[t])


def test_crash_between_data_and_manifest_leaves_no_duplicates(lake, tmp_path, reference, monkeypatch):
    s = settings(tmp_path / "lake")
    real_commit = Lake.commit

    def commit(self, rel_dir, files, meta=None):
        if rel_dir.endswith("lexicon_all/shard-0"):
            raise OSError("disk full")
        return real_commit(self, rel_dir, files, meta)

    monkeypatch.setattr(Lake, "commit", commit)
    with pytest.raises(LabellingFailed):
        label_interval(lake, IV, s, teacher="lexicon_all")
    assert lake.exists(posixpath.join(shard_dir(IV, "lexicon_all", 0), "part-0.parquet"))  # data, no manifest
    monkeypatch.setattr(Lake, "commit", real_commit)
    label_interval(lake, IV, s)
    assert all_rows(lake, s)["lexicon_all"].equals(reference["lexicon_all"])


def test_force_and_changed_inputs_redo(lake, tmp_path):
    s = settings(tmp_path / "lake")
    label_interval(lake, IV, s)
    assert label_interval(lake, IV, s, force=True)["teachers"]["lexicon_all"]["shards_done"] == 4
    write_documents(lake, salt="\n## searches\n- ⟦gym workout⟧")  # new documents: every shard is stale
    assert label_interval(lake, IV, s)["teachers"]["lexicon_watch"]["shards_done"] == 4
    s.labels.teachers = [t.model_copy(update={"sources": ["watch", "searches"]}) if t.name == "lexicon_watch" else t
                         for t in s.labels.teachers]  # a changed teacher spec: its shards are stale
    summary = label_interval(lake, IV, s)
    assert summary["teachers"]["lexicon_watch"]["shards_done"] == 4
    assert summary["teachers"]["lexicon_all"]["shards_skipped"] == 4
    s.labels.teachers = [t.model_copy(update={"weight": 3.0}) for t in s.labels.teachers]  # voting only
    assert all(st["shards_skipped"] == 4 for st in label_interval(lake, IV, s)["teachers"].values())


def test_fewer_shards_removes_stale_shard_folders(lake, tmp_path):
    label_interval(lake, IV, settings(tmp_path / "lake", shards=4))
    s2 = settings(tmp_path / "lake", shards=2)
    label_interval(lake, IV, s2)
    assert lake.listdir(posixpath.dirname(shard_dir(IV, "lexicon_all", 0))) == ["shard-0", "shard-1"]
    assert read_teacher_outputs(lake, IV, "lexicon_all", 2).num_rows == 60 * A


def test_label_shard_and_errors(lake, tmp_path):
    s = settings(tmp_path / "lake")
    r = label_shard(lake, IV, s, "lexicon_watch", 1)
    assert r["status"] == "done" and r["shard"] == 1
    assert label_shard(lake, IV, s, "lexicon_watch", 1)["status"] == "skipped"
    with pytest.raises(ConfProfileError, match="lexicon_all"):
        label_shard(lake, IV, s, "gpt-17", 0)  # the error lists the configured teachers
    with pytest.raises(ConfProfileError, match="from 0 to 3"):
        label_shard(lake, IV, s, "lexicon_watch", 4)
    with pytest.raises(ConfProfileError, match="conf-profile documents"):
        label_interval(Lake.open(str(tmp_path / "empty")), IV, s)


def test_teacher_that_cannot_be_built_fails_its_shards_only(lake, tmp_path):
    s = settings(tmp_path / "lake")
    s.labels.teachers.append(teacher_spec(name="remote", backend="openai", model="m"))  # no base_url
    with pytest.raises(LabellingFailed, match="base_url") as err:
        label_interval(lake, IV, s)
    rep = err.value.report
    assert rep["teachers"]["remote"]["shards_failed"] == 1  # stopped after the first: same cause
    assert rep["teachers"]["lexicon_all"]["shards_done"] == 4


def test_cli_label_json(lake, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("labels:\n  shards: 2\n  teachers:\n    - {name: lexicon_search, sources: [searches]}\n")
    code = main(["label", "--lake", lake.uri, "--config", str(cfg), "--interval", str(IV), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["teachers"]["lexicon_search"]["shards_done"] == 2
    code = main(["label", "--lake", lake.uri, "--config", str(cfg), "--interval", str(IV), "--shard", "1",
                 "--force"])
    text = capsys.readouterr().out
    assert code == 0 and "lexicon_search" in text and "1 done, 0 skipped" in text
    code = main(["label", "--lake", lake.uri, "--config", str(cfg), "--interval", str(IV), "--teacher", "nope"])
    err = capsys.readouterr().err
    assert code != 0 and "No teacher named 'nope'" in err and "Traceback" not in err
