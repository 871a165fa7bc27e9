"""End to end with Airflow's `dag.test()` on a tiny configuration (few users, the tiny student, a few steps):
every stage's artefact, the MLflow run and the registered version; a rerun of the same week registers no
duplicate; a backfill of an older week never moves the champion; the manual DAG promotes and rolls back; the
inference DAG skips without a champion and writes profiles with one.

The tests run in order and share one lake, MLflow store and Airflow DB (module fixture). Timings of each
`dag.test()` are printed at the end (pytest -s)."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import time
from types import SimpleNamespace

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

W1 = "2026-11-02..2026-11-09"
W2 = "2026-11-09..2026-11-16"
DAY = dt.date(2026, 11, 10)
TINY = """
simulate: {users: 200, weeks: 2, start: 2026-11-02, seed: 7}
labels: {shards: 2}
train:
  threads: 2
  sft: {epochs: 0.12, batch_size: 16, max_length: 512}
  rl: {steps: 1, num_generations: 2, prompts_per_step: 2}
  eval: {users: 8, batch_size: 8}
validation:  # one simulated day of 200 users is small: 1 bad row in 90 comments would exceed 1 %
  min_rows: {watch_events: 10, searches: 1, comments: 1, purchases: 0, profiles: 1}
  critical_max_bad_fraction: 0.05
