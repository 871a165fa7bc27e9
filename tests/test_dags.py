"""The DAG files: they import without errors, follow the house policy (owner, retries, tags, thin files, fast
parse), wire the weekly refresh as specified, and in kubernetes mode render GPU training pods — all without a
cluster, MLflow or training."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from types import SimpleNamespace

import pytest

from tests.conftest import REPO

DAGS = {"conf_profile_refresh", "conf_profile_promote", "conf_profile_inference"}
HEAVY = ("torch", "transformers", "trl", "mlflow", "datasets", "great_expectations", "pyarrow",
         "conf_profile.stages.runner", "conf_profile.registry", "kubernetes")


def _bag(monkeypatch, tmp_path, **env):
    from airflow.dag_processing.dagbag import DagBag

    for k in [k for k in __import__("os").environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CONF_PROFILE_DATA_DIR", str(tmp_path / "data"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture()
def bag(airflow_home, monkeypatch, tmp_path):
    return _bag(monkeypatch, tmp_path)


def test_dagbag_imports_without_errors(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == DAGS


def test_policy_owner_retries_tags(bag):
    for dag in bag.dags.values():
        assert dag.tags and "conf-profile" in dag.tags, dag.dag_id
        assert dag.catchup is False and dag.max_active_runs == 1, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag.dag_id
        for t in dag.tasks:
            assert t.owner == "conf-profile", (dag.dag_id, t.task_id)
            assert t.retries is not None, (dag.dag_id, t.task_id)


def test_refresh_dag_wiring(bag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = bag.get_dag("conf_profile_refresh")
    tt = dag.timetable
    assert isinstance(tt, CronDataIntervalTimetable) and tt.expression == "0 0 * * 1"  # Monday, real interval
    assert str(getattr(tt.timezone, "name", tt.timezone)) == "UTC"
    from conf_profile.stages import registry

    t = dag.task_dict
    order = registry.refresh_task_ids()  # the registry is the one source of the stage list
    assert order == ["extract_validate", "plan_documents", "documents", "documents_done", "plan_label", "label",
                     "label_done", "aggregate", "train_sft", "train_rl", "evaluate", "register", "promote", "finish_run"]
    from conf_profile.airflow_support import GATE_TASK

    assert {GATE_TASK, *order} == set(t)
    order = [GATE_TASK, *order]
    for a, b in zip(order, order[1:], strict=False):
        assert a in t[b].upstream_task_ids, (a, b)
    assert "train_sft" in t["evaluate"].upstream_task_ids
    assert t["finish_run"].trigger_rule == "all_done" and t["label_done"].trigger_rule == "all_done"
    assert t["extract_validate"].retries == 0  # bad data is not transient
    gate = t[GATE_TASK]  # one run works at a time, backfills included (D12; tests/real_services/)
    assert gate.mode == "reschedule" and gate.pool == "conf_profile_promote" and not gate.upstream_task_ids
    label = t["label"]
    assert type(label).__name__.endswith("MappedOperator")  # .expand_kwargs over plan_label
    assert type(t["documents"]).__name__.endswith("MappedOperator")  # .expand_kwargs over plan_documents
    assert label.partial_kwargs.get("retries", dag.default_args["retries"]) >= 1
    assert dag.default_args["retry_exponential_backoff"] and dag.default_args["max_retry_delay"] > timedelta(0)
    assert t["promote"].pool == "conf_profile_promote" and t["promote"].max_active_tis_per_dag == 1
    assert t["evaluate"].trigger_rule == "none_failed_min_one_success"  # a skipped GRPO still gets evaluated
    outlets = {tid: [a.uri.rstrip("/") for a in t[tid].outlets] for tid in ("extract_validate", "register")}
    assert outlets == {"extract_validate": ["conf-profile://validated-week"],
                       "register": ["conf-profile://registered-model"]}
    params = dag.params.dump()
    from conf_profile.config import params as run_params

    assert {*run_params.BY_NAME, *run_params.CONTROLS} == set(params)
    assert params["stop_after"] == "all" and dag.params.get_param("stop_after").schema["enum"][1:] == list(
        registry.REFRESH)
    assert params["force_promote"] is False and "lexicon_all" in params["teachers"]


def test_manual_data_interval_is_one_monday_week(bag):
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable

    dag = bag.get_dag("conf_profile_refresh")
    core = coerce_to_core_timetable(dag.timetable)
    di = core.infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 16, tz="UTC"))
    assert (di.start.date().isoformat(), di.end.date().isoformat()) == ("2026-11-09", "2026-11-16")


def test_promote_and_inference_dags(bag):
    promote = bag.get_dag("conf_profile_promote")
    assert type(promote.timetable).__name__ == "NullTimetable"  # schedule=None: manual only
    assert set(promote.params.dump()) == {"action", "model_version", "reason"}
    assert promote.task_dict["promote_manual"].pool == "conf_profile_promote"
    inf = bag.get_dag("conf_profile_inference")
    assert inf.timetable.expression == "0 3 * * *"
    assert [t.task_id for t in inf.topological_sort()] == ["champion", "prepare", "profile", "profile_done"]
    assert type(inf.task_dict["profile"]).__name__.endswith("MappedOperator")  # one task per user shard
    assert "shards" in inf.params.dump()


def test_dag_files_are_thin_and_parse_fast(airflow_home):
    """Each DAG file in a fresh interpreter (Airflow's SDK imported first, as the DAG processor has it): no
    heavy module gets imported, and the file itself costs well under a second of CPU."""
    script = textwrap.dedent(f"""
        import importlib.util, json, sys, time
        import airflow.sdk, conf_profile.config  # what every DAG file needs anyway
        out = {{}}
        for name in {sorted(DAGS)!r}:
            spec = importlib.util.spec_from_file_location(name, {str(REPO / 'dags')!r} + "/" + name + ".py")
            mod = importlib.util.module_from_spec(spec)
            t = time.process_time()
            spec.loader.exec_module(mod)
            out[name] = time.process_time() - t
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"cpu_s": out, "heavy": heavy}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "CONF_PROFILE_COMPUTE__MODE": "local"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], result
    for name, cpu in result["cpu_s"].items():
        assert cpu < 1.0, (name, cpu)


