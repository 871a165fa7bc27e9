"""C11: smaller faults at the CLI's edges: impossible dates, taxonomy classes that can never match, nonsense
numbers in settings, usage errors under --json, a closed pipe, tracebacks in warnings, a run that logged no
loss, and a teacher server that drips its reply."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyarrow as pa
import pytest
from fault_server import FaultServer

from conf_profile.cli import main

from . import assert_json_error, assert_one_paragraph, clean_env, cli

IV = "2026-11-16..2026-11-23"


def test_impossible_date_in_interval(tmp_path):
    r = cli("validate", "--interval", "2026-02-30..2026-03-02", cwd=tmp_path)
    assert_one_paragraph(r, "2026-02-30", "does not exist", "START..END")
    assert_json_error(cli("validate", "--interval", "2026-02-30..2026-03-02", "--json", cwd=tmp_path), "2026-02-30")


def test_taxonomy_class_with_capitals_is_refused(tmp_path):
    tax = tmp_path / "tax.yaml"
    tax.write_text("attributes:\n  - {name: interests, kind: multi, classes: [gaming, Cooking]}\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"taxonomy_path: {tax}\n")
    r = cli("taxonomy", "--config", str(cfg), cwd=tmp_path)
    flat = assert_one_paragraph(r, "'Cooking'", "lower-case", str(tax))
    assert "errors.pydantic.dev" not in flat


@pytest.mark.parametrize(("yaml_text", "setting"), [
    ("documents:\n  char_budget: 0\n", "documents.char_budget"),
    ("documents:\n  char_budget: -5\n", "documents.char_budget"),
    ("labels:\n  shards: 0\n", "labels.shards"),
    ("simulate:\n  pii_rate: 1.5\n", "simulate.pii_rate"),
    ("labels:\n  multilabel_threshold: 2\n", "labels.multilabel_threshold"),
])
def test_nonsense_numbers_are_refused_before_anything_is_written(tmp_path, yaml_text, setting):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml_text)
    r = cli("documents", "--config", str(cfg), "--interval", IV, cwd=tmp_path)
    assert_one_paragraph(r, setting)
    assert not (tmp_path / "data").exists()  # refused before the lake was even opened


def test_nonsense_number_from_the_environment(tmp_path):
    r = cli("documents", "--interval", IV, cwd=tmp_path, env=clean_env(CONF_PROFILE_DOCUMENTS__CHAR_BUDGET="0"))
    assert_one_paragraph(r, "documents.char_budget")


@pytest.mark.parametrize("argv", [["validate", "--no-such-flag"], ["nosuch"], ["simulate", "--users", "many"]])
def test_usage_error_with_json_is_one_object(tmp_path, argv):
    r = cli(*argv, "--json", cwd=tmp_path)
    assert r.code == 2
    payload = assert_json_error(r)
    assert payload["error"] == "UsageError"


def test_usage_error_without_json_keeps_stdout_empty(tmp_path):
    r = cli("simulate", "--users", "many", cwd=tmp_path)
    assert r.code == 2 and r.out == ""
    assert_one_paragraph(r, "--users", "--help")


def test_closed_pipe_ends_quietly(tmp_path):
    """`conf-profile ... | head`: the reader goes away before we write; no BrokenPipe traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "conf_profile.cli", "taxonomy", "--schema"], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the interpreter has even imported us
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"Traceback" not in err and b"BrokenPipe" not in err and err == b""


def test_train_sft_shorter_than_logging_interval(tmp_path, capsys, monkeypatch):
    import conf_profile.train.sft as sft

    def fake(lake, interval, settings, resume=True):
        return {"base": "tiny", "train_users": 3, "steps": 1, "epochs": 1.0, "resumed_from": None,
                "final_loss": None, "seconds": 0.5, "path": "runs/x/models/sft", "dropped_too_long": 0}

    from conf_profile.intervals import Interval
    from conf_profile.storage import Lake
    from conf_profile.testing import commit_stages

    monkeypatch.setattr(sft, "train_sft", fake)
    commit_stages(Lake.open(str(tmp_path)), Interval.parse(IV), "aggregate")  # the stage SFT reads committed
    assert main(["train", "sft", "--lake", str(tmp_path), "--interval", IV]) == 0
    out = capsys.readouterr().out
    assert "final loss not logged" in out
    assert main(["train", "sft", "--lake", str(tmp_path), "--interval", IV, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final_loss"] is None


def _documents(lake_dir) -> None:
    from conf_profile.intervals import Interval
    from conf_profile.schema import DOCUMENT_SCHEMA
    from conf_profile.storage import Lake

    lake = Lake.open(str(lake_dir))
    docs = ["## searches\n- ⟦cheap stroller⟧"] * 4
    table = pa.table({"user_id": [f"u{i}" for i in range(4)], "document": docs, "n_events": [1] * 4,
                      "n_chars": [len(d) for d in docs]}, schema=DOCUMENT_SCHEMA)
    lake.write_committed_table(Lake.run_dir(Interval.parse(IV), "documents"), table)


def test_warnings_carry_no_traceback_without_debug(tmp_path):
    _documents(tmp_path / "lake")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("labels:\n  shards: 1\n  teachers:\n    - {name: lexicon_search, sources: [searches]}\n"
                   "    - {name: remote, backend: openai, model: m}\n")  # no base_url: its shard fails
    args = ("label", "--lake", str(tmp_path / "lake"), "--config", str(cfg), "--interval", IV)
    r = cli(*args, cwd=tmp_path)
    assert "WARNING" in r.err and "remote" in r.err
    assert "Traceback" not in r.err
    r = cli(*args, "--debug", cwd=tmp_path)
    assert "Traceback" in r.err


def test_dripping_teacher_server_is_cut_at_the_deadline():
    from conf_profile.config.teachers import teacher_spec
    from conf_profile.taxonomy import load_taxonomy
    from conf_profile.teachers.backends.openai_chat import OpenAITeacher

    tax = load_taxonomy()
    with FaultServer(tax, {"drip": ["drip"], "ok": ["ok"]}, drip_s=0.3, drip_bytes=8) as server:
        spec = teacher_spec(name="remote", backend="openai", model="m", samples=1, timeout_s=1.5, max_retries=0,
                            base_url=server.base_url)
        teacher = OpenAITeacher(spec, tax)
        t0 = time.perf_counter()
        table = teacher.label([("u1", "key: drip"), ("u2", "key: ok")])
        seconds = time.perf_counter() - t0
    rows = table.to_pylist()
    assert seconds < 1.5 + 2.0, seconds  # without the deadline: minutes (a few KB at 8 bytes / 0.3 s)
    assert all(r["error"].startswith("timeout") for r in rows if r["user_id"] == "u1")
    assert not any(r["error"] for r in rows if r["user_id"] == "u2")  # the healthy request is unaffected
