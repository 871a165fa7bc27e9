"""The context every stage runs in: settings (with the run's parameters), the lake, the interval and its
layout, the run id, and MLflow tracking (a child run under the DAG run's parent; a no-op when off).

Why one object: a stage function reads `ctx.settings`, writes under `ctx.layout`, declares what it read with
`ctx.require(...)` (recorded in its stage manifest) and logs through `ctx.track`; it never rebuilds any of
these itself, so Airflow tasks, `conf-profile run` and the CLI give every stage the same world.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from conf_profile.config import Settings, params
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.stages import manifest
from conf_profile.storage import Lake


@dataclass
class StageContext:
    settings: Settings
    lake: Lake
    interval: Interval | None
    run_id: str
    controls: dict[str, Any] = field(default_factory=dict)  # stop_after, force_promote
    tracking: bool = True
    inputs: dict[str, str] = field(default_factory=dict)  # upstream stage -> fingerprint read
    _tr: Any = None
    _read: dict[str, manifest.Manifest] = field(default_factory=dict)

    @property
    def layout(self) -> RunLayout:
        if self.interval is None:
            raise ValueError("this stage has no data interval")
        return RunLayout(self.interval)

    # ---- upstream stages -------------------------------------------------------------------------------
    def require(self, *stages: str) -> dict[str, manifest.Manifest]:
        """The committed manifests of these upstream stages (refused when missing, changed or mutually
        inconsistent); their fingerprints become this stage's recorded inputs."""
        from conf_profile.stages.registry import BY_NAME

        for s in stages:
            if s not in self._read:
                cmd = {"validate": "validate", "train_sft": "train sft", "train_rl": "train rl"}.get(s, s)
                self._read[s] = manifest.require(self.lake, self.layout, s, cmd if s in BY_NAME else None)
                self.inputs[s] = self._read[s].fingerprint
        manifest.check_consistent(self._read)
        return {s: self._read[s] for s in stages}

    # ---- MLflow ----------------------------------------------------------------------------------------
    @property
    def tr(self):
        """The configured MLflow client (also for stages that do not track a child run)."""
        if self._tr is None:
            from conf_profile.registry import tracking

            self._tr = tracking.configure(self.settings)
        return self._tr

    @contextlib.contextmanager
    def child_run(self, stage: str, run_params: dict | None = None) -> Iterator[Any]:
        """The stage's MLflow child run under the DAG run's parent (created on first use)."""
        if not self.tracking:
            yield None
            return
        from conf_profile.registry import tracking

        tracking.parent_run(self.tr, self.run_id, self.interval, params=self.run_params())
        with tracking.stage_run(self.tr, self.run_id, self.interval, stage, params=run_params) as run:
            yield run

    def run_params(self) -> dict[str, Any]:
        from conf_profile.registry import tracking

        s = self.settings
        return {"interval": str(self.interval), "dag_run_id": self.run_id, "lake": self.lake.uri,
                **params.values(s), "force_promote": bool(self.controls.get("force_promote", False)),
                "compute_mode": s.compute.mode, "code_version": tracking.code_version(),
                "git_sha": tracking.git_sha(), "config_hash": tracking.config_hash(s)[:16]}

    @property
    def track(self) -> Tracker:
        return Tracker(self)


class Tracker:
    """What a stage logs; every call is a no-op when tracking is off or no MLflow run is active."""

    def __init__(self, ctx: StageContext):
        self.ctx = ctx

    def _on(self) -> bool:
        if not self.ctx.tracking:
            return False
        import mlflow

        return mlflow.active_run() is not None

    def metrics(self, values: dict[str, Any]) -> None:
        if self._on():
            import mlflow

            mlflow.log_metrics({k: float(v) for k, v in values.items() if isinstance(v, int | float)
                                and not isinstance(v, bool)})

    def tags(self, values: dict[str, Any]) -> None:
        if self._on():
            import mlflow

            mlflow.set_tags({k: str(v) for k, v in values.items()})

    def dataset(self, name: str, rel: str, context: str, digest: str | None = None) -> str | None:
        if not self._on():
            return None
        from conf_profile.registry import tracking

        return tracking.log_dataset(self.ctx.lake, name, rel, context=context, digest=digest)

    def lake_file(self, rel: str, artifact_path: str | None = None) -> None:
        if self._on():
            from conf_profile.registry import tracking

            tracking.log_lake_file(self.ctx.lake, rel, artifact_path)

    def lake_folder(self, rel: str, artifact_path: str, suffix: str = "") -> None:
        if self._on():
            from conf_profile.registry import tracking

            tracking.log_lake_folder(self.ctx.lake, rel, artifact_path, suffix=suffix)

    def dict(self, obj: dict, name: str) -> None:
        if self._on():
            import mlflow

            mlflow.log_dict(obj, name)


def make_context(interval: str | Interval | None = None, config: str | None = None, lake: str | None = None,
                 run_id: str | None = None, run_params: dict[str, Any] | None = None,
                 tracking: bool = True, settings: Settings | None = None) -> StageContext:
    """Settings with the run's parameters applied (defaults < file < env < parameters) and, in kubernetes
    compute mode, GPU teachers routed to the vLLM service; the lake; the interval (`latest` resolved)."""
    given = dict(run_params or {})
    if settings is None:
        settings = Settings.load(config, lake=lake)
    params.apply(settings, {k: v for k, v in given.items() if k not in params.CONTROLS})
    c = settings.compute
    if c.mode == "kubernetes" and c.vllm_base_url:
        from conf_profile.config.teachers import as_openai

        settings.labels.teachers = [as_openai(t, c.vllm_base_url) for t in settings.labels.teachers]
    lk = Lake.from_settings(settings)
    iv: Interval | None
    if interval is None or isinstance(interval, Interval):
        iv = interval
    elif interval == "latest":
        from conf_profile.data.extract import latest_interval

        iv = latest_interval(lk, settings.source.event_tables()[0])
    else:
        iv = Interval.parse(interval)
    controls = {k: given[k] for k in params.CONTROLS if k in given}
    rid = run_id or (f"adhoc__{iv.key}" if iv else "adhoc")
    return StageContext(settings, lk, iv, rid, controls, tracking)