def test_plugin_links_and_macros(airflow_home):
    from airflow import plugins_manager

    names = {type(link).__name__ for link in plugins_manager.get_operator_extra_links()}
    assert {"MlflowRunLink", "MlflowModelVersionLink"} <= names
    sys.path.insert(0, str(REPO / "plugins"))
    try:
        import conf_profile_plugin as plugin
    finally:
        sys.path.remove(str(REPO / "plugins"))
    import pendulum

    links = plugin.links_for({"mlflow_run_id": "abc", "experiment_id": "7", "model_name": "m x",
                              "model_version": "3"}, "http://mlflow:5000")
    assert links == {"MLflow run": "http://mlflow:5000/#/experiments/7/runs/abc",
                     "MLflow model version": "http://mlflow:5000/#/models/m%20x/versions/3"}
    assert plugin.links_for({"rows": 3}, "http://x") == {} and plugin.links_for(None, "http://x") == {}
    s, e = pendulum.datetime(2026, 11, 9, tz="UTC"), pendulum.datetime(2026, 11, 16, tz="UTC")
    assert plugin.interval(s, e) == "2026-11-09..2026-11-16"
    assert plugin.run_dir(s, e).endswith("/runs/2026-11-09_2026-11-16")
    assert plugin.ConfProfilePlugin.name == "conf_profile"
    assert {m.__name__ for m in plugin.ConfProfilePlugin.macros} >= {"run_dir", "interval", "lake_uri"}


