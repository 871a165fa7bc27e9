"""The one list of stages: name, Airflow task id, function, what each reads and writes.

Everything that needs the stage list reads it from here: the DAG files (task ids, the `stop_after` Param),
`conf-profile run` (in-process and `dag.test()`), the Airflow glue and the CLI. Imported at DAG parse time,
so it imports nothing heavy: functions are named as "module:function" and loaded on first call.

`reads` are upstream stages whose stage manifests a stage requires (`stages.manifest`); `writes` are
`RunLayout` attributes it commits. A `mapped` stage runs `plan` once, then `fn` once per planned item (an
Airflow mapped task), then `commit` once (the fan-in that writes its stage manifest).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    name: str  # stage name: stop_after, stage manifests, MLflow child runs, CLI
    task_id: str  # Airflow task id (mapped stages: the mapped task)
    fn: str  # "module:function"; called as fn(ctx, **kwargs) -> dict
    reads: tuple[str, ...] = ()  # upstream stages (their manifests must exist and agree)
    writes: tuple[str, ...] = ()  # RunLayout attributes committed by this stage
    dag: str = "refresh"  # refresh | inference | promote
    tracked: bool = True  # runs inside an MLflow child run of the DAG run
    plan: str | None = None  # mapped stages: "module:function" plan(ctx) -> list[dict]
    commit: str | None = None  # mapped stages: "module:function" commit(ctx) -> dict (fan-in)
    record: str | None = None  # kubernetes compute: logs what the GPU pod committed (after the pod task)
    doc: str = ""
    plan_task: str | None = None  # mapped stages: the plan's task id when not plan_<task_id>

    @property
    def mapped(self) -> bool:
        return self.plan is not None

    @property
    def plan_task_id(self) -> str:
        return self.plan_task or f"plan_{self.task_id}"

    @property
    def commit_task_id(self) -> str:
        return f"{self.task_id}_done"

    def task_ids(self) -> tuple[str, ...]:
        return (self.plan_task_id, self.task_id, self.commit_task_id) if self.mapped else (self.task_id,)


_M = "conf_profile.stages"
STAGES: tuple[Stage, ...] = (
    Stage("validate", "extract_validate", f"{_M}.validate:run", writes=("validation_report", "clean_root"),
          doc="Great Expectations suites; clean tables and the quarantine"),
    Stage("documents", "documents", f"{_M}.documents:run_shard", reads=("validate",), writes=("documents",),
          plan=f"{_M}.documents:plan", commit=f"{_M}.documents:commit", tracked=False,
          doc="one redacted document per user, mapped over user shards"),
    Stage("label", "label", f"{_M}.label:run_shard", reads=("documents",), writes=("teachers",),
          plan=f"{_M}.label:plan", commit=f"{_M}.label:commit", tracked=False,
          doc="teachers label the documents, mapped over teacher x shard"),
    Stage("aggregate", "aggregate", f"{_M}.aggregate:run", reads=("documents", "label"),
          writes=("votes", "teacher_predictions", "calibration", "distill", "rl_prompts"),
          doc="confidence-weighted votes, calibration, distillation and RL sets"),
    Stage("train_sft", "train_sft", f"{_M}.train:sft", reads=("aggregate",), writes=("sft_model", "base_model"),
          record=f"{_M}.train:record",
          doc="SFT of the student"),
    Stage("train_rl", "train_rl", f"{_M}.train:rl", reads=("aggregate", "train_sft"), writes=("rl_model",), record=f"{_M}.train:record",
          doc="confidence-guided GRPO"),
    Stage("evaluate", "evaluate", f"{_M}.evaluate:run", reads=("aggregate",), writes=("eval", "report", "selection"),
          doc="students and the champion on the gold eval users; the report card"),
    Stage("register", "register", f"{_M}.register:run", reads=("evaluate",), tracked=False,
          doc="the student as an MLflow model version (idempotent)"),
    Stage("promote", "promote", f"{_M}.promote:run", tracked=False, doc="the gate: challenger, champion"),
    Stage("finish", "finish_run", f"{_M}.finish:run", tracked=False,
          doc="ends the DAG run's MLflow parent run, whatever stage the run stopped at"),
    # daily inference
    Stage("infer_champion", "champion", f"{_M}.infer:champion", dag="inference", tracked=False),
    Stage("infer_profiles", "profile", f"{_M}.infer:profile_shard", dag="inference", tracked=False,
          plan=f"{_M}.infer:prepare", plan_task="prepare", commit=f"{_M}.infer:commit",
          doc="validate the day, then profile each user shard with the champion; one profiles table per day"),
    # manual registry actions
    Stage("promote_manual", "promote_manual", f"{_M}.promote:manual", dag="promote", tracked=False),
)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
REFRESH: tuple[str, ...] = tuple(s.name for s in STAGES if s.dag == "refresh")


def get(name: str) -> Stage:
    try:
        return BY_NAME[name]
    except KeyError:
        from conf_profile.errors import ConfigError

        raise ConfigError(f"Unknown stage {name!r}.", f"Use one of: {', '.join(BY_NAME)}.") from None


def load(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def refresh_task_ids() -> list[str]:
    return [t for name in REFRESH for t in BY_NAME[name].task_ids()]


def available() -> dict[str, str | None]:
    """Stage -> None when its module imports, else the import error (what `doctor` reports)."""
    out: dict[str, str | None] = {}
    for s in STAGES:
        module = s.fn.partition(":")[0]
        try:
            importlib.import_module(module)
            out[s.name] = None
        except ImportError as exc:
            out[s.name] = f"{module}: {exc}"
    return out
