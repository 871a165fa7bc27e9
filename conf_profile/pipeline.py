"""One function per DAG task. The DAGs (dags/) only call these; `conf-profile run --no-airflow` calls them too.

Contract of every task function:
- arguments are plain values: `interval` as `START..END` (or `latest`), `config` (a YAML path or None),
  `lake` (a URI or None: settings/env decide), `dag_run_id`, and `overrides` (the DAG's Params: teachers,
  shards, student, sft_epochs, rl_steps, stop_after, force_promote);
- data moves through the lake by URI; the return value is a small JSON-able dict (it becomes the XCom);
- MLflow: every task of one DAG run attaches to the same parent run (found by its dag_run_id tag) and logs
  into a child run named after the stage;
- a stage whose module is not importable raises StageUnavailable, a stage after `stop_after` raises
  StageSkipped; the Airflow wrapper turns both into a skip, the CLI reports them as "not run".
"""

from __future__ import annotations

import importlib
import json
import logging
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conf_profile.config import Settings
from conf_profile.errors import ConfigError, ConfProfileError, LakeError, ValidationFailed
from conf_profile.intervals import Interval
from conf_profile.storage import Lake

log = logging.getLogger("conf_profile.pipeline")

STAGES = ("validate", "documents", "label", "aggregate", "train_sft", "train_rl", "evaluate", "register", "promote")
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "validate": ("conf_profile.data.validate",),
    "documents": ("conf_profile.data.documents",),
    "label": ("conf_profile.teachers.labelling",),
    "aggregate": ("conf_profile.labels",),
    "train_sft": ("conf_profile.train.sft",),
    "train_rl": ("conf_profile.train.rl",),
    "evaluate": ("conf_profile.train.evaluate", "conf_profile.evaluate.report"),
    "register": ("conf_profile.registry.models",),
    "promote": ("conf_profile.registry.promotion",),
}
OVERRIDE_KEYS = ("teachers", "shards", "student", "sft_epochs", "rl_steps", "stop_after", "force_promote")


class StageUnavailable(ConfProfileError):
    """The stage's code is not installed/importable (not built yet, or a missing optional dependency)."""


class StageSkipped(ConfProfileError):
    """The stage was not run on purpose (stop_after, rl_steps=0)."""

    exit_code = 0


class NothingToDo(ConfProfileError):
    """Nothing to do for this run (e.g. no champion to run inference with)."""

    exit_code = 0


# ---- progress listeners (the CLI prints stage lines as tasks finish) ----------------------------------------
_listeners: list[Callable[[str, str, dict], None]] = []


def add_listener(fn: Callable[[str, str, dict], None]) -> None:
    _listeners.append(fn)


def remove_listener(fn: Callable[[str, str, dict], None]) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def _emit(stage: str, status: str, out: dict) -> None:
    for fn in list(_listeners):
        try:
            fn(stage, status, out)
        except Exception:  # noqa: BLE001 - a broken printer must not fail a stage
            log.debug("listener failed", exc_info=True)


def available_stages() -> dict[str, str | None]:
    """Stage -> None when importable, else the import error (what `run` says about stages it cannot run)."""
    out: dict[str, str | None] = {}
    for stage, modules in STAGE_MODULES.items():
        out[stage] = None
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                out[stage] = f"{name}: {exc}"
                break
    return out


def _require(stage: str) -> None:
    for name in STAGE_MODULES[stage]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise StageUnavailable(f"Stage {stage} is not available ({name}: {exc}).",
                                   "Install the package with its extras (`make setup`).") from None


# ---- context ---------------------------------------------------------------------------------------------------
@dataclass
class Ctx:
    settings: Settings
    lake: Lake
    interval: Interval
    dag_run_id: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def run_dir(self, *parts: str) -> str:
        return Lake.run_dir(self.interval, *parts)


