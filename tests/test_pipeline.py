"""The stage runner's context and registry.tracking without training: settings from Params, stage gating,
identities, MLflow parent/child runs and lineage."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from conf_profile.errors import ConfigError
from conf_profile.intervals import Interval
from conf_profile.registry import tracking
from conf_profile.stages import registry, runner
from conf_profile.stages.context import make_context
from conf_profile.storage import Lake

W = Interval.parse("2026-11-09..2026-11-16")


def test_params_become_settings(tmp_settings, monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_DATA_DIR", str(tmp_settings.data_dir))
    ctx = make_context(str(W), run_params={"teachers": ["lexicon_all", "lexicon_watch"], "shards": 3,
                                           "student": "small", "sft_epochs": 1.5, "rl_steps": 0, "stop_after": None})
    s = ctx.settings
    assert [t.name for t in s.labels.teachers] == ["lexicon_all", "lexicon_watch"]
    assert (s.labels.shards, s.train.student, s.train.sft.epochs, s.train.rl.steps) == (3, "small", 1.5, 0)
    with pytest.raises(ConfigError, match="lexicon_all"):
        make_context(str(W), run_params={"teachers": ["gpt-9"]})


def test_kubernetes_mode_routes_gpu_teachers_to_the_vllm_service(monkeypatch, tmp_path):
    cfg = tmp_path / "k8s.yaml"
    cfg.write_text(f"data_dir: {tmp_path}\ncompute: {{mode: kubernetes, vllm_base_url: 'http://vllm:8000/v1'}}\n"
                   "labels:\n  teachers:\n    - {name: big, backend: vllm, model: Qwen/Qwen2.5-7B-Instruct}\n"
                   "    - {name: srv, backend: openai, model: teacher}\n    - {name: lex, backend: lexicon}\n")
    s = make_context(str(W), config=str(cfg)).settings
    by = {t.name: t for t in s.labels.teachers}
    assert by["big"].backend == "openai" and by["big"].base_url == "http://vllm:8000/v1"
    assert by["srv"].base_url == "http://vllm:8000/v1" and by["lex"].backend == "lexicon"


def test_stop_after_skips_later_stages(tmp_settings, monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_DATA_DIR", str(tmp_settings.data_dir))
    ctx = make_context(str(W), run_params={"stop_after": "documents"})
    runner._check_stop(registry.BY_NAME["documents"], ctx)
    with pytest.raises(runner.StageSkipped, match="stops after documents"):
        runner._check_stop(registry.BY_NAME["label"], ctx)
    with pytest.raises(runner.StageSkipped):
        runner.run("label", part="plan", interval=str(W), params={"stop_after": "validate"}, tracking=False)


def test_unimportable_stage_is_unavailable_and_skipped(tmp_settings, monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_DATA_DIR", str(tmp_settings.data_dir))
    broken = dataclasses.replace(registry.BY_NAME["register"], fn="conf_profile.no_such_module:run")
    monkeypatch.setitem(registry.BY_NAME, "register", broken)
    with pytest.raises(runner.StageUnavailable) as err:
        runner.run("register", interval=str(W), tracking=False)
    assert runner.outcome(err.value) == "skip"


def test_dataset_hash_follows_content_not_meta(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    t = pa.table({"user_id": ["a", "b"], "document": ["x", "y"]})
    lake.write_committed_table("runs/x/documents", t, meta={"seconds": 1.0})
    h1 = tracking.dataset_hash(lake, "runs/x/documents")
    lake.write_committed_table("runs/x/documents", t, meta={"seconds": 2.5})  # rerun: same rows, other timings
    assert tracking.dataset_hash(lake, "runs/x/documents") == h1
    lake.write_committed_table("runs/x/documents", t.slice(0, 1))
    assert tracking.dataset_hash(lake, "runs/x/documents") != h1


def test_raw_hash_covers_only_the_interval(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    t = pa.table({"user_id": ["a"]})
    lake.write_partition("searches", W.start, t)
    h = tracking.raw_hash(lake, W)
    lake.write_partition("searches", W.end, t)  # the next week's first day
    assert tracking.raw_hash(lake, W) == h
    lake.write_partition("searches", W.days()[3], pa.table({"user_id": ["a", "b"]}))
    assert tracking.raw_hash(lake, W) != h


def test_config_hash_tracks_what_shapes_the_model(tmp_settings):
    h = tracking.config_hash(tmp_settings)
    tmp_settings.labels.shards = 9  # sharding changes nothing in the result
    tmp_settings.train.threads = 1
    assert tracking.config_hash(tmp_settings) == h
    tmp_settings.train.sft.epochs = 2.0
    assert tracking.config_hash(tmp_settings) != h


def test_git_sha_from_env(monkeypatch):
    tracking.git_sha.cache_clear()
    monkeypatch.setenv("CONF_PROFILE_GIT_SHA", "abc1234def")
    try:
        assert tracking.git_sha() == "abc1234def" and tracking.code_version().endswith("+abc1234def")
    finally:
        tracking.git_sha.cache_clear()


def test_one_parent_per_dag_run_and_children_attach(mlflow_tracking, tmp_path):
    import mlflow

    tr = mlflow_tracking
    lake = Lake.open(str(tmp_path / "lake"))
    lake.write_committed_table("runs/x/documents", pa.table({"user_id": ["a"]}))
    p1 = tracking.parent_run(tr, "manual__1", W, params={"teachers": ["a", "b"]})
    assert tracking.parent_run(tr, "manual__1", W) == p1  # a second task finds it
    assert tracking.parent_run(tr, "manual__2", W) != p1
    with tracking.stage_run(tr, "manual__1", W, "documents") as run:
        digest = tracking.log_dataset(lake, "documents", "runs/x/documents", context="output")
        child = run.info.run_id
    with pytest.raises(RuntimeError):
        with tracking.stage_run(tr, "manual__1", W, "train_sft"):
            raise RuntimeError("boom")
    assert mlflow.active_run() is None
    runs = tr.client.search_runs([tr.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{p1}'")
    assert {r.info.run_name: r.info.status for r in runs} == {"documents": "FINISHED", "train_sft": "FAILED"}
    got = tr.client.get_run(child)
    ds = got.inputs.dataset_inputs[0]
    assert ds.dataset.name == "documents" and ds.dataset.digest == digest[:32]
    assert lake.uri_of("runs/x/documents") in ds.dataset.source
    parent = tr.client.get_run(p1)
    assert parent.data.tags["dag_run_id"] == "manual__1" and parent.data.tags["data_interval"] == str(W)
    assert parent.data.params["teachers"] == '["a", "b"]'
    tracking.finish_parent(tr, "manual__1")
    assert tr.client.get_run(p1).info.status == "FINISHED"


def test_record_logs_what_the_gpu_pod_committed(mlflow_tracking, tmp_settings):
    """Kubernetes compute: the pod's `train sft` had no MLflow run, so its seconds and scores reach MLflow
    only through the record step, read from the committed model's manifest."""
    from conf_profile.stages import manifest
    from conf_profile.stages.context import StageContext
    from conf_profile.stages.train import record

    tr = mlflow_tracking
    lake = Lake.open(str(tmp_settings.data_dir / "lake"))
    ctx = StageContext(tmp_settings, lake, W, "manual__k8s", _tr=tr)
    ctx._read["train_sft"] = manifest.Manifest("train_sft", "f" * 32, {}, {}, {})
    ctx.inputs["train_sft"] = "f" * 32
    meta = {"steps": 3000, "train_seconds": 312.5, "val_score": 0.86, "warm_start": False, "base": "tiny"}
    ctx.lake.manifest = lambda rel: {"meta": meta}  # what the pod committed
    out = record(ctx, "sft")
    assert out["train_seconds"] == 312.5
    runs = tr.client.search_runs([tr.experiment_id], filter_string="attributes.run_name = 'train_sft'")
    m = runs[0].data.metrics
    assert m["sft.train_seconds"] == 312.5 and m["sft.steps"] == 3000 and "sft.warm_start" not in m
    assert runs[0].data.params["sft.base"] == "tiny"