compute: {retries: 0, inference_batch_size: 64}
"""
TIMINGS: dict[str, float] = {}
STAGE_RUNS = {"validate", "documents", "aggregate", "train_sft", "train_rl", "evaluate", "register", "promote"}


def _utc(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def _inference_date(day: dt.date) -> dt.datetime:
    """The inference DAG runs at 03:00 UTC for the previous calendar day: [day 03:00, day+1 03:00) -> `day`."""
    return _utc(day + dt.timedelta(days=1), hour=3)


@pytest.fixture(scope="module")
def e2e(airflow_home, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY)
    env = {"CONF_PROFILE_CONFIG": str(cfg), "CONF_PROFILE_DATA_DIR": str(root / "data"),
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    saved = {k: v for k, v in os.environ.items() if k.startswith("CONF_PROFILE_") or k in env}
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        del os.environ[k]
    os.environ.update(env)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool

    from conf_profile.config import Settings
    from conf_profile.registry import tracking
    from conf_profile.simulate import simulate
    from conf_profile.storage import Lake

    settings = Settings.load()
    lake = Lake.from_settings(settings)
    simulate(lake, settings.simulate)
    Pool.create_or_update_pool(name=settings.compute.promote_pool, slots=1, description="test",
                               include_deferred=False)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    state = SimpleNamespace(settings=settings, lake=lake, bag=bag, runs={},
                            tr=tracking.configure(settings), name=settings.mlflow.model_name)
    yield state
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_") or k in env]:
        del os.environ[k]
    os.environ.update(saved)
    print("\n".join(["", "dag.test() timings:"] + [f"  {k:<40} {v:6.1f} s" for k, v in TIMINGS.items()]))


def _dag_test(state, label: str, dag_id: str, logical_date: dt.datetime | None, conf: dict | None = None):
    dag = state.bag.get_dag(dag_id)
    t = time.perf_counter()
    dr = dag.test(logical_date=logical_date, run_conf=conf or {})
    TIMINGS[label] = time.perf_counter() - t
    tis = {}
    for ti in dr.get_task_instances():
        tis.setdefault(ti.task_id, []).append(str(getattr(ti.state, "value", ti.state)))
    return dr, tis


def _xcom(dr, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(XComModel.get_many(key="return_value", run_id=dr.run_id, dag_ids=dr.dag_id,
                                                 task_ids=task_id).with_only_columns(XComModel.value)).first()
    import json

    return json.loads(row.value) if isinstance(row.value, str) else row.value


def _alias(state, alias: str) -> str | None:
    from conf_profile.registry import promotion

    mv = promotion.get_alias(state.tr.client, state.name, alias)
    return None if mv is None else str(mv.version)


def _versions(state) -> list:
    return sorted(state.tr.client.search_model_versions(f"name = '{state.name}'"), key=lambda v: int(v.version))


def test_inference_skips_without_a_champion(e2e):
    dr, tis = _dag_test(e2e, "inference (no champion: skip)", "conf_profile_inference", _inference_date(DAY))
    assert tis == {"champion": ["skipped"], "prepare": ["skipped"], "profile": ["skipped"], "profile_done": ["skipped"]}
    assert not e2e.lake.exists(f"profiles/dt={DAY.isoformat()}")


def test_weekly_refresh_end_to_end(e2e):
    dr, tis = _dag_test(e2e, f"refresh {W2}", "conf_profile_refresh", _utc(dt.date(2026, 11, 16)),
                        {"force_promote": True})
    assert dr.data_interval_start.date().isoformat() == "2026-11-09"
    assert all(s == ["success"] for t, s in tis.items() if t not in ("label", "documents")), tis
    assert tis["label"] == ["success"] * 10  # 5 teachers x 2 shards, one mapped task each
    assert tis["documents"] == ["success"] * 2  # one mapped task per user shard
    e2e.runs["w2"] = dr

    lake, run = e2e.lake, "runs/2026-11-09_2026-11-16"
    for rel in ("validation/report.json", "validation/report.html", "documents/_manifest.json",
                "teachers/lexicon_all/shard-1/_manifest.json", "labels/distill/_manifest.json",
                "labels/calibration.json", "models/sft/_manifest.json", "models/rl/_manifest.json",
                "eval/student-base.json", "eval/student-sft.json", "eval/student-rl.json", "report.json",
                "plots/reliability_all.png"):
        assert lake.exists(posixpath.join(run, rel)), rel
    for table in ("profiles", "watch_events", "searches", "comments", "purchases"):
        assert lake.is_committed(f"{run}/clean/{table}")
    card = lake.read_json(f"{run}/report.json")
    names = [r["name"] for r in card["rows"]]
    assert {"vote:calibrated", "student:base", "student:sft", "student:rl"} <= set(names)

    # MLflow: one parent for the DAG run, a child per stage, lineage, the card and the plots.
    client = e2e.tr.client
    parents = client.search_runs([e2e.tr.experiment_id], filter_string=f"tags.dag_run_id = '{dr.run_id}' and "
                                 "tags.`conf_profile.role` = 'dag_run'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["data_interval"] == W2 and parent.data.params["force_promote"] == "True"
    assert "student.f1" in parent.data.metrics and "student.f1.gender" in parent.data.metrics
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} >= {"raw", "clean", "documents", "distill", "gold"}
    children = client.search_runs([e2e.tr.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {c.info.run_name for c in children} == STAGE_RUNS
    ev = next(c for c in children if c.info.run_name == "evaluate")
    arts = {a.path for a in client.list_artifacts(ev.info.run_id)}
    assert {"report_card.json", "report_card_table.json", "plots"} <= arts
    reg_run = next(c for c in children if c.info.run_name == "register")  # the version's run: its own diagram
    assert any(a.path.startswith("plots/reliability_student-") for a in
               client.list_artifacts(reg_run.info.run_id, "plots"))
    pro_run = next(c for c in children if c.info.run_name == "promote")
    assert "plots/champion_history.png" in {a.path for a in client.list_artifacts(pro_run.info.run_id, "plots")}
    assert "model_hash" in _versions(e2e)[0].tags  # the registered artefacts' content hash is part of the key
    va = next(c for c in children if c.info.run_name == "validate")
    assert {"validation/report.json", "validation/report.html"} <= {
        a.path for a in client.list_artifacts(va.info.run_id, "validation")}

    # Registry: version 1 with its tags; first model, forced -> champion and challenger.
    versions = _versions(e2e)
    assert [str(v.version) for v in versions] == ["1"]
    tags = versions[0].tags
    assert tags["data_interval"] == W2 and tags["dag_run_id"] == dr.run_id
    for key in ("git_sha", "code_version", "teacher_ids", "dataset_hashes", "dataset_hash", "config_hash",
                "metric.f1", "metric.f1.gender", "promotion_decision", "promotion_reasons"):
        assert tags.get(key), key
    assert "lexicon_all" in tags["teacher_ids"] and "distill" in tags["dataset_hashes"]
    assert _alias(e2e, "champion") == "1" and _alias(e2e, "challenger") == "1"

    # The plugin's links resolve from the register task's XCom.
    reg = _xcom(dr, "register")
    assert reg["model_version"] == "1" and reg["mlflow_run_id"] == parent.info.run_id
    import sys

    sys.path.insert(0, str(REPO / "plugins"))
    try:
        import conf_profile_plugin as plugin
    finally:
        sys.path.remove(str(REPO / "plugins"))
    ti = next(t for t in dr.get_task_instances() if t.task_id == "register")
    assert plugin.MlflowRunLink().get_link(None, ti_key=ti.key).endswith(f"/runs/{parent.info.run_id}")
    assert plugin.MlflowModelVersionLink().get_link(None, ti_key=ti.key).endswith("/versions/1")


def test_rerun_of_the_same_week_registers_no_duplicate(e2e):
    dr, tis = _dag_test(e2e, f"refresh {W2} (rerun)", "conf_profile_refresh", _utc(dt.date(2026, 11, 16)))
    assert all(set(s) == {"success"} for s in tis.values()), tis
    reg = _xcom(dr, "register")
    assert reg["model_version"] == "1" and reg["reused"] is True
    assert [str(v.version) for v in _versions(e2e)] == ["1"]
    assert _xcom(dr, "promote")["decision"] == "champion" and _alias(e2e, "champion") == "1"


def test_backfill_of_an_older_week_never_moves_the_champion(e2e):
    dr, tis = _dag_test(e2e, f"refresh {W1} (backfill)", "conf_profile_refresh", _utc(dt.date(2026, 11, 9)),
                        {"force_promote": True})
    assert all(set(s) == {"success"} for s in tis.values()), tis
    reg = _xcom(dr, "register")
    assert reg["model_version"] == "2" and not reg["reused"]
    promo = _xcom(dr, "promote")
    assert promo["promoted"] is False and promo["champion"] == "1"
    assert _alias(e2e, "champion") == "1" and _alias(e2e, "challenger") == "2"
    tags = e2e.tr.client.get_model_version(e2e.name, "2").tags
    assert tags["data_interval"] == W1 and tags["promotion_decision"] == "challenger"
    assert "older than champion" in tags["promotion_reasons"]


def test_promote_dag_rolls_back_and_promotes(e2e):
    def manual(label: str, **conf):
        return _dag_test(e2e, f"promote DAG: {label}", "conf_profile_promote", None, conf)

    dr, tis = manual("rollback to v2", action="rollback", model_version="2", reason="test: named rollback")
    assert tis == {"promote_manual": ["success"]} and _alias(e2e, "champion") == "2"
    dr, tis = manual("promote v1", action="promote", model_version="1", reason="test: newest week again")
    assert tis == {"promote_manual": ["success"]} and _alias(e2e, "champion") == "1"
    assert e2e.tr.client.get_model_version(e2e.name, "1").tags["previous_champion"] == "2"
    # Promoting the older week's model over a newer champion is refused (that must be a rollback).
    dr, tis = manual("promote v2 (refused)", action="promote", model_version="2", reason="test: refused")
    assert tis == {"promote_manual": ["failed"]} and _alias(e2e, "champion") == "1"
    # Rollback without a version: back to the previous champion recorded on v1.
    dr, tis = manual("rollback to previous", action="rollback", model_version="", reason="test: undo")
    assert tis == {"promote_manual": ["success"]} and _alias(e2e, "champion") == "2"
    assert e2e.tr.client.get_model_version(e2e.name, "1").tags["rolled_back"] == "true"


def test_inference_writes_profiles_with_the_champion(e2e):
    import pyarrow.compute as pc

    champion = _alias(e2e, "champion")
    dr, tis = _dag_test(e2e, f"inference {DAY}", "conf_profile_inference", _inference_date(DAY))
    assert tis == {"champion": ["success"], "prepare": ["success"], "profile": ["success"] * 2,
                   "profile_done": ["success"]}  # one profile task per user shard, one commit
    rel = f"profiles/dt={DAY.isoformat()}"
    assert e2e.lake.is_committed(rel)
    table = e2e.lake.read_committed(rel)
    assert table.column_names == ["user_id", "attribute", "label", "confidence", "model_version"]
    assert set(pc.unique(table["model_version"]).to_pylist()) == {champion}
    docs = e2e.lake.read_committed("runs/2026-11-10_2026-11-11/documents")
    n_attrs = len(set(table["attribute"].to_pylist()))
    assert table.num_rows == docs.num_rows * n_attrs and n_attrs == 8
    out = _xcom(dr, "profile_done")
    assert out["users"] == docs.num_rows and out["model_version"] == champion