def load_settings(config: str | None = None, lake: str | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Settings with the DAG's Params applied (None values are ignored), and the compute mode's teacher
    routing: in kubernetes mode GPU teachers (vllm/hf backends) are served by the vLLM service and reached
    as OpenAI-compatible teachers at compute.vllm_base_url."""
    from conf_profile.config import params

    settings = Settings.load(config, lake=lake)
    params.apply(settings, {k: v for k, v in (overrides or {}).items() if k in params.BY_NAME})
    c = settings.compute
    if c.mode == "kubernetes" and c.vllm_base_url:
        from conf_profile.config.teachers import as_openai

        routed = [as_openai(t, c.vllm_base_url) for t in settings.labels.teachers]
        settings.labels.teachers = routed
    return settings


def context(interval: str, config: str | None = None, lake: str | None = None, dag_run_id: str | None = None,
            overrides: dict[str, Any] | None = None) -> Ctx:
    settings = load_settings(config, lake, overrides)
    lk = Lake.from_settings(settings)
    if interval == "latest":
        from conf_profile.data.extract import latest_interval

        iv = latest_interval(lk)
    else:
        iv = Interval.parse(interval)
    return Ctx(settings, lk, iv, dag_run_id or f"adhoc__{iv.key}", dict(overrides or {}))


def _check_stop(stage: str, c: Ctx) -> None:
    stop = c.overrides.get("stop_after")
    if stop and stop not in ("all", "") and stop in STAGES and STAGES.index(stage) > STAGES.index(stop):
        raise StageSkipped(f"Stage {stage} not run: the run stops after {stop}.", "Unset stop_after to run it.")


def _start(stage: str, interval: str, config, lake, dag_run_id, overrides) -> Ctx:
    c = context(interval, config, lake, dag_run_id, overrides)
    _check_stop(stage, c)
    _require(stage)
    return c


def _tracking(c: Ctx):
    from conf_profile.registry import tracking

    tr = tracking.configure(c.settings)
    tracking.parent_run(tr, c.dag_run_id, c.interval, params=run_params(c))
    return tr


def run_params(c: Ctx) -> dict[str, Any]:
    from conf_profile.registry import tracking

    s = c.settings
    return {"interval": str(c.interval), "dag_run_id": c.dag_run_id, "lake": c.lake.uri,
            "teachers": [t.name for t in s.labels.teachers], "shards": s.labels.shards,
            "student": s.train.student, "sft_epochs": s.train.sft.epochs, "rl_steps": s.train.rl.steps,
            "force_promote": bool(c.overrides.get("force_promote", False)), "compute_mode": s.compute.mode,
            "code_version": tracking.code_version(), "git_sha": tracking.git_sha(),
            "config_hash": tracking.config_hash(s)[:16]}


def _finish(stage: str, out: dict) -> dict:
    out = json.loads(json.dumps(out, default=str))  # XCom-safe: plain JSON types only
    _emit(stage, "done", out)
    return out


# ---- stage tasks ----------------------------------------------------------------------------------------------
def extract_validate(interval: str, config: str | None = None, lake: str | None = None,
                     dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """Validate the interval's raw partitions (GX); the report goes to the lake and to MLflow. A critical
    failure raises ValidationFailed (not retryable) after the report is logged."""
    c = _start("validate", interval, config, lake, dag_run_id, overrides)
    from conf_profile.data.validate import validate_interval
    from conf_profile.registry import tracking

    tr = _tracking(c)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "validate"):
        raw = tracking.raw_hash(c.lake, c.interval)
        tracking.log_dataset(c.lake, "raw", "raw", context="raw", digest=raw)
        try:
            summary = validate_interval(c.lake, c.interval, c.settings)
        except ValidationFailed as exc:
            _log_validation(c, exc.report or {})
            raise
        _log_validation(c, summary)
    tables = {n: {k: t.get(k) for k in ("rows_in", "rows_kept", "rows_quarantined")}
              for n, t in summary.get("tables", {}).items()}
    return _finish("validate", {
        "stage": "validate", "interval": str(c.interval), "success": bool(summary.get("success")),
        "tables": tables, "rows_in": sum(t["rows_in"] or 0 for t in tables.values()),
        "rows_kept": sum(t["rows_kept"] or 0 for t in tables.values()),
        "rows_quarantined": sum(t["rows_quarantined"] or 0 for t in tables.values()),
        "warnings": len(summary.get("warnings", [])), "report_uri": summary.get("report_uri"),
        "html_uri": summary.get("html_uri"), "clean_dir": summary.get("clean_dir"), "raw_hash": raw[:16],
        "summary_text": _validation_text(summary)})


def _validation_text(summary: dict) -> str:
    try:
        from conf_profile.data.validation.report import format_summary

        return format_summary(summary)
    except Exception:  # noqa: BLE001 - the text is a convenience for the CLI
        return ""


def _log_validation(c: Ctx, summary: dict) -> None:
    import mlflow

    from conf_profile.registry import tracking

    metrics = {}
    for name, t in (summary.get("tables") or {}).items():
        for k in ("rows_in", "rows_kept", "rows_quarantined"):
            if isinstance(t.get(k), int | float):
                metrics[f"validation.{name}.{k}"] = t[k]
    if metrics:
        mlflow.log_metrics(metrics)
    mlflow.set_tag("validation_success", str(bool(summary.get("success"))).lower())
    vdir = c.run_dir("validation")
    for rel in c.lake.list_files(vdir):
        base = posixpath.basename(rel)
        if rel.endswith((".json", ".html")) and not base.startswith((".", "_")) and "/quarantine/" not in rel:
            sub = posixpath.dirname(posixpath.relpath(rel, vdir))
            tracking.log_lake_file(c.lake, rel, posixpath.join("validation", sub) if sub else "validation")


def build_documents(interval: str, config: str | None = None, lake: str | None = None,
                    dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    c = _start("documents", interval, config, lake, dag_run_id, overrides)
    import mlflow

    from conf_profile.data.documents import build_documents as build
    from conf_profile.registry import tracking

    tr = _tracking(c)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "documents"):
        tracking.log_dataset(c.lake, "clean", c.run_dir("clean"), context="input")
        summary = build(c.lake, c.interval, c.settings)
        digest = tracking.log_dataset(c.lake, "documents", c.run_dir("documents"), context="output")
        mlflow.log_metrics({k: float(summary[k]) for k in ("documents", "median_chars", "pii_redactions",
                                                           "truncated_users") if isinstance(summary.get(k), int | float)})
    return _finish("documents", {
        "stage": "documents", "interval": str(c.interval), "documents": summary.get("documents"),
        "median_chars": summary.get("median_chars"), "pii_redactions": summary.get("pii_redactions"),
        "truncated_users": summary.get("truncated_users"), "path": summary.get("path"),
        "documents_hash": digest[:16]})


def plan_label_shards(interval: str, config: str | None = None, lake: str | None = None,
                      dag_run_id: str | None = None, overrides: dict | None = None) -> list[dict]:
    """The (teacher, shard) pairs the label task is mapped over."""
    c = _start("label", interval, config, lake, dag_run_id, overrides)
    plan = [{"teacher": t.name, "shard": s} for t in c.settings.labels.teachers
            for s in range(c.settings.labels.shards)]
    if not plan:
        raise ConfigError("No teachers are configured.", "Add at least one entry under labels.teachers.")
    return plan


def label_shard(interval: str, teacher: str, shard: int, config: str | None = None, lake: str | None = None,
                dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """One teacher over one shard of the documents (resumable: a finished shard is skipped)."""
    c = _start("label", interval, config, lake, dag_run_id, overrides)
    from conf_profile.teachers.labelling import label_shard as run_shard

    r = run_shard(c.lake, c.interval, c.settings, teacher, int(shard))
    out = {k: r.get(k) for k in ("teacher", "shard", "status", "users", "rows", "errors", "seconds", "path")}
    out.update({"stage": "label", "interval": str(c.interval), "teacher": teacher, "shard": int(shard)})
    return _finish("label", out)


def aggregate(interval: str, config: str | None = None, lake: str | None = None,
              dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    c = _start("aggregate", interval, config, lake, dag_run_id, overrides)
    import mlflow

    from conf_profile.labels import aggregate_interval
    from conf_profile.registry import tracking

    tr = _tracking(c)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "aggregate",
                            params={"teachers": [t.name for t in c.settings.labels.teachers],
                                    "shards": c.settings.labels.shards}):
        tracking.log_dataset(c.lake, "documents", c.run_dir("documents"), context="input")
        summary = aggregate_interval(c.lake, c.interval, c.settings)
        tracking.log_dataset(c.lake, "distill", c.run_dir("labels", "distill"), context="output")
        metrics = {k: float(summary[k]) for k in ("users", "eval_users", "answers", "distill_records",
                                                  "capped_out", "rl_prompts", "calibration_points")
                   if isinstance(summary.get(k), int | float)}
        for attr, v in (summary.get("coverage") or {}).items():
            if isinstance(v, int | float):
                metrics[f"label_coverage.{attr}"] = v
        mlflow.log_metrics(metrics)
        mlflow.set_tag("calibration", str(summary.get("calibration")))
        tracking.log_lake_file(c.lake, c.run_dir("labels", "calibration.json"), "labels")
    return _finish("aggregate", {
        "stage": "aggregate", "interval": str(c.interval), "users": summary.get("users"),
        "teachers": summary.get("teachers"), "distill_records": summary.get("distill_records"),
        "rl_prompts": summary.get("rl_prompts"), "calibration": summary.get("calibration"),
        "missing_teachers": summary.get("missing_teachers"), "paths": summary.get("paths")})


def train_sft(interval: str, config: str | None = None, lake: str | None = None,
              dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    c = _start("train_sft", interval, config, lake, dag_run_id, overrides)
    from conf_profile.registry import tracking
    from conf_profile.train.sft import train_sft as run

    tr = _tracking(c)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "train_sft"):
        tracking.log_dataset(c.lake, "distill", c.run_dir("labels", "distill"), context="training")
        r = run(c.lake, c.interval, c.settings)
    return _finish("train_sft", _train_out("train_sft", c, r))


def train_rl(interval: str, config: str | None = None, lake: str | None = None,
             dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    c = _start("train_rl", interval, config, lake, dag_run_id, overrides)
    if c.settings.train.rl.steps <= 0:
        raise StageSkipped("Stage train_rl not run: rl_steps is 0.", "Set rl_steps > 0 to run GRPO.")
    from conf_profile.registry import tracking
    from conf_profile.train.rl import train_rl as run

    tr = _tracking(c)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "train_rl"):
        tracking.log_dataset(c.lake, "rl_prompts", c.run_dir("labels", "rl_prompts"), context="training")
        r = run(c.lake, c.interval, c.settings)
    return _finish("train_rl", _train_out("train_rl", c, r))


def record_training(stage: str, interval: str, config: str | None = None, lake: str | None = None,
                    dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """Kubernetes mode: the pod trained (`conf-profile train <stage>`); log what it committed to MLflow."""
    task = f"train_{stage}"
    c = _start(task, interval, config, lake, dag_run_id, overrides)
    import mlflow

    from conf_profile.registry import tracking
    from conf_profile.train import student

    rel = student.model_dir(c.interval, stage)
    meta = c.lake.manifest(rel).get("meta", {})
    tr = _tracking(c)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, task, params={"compute": "kubernetes"}):
        mlflow.log_params({f"{stage}.{k}": tracking._param(v) for k, v in meta.items()})
    return _finish(task, {"stage": task, "interval": str(c.interval), "path": c.lake.uri_of(rel),
                          **{k: v for k, v in meta.items() if isinstance(v, int | float | str)}})


def _train_out(stage: str, c: Ctx, r: dict) -> dict:
    keep = ("path", "steps", "train_users", "final_loss", "seconds", "epochs", "prompts_kept", "resumed_from")
    return {"stage": stage, "interval": str(c.interval), **{k: r.get(k) for k in keep if k in r}}


def evaluate(interval: str, config: str | None = None, lake: str | None = None,
             dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """Score base/SFT/RL students (and the current champion, on the same gold users, for the gate), build the
    report card, log card, table, per-attribute metrics and reliability diagrams."""
    c = _start("evaluate", interval, config, lake, dag_run_id, overrides)
    import mlflow

    from conf_profile.evaluate.report import report_interval
    from conf_profile.registry import tracking
    from conf_profile.train import student
    from conf_profile.train.evaluate import evaluate_model

    tr = _tracking(c)
    evaluated: list[str] = []
    champion_version: str | None = None
    champion_error: str | None = None
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "evaluate"):
        tracking.log_dataset(c.lake, "gold", "gold", context="evaluation")
        for stage in student.STAGES:
            committed = c.lake.is_committed(student.model_dir(c.interval, stage))
            if committed or (stage == "base" and c.settings.train.student not in student.PRESETS):
                evaluate_model(c.lake, c.interval, c.settings, stage, f"student:{stage}")
                evaluated.append(f"student:{stage}")
        if not any(n in evaluated for n in ("student:sft", "student:rl")):
            raise LakeError(f"No trained student for {c.interval} (no committed models/sft or models/rl).",
                            "Run the training stages first.")
        for rel in c.lake.list_files(c.run_dir("eval"), suffix=".json"):
            if posixpath.basename(rel).startswith("champion-"):
                c.lake.delete(rel)  # a stale comparison from an earlier attempt
        champ = _champion(tr, c.settings)
        if champ is not None:
            champion_version = str(champ.version)
            try:
                evaluate_model(c.lake, c.interval, c.settings, f"models:/{c.settings.mlflow.model_name}/"
                               f"{champion_version}", f"champion:v{champion_version}")
                evaluated.append(f"champion:v{champion_version}")
            except Exception as exc:  # noqa: BLE001 - the gate then refuses the comparison, and says why
                champion_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not re-evaluate champion v%s: %s", champion_version, champion_error)
                mlflow.set_tag("champion_reeval_error", champion_error[:500])
        card = report_interval(c.lake, c.interval, c.settings)
        mlflow.log_dict(card, "report_card.json")
        mlflow.log_table(_card_table(card), artifact_file="report_card_table.json")
        tracking.log_lake_folder(c.lake, c.run_dir("plots"), "plots", suffix=".png")
        metrics = card_metrics(card)
        mlflow.log_metrics(metrics)
        candidate = _candidate_name(card)
        cand_row = next((r for r in card["rows"] if r["name"] == candidate), None)
        if cand_row:
            parent = tracking.find_parent(tr, c.dag_run_id)
            tracking.log_parent_metrics(tr, parent, row_metrics(cand_row, prefix="student"))
            tracking.log_parent_metrics(tr, parent, metrics)
    return _finish("evaluate", {
        "stage": "evaluate", "interval": str(c.interval), "eval_users": card.get("eval_users"),
        "report_uri": c.lake.uri_of(c.run_dir("report.json")), "candidate": candidate,
        "rows": [{k: r.get(k) for k in ("name", "f1", "coverage", "ece", "valid_rate")} for r in card["rows"]],
        "evaluated": evaluated, "champion_evaluated": champion_version if champion_error is None else None,
        "champion_error": champion_error})


def _champion(tr, settings: Settings):
    from conf_profile.registry import promotion

    try:
        return promotion.get_alias(tr.client, settings.mlflow.model_name, promotion.CHAMPION)
    except Exception:  # noqa: BLE001 - no registered model yet
        return None


def _candidate_name(card: dict) -> str | None:
    names = {r["name"] for r in card.get("rows", [])}
    return next((n for n in ("student:rl", "student:sft") if n in names), None)


def _card_table(card: dict) -> dict[str, list]:
    rows = card.get("rows", [])
    attrs = sorted({a for r in rows for a in (r.get("per_attribute") or {})})
    table: dict[str, list] = {k: [] for k in ("name", "f1", "coverage", "ece", "valid_rate")}
    for a in attrs:
        table[f"f1.{a}"] = []
    for r in rows:
        for k in ("name", "f1", "coverage", "ece", "valid_rate"):
            table[k].append(r.get(k))
        for a in attrs:
            table[f"f1.{a}"].append(((r.get("per_attribute") or {}).get(a) or {}).get("f1"))
    return table


def row_metrics(row: dict, prefix: str | None = None) -> dict[str, float]:
    from conf_profile.registry.tracking import metric_key

    p = metric_key(prefix if prefix is not None else row["name"])
    out: dict[str, float] = {}
    for k in ("f1", "coverage", "ece", "valid_rate"):
        if isinstance(row.get(k), int | float):
            out[f"{p}.{k}"] = float(row[k])
    for attr, m in (row.get("per_attribute") or {}).items():
        for k in ("f1", "coverage", "ece"):
            if isinstance((m or {}).get(k), int | float):
                out[f"{p}.{k}.{attr}"] = float(m[k])
    return out


def card_metrics(card: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in card.get("rows", []):
        out.update(row_metrics(row))
    return out


def _lineage_hashes(c: Ctx) -> dict[str, str]:
    from conf_profile.registry import tracking

    return {"raw": tracking.raw_hash(c.lake, c.interval),
            "clean": tracking.dataset_hash(c.lake, c.run_dir("clean")),
            "documents": tracking.dataset_hash(c.lake, c.run_dir("documents")),
            "distill": tracking.dataset_hash(c.lake, c.run_dir("labels", "distill")),
            "gold": tracking.dataset_hash(c.lake, "gold")}


def registration_key(c: Ctx, hashes: dict[str, str] | None = None) -> dict[str, str]:
    from conf_profile.registry import tracking

    hashes = hashes or _lineage_hashes(c)
    return {"data_interval": str(c.interval), "code_version": tracking.code_version(),
            "dataset_hash": tracking.combined_hash(hashes)[:32], "config_hash": tracking.config_hash(c.settings)[:32]}


def register(interval: str, config: str | None = None, lake: str | None = None,
             dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """Log the student (RL if trained, else SFT) as an MLflow model and register it as a version, idempotently."""
    c = _start("register", interval, config, lake, dag_run_id, overrides)
    import mlflow

    from conf_profile.registry import models, tracking
    from conf_profile.train import runtime, student

    stage = next((s for s in ("rl", "sft") if c.lake.is_committed(student.model_dir(c.interval, s))), None)
    if stage is None:
        raise LakeError(f"No trained student to register for {c.interval}.", "Run the training stages first.")
    card = c.lake.read_json(c.run_dir("report.json"))
    row = next((r for r in card["rows"] if r["name"] == f"student:{stage}"), None)
    if row is None:
        raise LakeError(f"The report card of {c.interval} has no student:{stage} row.", "Run the evaluate stage first.")
    hashes = _lineage_hashes(c)
    key = registration_key(c, hashes)
    tags = {"dag_run_id": c.dag_run_id, "git_sha": tracking.git_sha(),
            "teacher_ids": ",".join(t.name for t in c.settings.labels.teachers),
            "dataset_hashes": json.dumps({k: v[:16] for k, v in hashes.items()}, sort_keys=True),
            "gold_hash": hashes["gold"][:32], "student_stage": stage, "student_base": c.settings.train.student,
            "model_lake_uri": c.lake.uri_of(student.model_dir(c.interval, stage)),
            "eval_users": str(card.get("eval_users")), **version_metric_tags(row)}
    tr = _tracking(c)
    parent = tracking.find_parent(tr, c.dag_run_id)
    tags["mlflow_parent_run_id"] = parent or ""
    name = c.settings.mlflow.model_name
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "register") as run:
        for ds_name, rel, ctx in (("raw", "raw", "raw"), ("clean", c.run_dir("clean"), "input"),
                                  ("documents", c.run_dir("documents"), "input"),
                                  ("distill", c.run_dir("labels", "distill"), "training"),
                                  ("gold", "gold", "evaluation")):
            tracking.log_dataset(c.lake, ds_name, rel, context=ctx, digest=hashes[ds_name])
            if parent:  # the DAG run's parent shows the whole lineage too
                tracking.log_dataset(c.lake, ds_name, rel, context=ctx, digest=hashes[ds_name], parent_run_id=parent)
        mlflow.set_tags({"dataset_hashes": tags["dataset_hashes"], **key})

        def log_model():
            local = c.lake.local_dir(student.model_dir(c.interval, stage),
                                     runtime.work_dir(c.settings, c.interval, f"register-{stage}"))
            return models.log_student(local, c.settings.taxonomy_path, c.settings.compute.inference_batch_size)

        result = models.register_student(tr.client, name, key, tags, log_model, run_id=run.info.run_id)
        if result["reused"]:
            tr.client.set_model_version_tag(name, result["model_version"], "last_reused_by", c.dag_run_id)
        mlflow.set_tags({"model_version": result["model_version"], "model_reused": str(result["reused"]).lower()})
        child = run.info.run_id
    if parent:
        tr.client.set_tag(parent, "model_version", result["model_version"])
    return _finish("register", {
        "stage": "register", "interval": str(c.interval), "model_name": name,
        "model_version": result["model_version"], "reused": result["reused"], "student_stage": stage,
        "model_uri": f"models:/{name}/{result['model_version']}", "mlflow_run_id": parent,
        "mlflow_child_run_id": child, "experiment_id": tr.experiment_id, "tracking_uri": tr.tracking_uri,
        "dataset_hash": key["dataset_hash"][:16], "code_version": key["code_version"]})


def version_metric_tags(row: dict) -> dict[str, str]:
    tags = {}
    for k in ("f1", "ece", "coverage", "valid_rate"):
        if row.get(k) is not None:
            tags[f"metric.{k}"] = str(row[k])
    for attr, m in (row.get("per_attribute") or {}).items():
        for k in ("f1", "ece", "coverage"):
            if (m or {}).get(k) is not None:
                tags[f"metric.{k}.{attr}"] = str(m[k])
    return tags


def promote(interval: str, model_version: str | None = None, force: bool | None = None,
            config: str | None = None, lake: str | None = None, dag_run_id: str | None = None,
            overrides: dict | None = None) -> dict:
    """The gate (registry.promotion): challenger always, champion when the rules allow. Ends the parent run."""
    c = _start("promote", interval, config, lake, dag_run_id, overrides)
    import mlflow

    from conf_profile.registry import models, promotion, tracking

    force = bool(c.overrides.get("force_promote", False)) if force is None else bool(force)
    name = c.settings.mlflow.model_name
    tr = _tracking(c)
    if model_version is None:
        mv = models.find_version(tr.client, name, registration_key(c))
        if mv is None:
            raise LakeError(f"No registered version of {name} for {c.interval} with this code and data.",
                            "Run the register stage first.")
        model_version = str(mv.version)
    card = c.lake.read_json(c.run_dir("report.json"))
    mv = tr.client.get_model_version(name, str(model_version))
    stage = (mv.tags or {}).get("student_stage", "rl")
    row = next((r for r in card["rows"] if r["name"] == f"student:{stage}"), None) or promotion.version_row(mv) or {}
    reevaluated = {}
    for r in card["rows"]:
        m = re.fullmatch(r"champion:v(\d+)", r["name"])
        if m:
            reevaluated[m.group(1)] = r
    cand = promotion.Candidate(str(model_version), c.interval, row, (mv.tags or {}).get("gold_hash"))
    parent = tracking.find_parent(tr, c.dag_run_id)
    with tracking.stage_run(tr, c.dag_run_id, c.interval, "promote", params={"force_promote": force}):
        result = promotion.promote(tr.client, name, cand, c.settings.mlflow.promotion, force=force,
                                   reevaluated=reevaluated, actor=f"dag_run:{c.dag_run_id}", run_id=parent)
        mlflow.log_dict(result, "promotion.json")
        mlflow.set_tags({"promotion_decision": result["decision"], "model_version": str(model_version)})
    if parent:
        tr.client.set_tag(parent, "promotion_decision", result["decision"])
        tr.client.set_tag(parent, "promotion_reasons", "; ".join(result["reasons"])[:4900])
    tracking.finish_parent(tr, c.dag_run_id, "FINISHED")
    log.info("promotion decision for %s v%s: %s — %s", name, model_version, result["decision"],
             "; ".join(result["reasons"]))
    return _finish("promote", {
        "stage": "promote", "interval": str(c.interval), "model_name": name, "model_version": str(model_version),
        "promoted": result["promoted"], "decision": result["decision"], "reasons": result["reasons"],
        "forced": result["forced"], "champion": _version_of(_champion(tr, c.settings)),
        "champion_before": result.get("champion_before"), "mlflow_run_id": parent,
        "experiment_id": tr.experiment_id, "tracking_uri": tr.tracking_uri})


def promote_manual(model_version: str | None, action: str = "promote", reason: str = "",
                   config: str | None = None, lake: str | None = None, dag_run_id: str | None = None,
                   actor: str | None = None) -> dict:
    """Manual DAG / CLI: promote a named version (metric checks overridden, interval rule kept) or roll back
    (to the previous champion, or to a named version)."""
    from conf_profile.registry import promotion, tracking

    settings = load_settings(config, lake)
    tr = tracking.configure(settings)
    name = settings.mlflow.model_name
    who = actor or (f"dag_run:{dag_run_id}" if dag_run_id else "manual")
    version = str(model_version).strip() if model_version not in (None, "") else None
    if action == "promote":
        if version is None:
            raise ConfigError("promote needs a model_version.", "Pass the version number to promote.")
        result = promotion.promote_manual(tr.client, name, version, settings.mlflow.promotion, reason or "manual",
                                          actor=who, run_id=dag_run_id)
    elif action == "rollback":
        result = promotion.rollback(tr.client, name, version, reason, actor=who, run_id=dag_run_id)
    else:
        raise ConfigError(f"Unknown action {action!r}.", "Use promote or rollback.")
    result = {"stage": "promote_manual", "action": action, "model_name": name, "reason": reason,
              "experiment_id": tr.experiment_id, "tracking_uri": tr.tracking_uri,
              **{k: v for k, v in result.items() if k not in ("checks",)}}
    result["champion"] = _version_of(_champion(tr, settings))
    return _finish("promote_manual", result)


def mark_failed(dag_run_id: str, config: str | None = None, lake: str | None = None) -> None:
    """DAG failure callback: end the parent MLflow run as FAILED (so the UI does not show it running)."""
    from conf_profile.registry import tracking

    tr = tracking.configure(load_settings(config, lake))
    tracking.finish_parent(tr, dag_run_id, "FAILED")


def _version_of(mv: Any) -> str | None:
    return None if mv is None else str(mv.version)


# ---- daily inference ------------------------------------------------------------------------------------------
def infer_champion(config: str | None = None, lake: str | None = None, dag_run_id: str | None = None) -> dict:
    """Which model the inference run uses (pinned by version, so a promotion meanwhile does not mix models)."""
    from conf_profile.registry import tracking

    settings = load_settings(config, lake)
    tr = tracking.configure(settings)
    name = settings.mlflow.model_name
    mv = _champion(tr, settings)
    if mv is None:
        raise NothingToDo(f"No champion for {name} in MLflow ({tr.tracking_uri}): skipping today's profiles.",
                          "Run conf_profile_refresh until a version passes the gate, or promote one with "
                          "conf_profile_promote.")
    return {"model_name": name, "model_version": str(mv.version), "model_uri": f"models:/{name}/{mv.version}",
            "data_interval": (mv.tags or {}).get("data_interval")}


def infer_prepare(interval: str, config: str | None = None, lake: str | None = None,
                  dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """Validate the day's raw partitions and build one document per active user of the day."""
    c = context(interval, config, lake, dag_run_id)
    from conf_profile.data.documents import build_documents as build
    from conf_profile.data.validate import validate_interval

    v = validate_interval(c.lake, c.interval, c.settings)
    d = build(c.lake, c.interval, c.settings)
    return _finish("infer_prepare", {"stage": "infer_prepare", "interval": str(c.interval),
                                     "rows_quarantined": sum(t.get("rows_quarantined", 0)
                                                             for t in v.get("tables", {}).values()),
                                     "documents": d.get("documents"), "path": d.get("path")})


def profiles_dir(day: Any) -> str:
    return f"profiles/dt={day.isoformat()}"


def infer_profiles(interval: str, model_version: str, config: str | None = None, lake: str | None = None,
                   dag_run_id: str | None = None, overrides: dict | None = None) -> dict:
    """Profile the day's active users with the champion (pyfunc model from the registry) in batches; write the
    `profiles` table (user_id, attribute, label, confidence, model_version) atomically under
    profiles/dt=<day>/ with a manifest."""
    c = context(interval, config, lake, dag_run_id)
    import mlflow.pyfunc
    import pyarrow as pa

    from conf_profile.registry import tracking
    from conf_profile.taxonomy import load_taxonomy
    from conf_profile.train.evaluate import predictions

    t0 = time.perf_counter()
    tracking.configure(c.settings)
    name = c.settings.mlflow.model_name
    model = mlflow.pyfunc.load_model(f"models:/{name}/{model_version}")
    docs = c.lake.read_committed(c.run_dir("documents"), columns=["user_id", "document"])
    taxonomy = load_taxonomy(c.settings.taxonomy_path)
    users = docs.column("user_id").to_pylist()
    texts = docs.column("document").to_pylist()
    bs = c.settings.compute.inference_batch_size
    parts, valid = [], 0
    for start in range(0, len(users), bs):
        answers = model.predict(texts[start:start + bs])
        rollouts, ok = parse_student_answers(list(answers), taxonomy)
        valid += ok
        parts.append(predictions(users[start:start + bs], rollouts, taxonomy))
    table = pa.concat_tables(parts) if parts else predictions([], [], taxonomy)
    table = table.append_column("model_version", pa.array([str(model_version)] * table.num_rows, pa.string()))
    rel = profiles_dir(c.interval.start)
    c.lake.write_committed_table(rel, table, meta={"interval": str(c.interval), "model_name": name,
                                                   "model_version": str(model_version), "users": len(users)})
    return _finish("infer_profiles", {
        "stage": "infer_profiles", "interval": str(c.interval), "users": len(users), "rows": table.num_rows,
        "valid_rate": round(valid / len(users), 4) if users else None, "model_version": str(model_version),
        "path": c.lake.uri_of(rel), "seconds": round(time.perf_counter() - t0, 1)})


def parse_student_answers(texts: list[str], taxonomy: Any) -> tuple[list, int]:
    """Student answers -> (rollouts, number fully valid), parsed exactly as the evaluation parses them (the
    shared teacher/student parser, confidences as probabilities)."""
    from conf_profile.teachers.parse import parse_answer
    from conf_profile.train.rewards import Rollout

    parsed = [parse_answer(t, taxonomy, confidence="probability") for t in texts]
    rollouts = [Rollout(dict(p.labels), dict(p.confidences), p.error is None) for p in parsed]
    return rollouts, sum(1 for p in parsed if p.ok)