def test_plugin_link_base_url(monkeypatch):
    sys.path.insert(0, str(REPO / "plugins"))
    try:
        import conf_profile_plugin as plugin
    finally:
        sys.path.remove(str(REPO / "plugins"))
    from conf_profile.config import Settings

    s = Settings()
    assert plugin.mlflow_ui_base(s) == "http://127.0.0.1:5000"  # embedded sqlite store: `mlflow ui`
    s.mlflow.tracking_uri = "http://mlflow:5000/"
    assert plugin.mlflow_ui_base(s) == "http://mlflow:5000"
    s.mlflow.ui_url = "https://mlflow.example.com"
    assert plugin.mlflow_ui_base(s) == "https://mlflow.example.com"


def test_kubernetes_mode_renders_gpu_training_pods(airflow_home, monkeypatch, tmp_path):
    import pendulum

    bag = _bag(monkeypatch, tmp_path, CONF_PROFILE_COMPUTE__MODE="kubernetes", CONF_PROFILE_COMPUTE__GPUS="4",
               CONF_PROFILE_COMPUTE__NODE_SELECTOR='{"pool": "h100"}', CONF_PROFILE_LAKE="s3://lake/conf-profile",
               CONF_PROFILE_COMPUTE__TRAINER_IMAGE="registry.example.com/trainer:1.2.3")
    assert bag.import_errors == {}
    dag = bag.get_dag("conf_profile_refresh")
    t = dag.task_dict
    assert {"record_train_sft", "record_train_rl"} <= set(t)
    assert "train_sft" in t["record_train_sft"].upstream_task_ids
    assert "record_train_sft" in t["train_rl"].upstream_task_ids
    for stage in ("sft", "rl"):
        op = t[f"train_{stage}"]
        assert type(op).__name__ == "KubernetesPodOperator" and op.deferrable is True
        ctx = {"data_interval_start": pendulum.datetime(2026, 11, 9, tz="UTC"),
               "data_interval_end": pendulum.datetime(2026, 11, 16, tz="UTC"), "run_id": "scheduled__x",
               "params": {"student": "/models/qwen3-0.6b", "sft_epochs": 2.0, "sft_budget": 24000, "rl_steps": 40,
                          "warm_start": "auto"}, "dag": dag,
               "task": op, "ti": SimpleNamespace(dag_id=dag.dag_id, task_id=op.task_id, map_index=-1,
                                                 try_number=1)}
        op.render_template_fields(ctx)
        pod = op.build_pod_request_obj(ctx, dry_run=True)
        c = pod.spec.containers[0]
        assert c.image == "registry.example.com/trainer:1.2.3"
        assert c.command == ["accelerate"]
        assert c.args[:3] == ["launch", "--config_file", "/opt/conf-profile/src/configs/accelerate/zero2.yaml"]
        assert c.args[3:5] == ["--num_processes", "4"]
        i = c.args.index("-m")
        assert c.args[i:i + 4] == ["-m", "conf_profile.cli", "train", stage]
        assert c.args[c.args.index("--interval") + 1] == "2026-11-09..2026-11-16"
        assert c.args[c.args.index("--lake") + 1] == "s3://lake/conf-profile"
        assert c.resources.limits["nvidia.com/gpu"] == "4"
        assert pod.spec.node_selector == {"pool": "h100"}
        assert [(x.key, x.operator, x.effect) for x in pod.spec.tolerations] == [
            ("nvidia.com/gpu", "Exists", "NoSchedule")]
        env = {e.name: e for e in c.env}
        assert env["CONF_PROFILE_TRAIN__STUDENT"].value == "/models/qwen3-0.6b"
        assert env["CONF_PROFILE_TRAIN__RL__STEPS"].value == "40"
        assert env["AWS_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "conf-profile-credentials"
        assert env["CONF_PROFILE_CONFIG"].value == "/opt/conf-profile/config.yaml"
        mount = c.volume_mounts[0]
        assert (mount.mount_path, mount.sub_path) == ("/opt/conf-profile/config.yaml", "config.yaml")
        assert pod.metadata.namespace == "conf-profile"
