"""The operations commands: run (early stop, missing stages, the Airflow path), registry, doctor, taxonomy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conf_profile.cli import main
from conf_profile.stages import registry as stage_registry

SMALL = "simulate: {users: 120, weeks: 1, start: 2026-11-09, seed: 3}\n" \
        "validation: {min_rows: {watch_events: 10, searches: 1, comments: 1, purchases: 0, profiles: 1}}\n"


@pytest.fixture()
def small_config(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k, raising=False)
    cfg = tmp_path / "small.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n" + SMALL)
    return cfg


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONF_PROFILE_", "AIRFLOW"))}
    return subprocess.run([sys.executable, "-m", "conf_profile.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**base, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})})


def test_run_stops_early_and_says_what_did_not_run(small_config, capsys):
    code = main(["run", "--config", str(small_config), "--no-airflow", "--stages", "documents", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["mode"] == "in-process"
    assert out["simulated"]["users"] == 120 and out["interval"] == "2026-11-09..2026-11-16"
    assert out["stages"]["validate"] == "ran" and out["stages"]["documents"] == "ran"
    for s in stage_registry.REFRESH[2:-1]:  # finish is not a reported stage
        assert out["stages"][s] == "not run: --stages documents"
    assert out["validation"]["rows_in"] > 0 and out["documents"] > 0
    assert "report" not in out and "promotion" not in out


def test_run_reports_missing_stages_as_not_run(small_config, capsys, monkeypatch):
    import dataclasses

    label = dataclasses.replace(stage_registry.BY_NAME["label"], plan="conf_profile.not_built_yet:plan")
    monkeypatch.setitem(stage_registry.BY_NAME, "label", label)
    code = main(["run", "--config", str(small_config), "--no-airflow"])
    text = capsys.readouterr().out
    assert code == 0
    assert "validate   ran" in text and "documents  ran" in text
    assert "label      not run: stage not available (Stage label is not available (conf_profile.not_built_yet" in text
    assert "promote    not run: an earlier stage is not available" in text
    assert "Validation of 2026-11-09..2026-11-16: PASSED" in text and "Documents: " in text


@pytest.mark.slow
def test_run_with_airflow_until_documents(small_config):
    proc = _cli("run", "--config", str(small_config), "--stages", "documents", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["mode"] == "airflow" and out["dag_run_state"] == "success"
    assert out["stages"]["validate"] == "ran" and out["stages"]["documents"] == "ran"
    assert out["stages"]["label"] == "not run: --stages documents"
    assert "✓ validate" in proc.stderr and "✓ documents" in proc.stderr  # stage lines while tasks finish
    log = out["airflow_log"]
    assert os.path.isfile(log) and "[DAG TEST]" in open(log, encoding="utf-8").read()
    assert "airflow standalone" in out["airflow_ui"] and "mlflow ui --backend-store-uri" in out["mlflow_ui"]


def test_validation_failure_exits_3(small_config, capsys):
    small_config.write_text(small_config.read_text().replace("watch_events: 10", "watch_events: 100000000"))
    code = main(["run", "--config", str(small_config), "--no-airflow", "--stages", "documents"])
    text = capsys.readouterr().out
    assert code == 3
    assert "validate   failed:" in text and "documents  not run" in text


def test_taxonomy_and_schema(capsys):
    assert main(["taxonomy"]) == 0
    text = capsys.readouterr().out
    assert "age_group" in text and "55_plus" in text and "multi, up to 3" in text
    assert main(["taxonomy", "--schema", "--json"]) == 0
    schema = json.loads(capsys.readouterr().out)["schema"]
    assert schema["type"] == "object" and "interests" in schema["properties"]


def test_doctor_on_a_local_setup(small_config, capsys):
    code = main(["doctor", "--config", str(small_config), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["failed"] == []
    assert out["checks"]["lake"]["ok"] and out["checks"]["mlflow"]["ok"] and out["checks"]["taxonomy"]["ok"]
    assert "conf_profile_refresh.py" in out["checks"]["airflow"]["detail"]


def test_doctor_reports_an_unreachable_object_store(small_config, capsys, monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_S3__ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    code = main(["doctor", "--config", str(small_config), "--lake", "s3://lake/x"])
    text = capsys.readouterr().out
    assert code == 1 and "!!  lake" in text and "unreachable" in text


def test_registry_commands(small_config, capsys):
    assert main(["registry", "list", "--config", str(small_config)]) == 0
    assert "no versions yet" in capsys.readouterr().out
    code = main(["registry", "rollback", "--config", str(small_config), "--reason", "nothing to undo"])
    assert code != 0 and "no champion" in capsys.readouterr().err
