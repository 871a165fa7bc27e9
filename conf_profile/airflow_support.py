"""Glue between Airflow and the stage runner (`conf_profile.stages`), so that the DAG files stay wiring only.

Imported at DAG parse time: keep it light (no MLflow, torch or pyarrow imports at module level; the stage
registry is plain data).
- `run_task` runs one stage (or the plan / commit / record part of one) through the same runner as
  `conf-profile run`, with the run's data interval, run id and Params, and maps the runner's outcome to
  Airflow's vocabulary: skip -> AirflowSkipException, fail -> AirflowFailException (no retry), retry -> the
  error itself (retried where the task has retries).
- `finish_run` (the refresh DAG's last task, trigger rule all_done) ends the run's MLflow parent run.
- `take_run_lock` is the poke of the refresh DAG's first task (`exclusive`): one run works at a time,
  backfills included (max_active_runs counts backfill runs apart, D12; docs/orchestration.md, "Concurrency").
- `training_pod` builds the KubernetesPodOperator of one training stage, `inference_pod` the one of a daily
  profile shard (kubernetes compute mode).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from conf_profile.config import Settings
from conf_profile.config import params as run_params
from conf_profile.stages import registry

OWNER = "conf-profile"
TAGS = ["conf-profile", "mlops"]
START_DATE = datetime(2026, 1, 5)  # a Monday; catchup is off, older weeks are explicit backfills
VALIDATED_WEEK = "conf-profile://validated-week"
REGISTERED_MODEL = "conf-profile://registered-model"
STAGES = registry.REFRESH
GATE_TASK = "exclusive"  # the refresh DAG's first task: waits while another refresh run works
REFRESH_LOCK = "conf_profile_refresh.lock"  # Airflow Variable: run id of the refresh run that holds the lock
# The gate's poke interval (reschedule mode: no worker slot is held while waiting). Not much shorter: Airflow
# 3.3.2 fails a rescheduled sensor re-queued before the executor reported its previous poke's exit.
LOCK_POKE_S = 20


def dag_settings() -> Settings:
    """The settings the DAG files read at parse time (CONF_PROFILE_CONFIG + env)."""
    return Settings.load()


def default_args(settings: Settings) -> dict[str, Any]:
    c = settings.compute
    return {
        "owner": OWNER,
        "depends_on_past": False,
        "retries": c.retries,
        "retry_delay": timedelta(seconds=c.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=c.max_retry_delay_s),
    }


def dag_params(settings: Settings) -> dict[str, Any]:
    """The refresh DAG's Params, derived from the settings model (`config.params`), plus the run controls."""
    from airflow.sdk import Param

    out = {p.name: Param(run_params.values(settings)[p.name], title=p.title, description=p.description,
                         **run_params.json_schema(settings, p)) for p in run_params.RUN_PARAMS}
    out["force_promote"] = Param(False, type="boolean", title="Force promote",
                                 description="Override the metric checks of the gate (never the interval rule: "
                                             "a backfill cannot replace a newer champion).")
    out["stop_after"] = Param("all", type="string", enum=["all", *STAGES], title="Stop after",
                              description="Run the stages up to this one; later ones are skipped.")
    return out


def interval_of(context: Any) -> str:
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start is None or end is None:
        raise ValueError("This DAG run has no data interval; trigger it with a logical date.")
    return f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"


def params_of(context: Any) -> dict[str, Any]:
    given = context.get("params") or {}
    keys = [*run_params.BY_NAME, *run_params.CONTROLS]
    return {k: given.get(k) for k in keys if k in given}


def run_task(name: str, *, part: str = "fn", with_interval: bool = True, **kwargs: Any) -> Any:
    """Run stage `name` (part fn | plan | commit | record) for the current task instance."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from conf_profile.stages import runner

    context = get_current_context()
    try:
        return runner.run(name, part=part, interval=interval_of(context) if with_interval else None,
                          run_id=context["run_id"], params=params_of(context), **kwargs)
    except Exception as exc:
        kind = runner.outcome(exc)
        if kind == "skip":
            raise AirflowSkipException(str(exc)) from None
        if kind == "fail":
            raise AirflowFailException(str(exc)) from exc
        raise


def finish_run() -> dict:
    """The last task of a refresh run (trigger rule all_done): end the MLflow parent run — FAILED when a stage
    failed for good (the runner tags the parent run with the failed stage)."""
    return run_task("finish")


def take_run_lock() -> bool:
    """Take the refresh DAG's run lock for this run, or say to wait (the `exclusive` sensor's poke).

    Airflow counts `max_active_runs` per backfill and separately for scheduled + manual runs, so a backfill week
    would train while the scheduled week does. The lock is an Airflow Variable naming the holder's run id; it is
    free when unset or when the holder's run is no longer running (finished, failed, marked, deleted: nothing
    to release, no stale lock). Pokes run in the 1-slot promote pool, so two of them never read-and-set at once.
    """
    from airflow.sdk import Variable, get_current_context

    context = get_current_context()
    me, ti = context["run_id"], context["ti"]
    holder = Variable.get(REFRESH_LOCK, default=None)
    if holder and holder != me:
        try:
            state = ti.get_dagrun_state(ti.dag_id, holder)
        except Exception:  # noqa: BLE001 - the holder's run is gone: the lock is free
            state = None
        if str(getattr(state, "value", state)) == "running":
            import logging

            logging.getLogger("conf_profile.airflow").info("waiting: run %s of %s holds the lock", holder, ti.dag_id)
            return False
    if holder != me:
        Variable.set(REFRESH_LOCK, me, description="conf-profile: the refresh run that works now (see docs)")
    return True


def on_dag_failure(context: Any) -> None:
    """DAG failure callback: mark the run's MLflow parent run FAILED (best effort)."""
    try:
        from conf_profile.stages import runner
        from conf_profile.stages.context import make_context

        runner.finish(make_context(None, run_id=context["run_id"]), failed=True)
    except Exception:  # noqa: BLE001 - a callback must never raise
        import logging

        logging.getLogger("conf_profile.airflow").warning("could not mark the MLflow run failed", exc_info=True)


# ---- kubernetes compute mode ------------------------------------------------------------------------------
INTERVAL_TEMPLATE = ("{{ data_interval_start.strftime('%Y-%m-%d') }}..{{ data_interval_end.strftime('%Y-%m-%d') }}")


def train_command(stage: str, settings: Settings) -> list[str]:
    """`accelerate launch --config_file <root>/<zero2>.yaml --num_processes N -m conf_profile.cli train <stage>
    --interval <templated> --lake <uri> --json` (the arguments after `accelerate`)."""
    c = settings.compute
    args = ["launch", "--config_file", f"{c.accelerate_config_root.rstrip('/')}/{c.accelerate_config}.yaml",
            "--num_processes", str(c.gpus), "-m", "conf_profile.cli", "train", stage,
            "--interval", INTERVAL_TEMPLATE, "--json"]
    if settings.lake:  # else the pod's settings file (or env) names the lake
        args += ["--lake", settings.lake]
    return args


def training_pod(stage: str, settings: Settings, **kwargs: Any):
    """KubernetesPodOperator for SFT or GRPO on GPU nodes (deferrable: the worker slot is freed while the pod
    runs). Settings reach the pod as the mounted settings file plus the run's Params as env overrides;
    credentials come from the Secret."""
    from kubernetes.client import models as k8s

    from conf_profile.config import params

    env = [k8s.V1EnvVar(name=params.env_var(p.path), value="{{ params." + p.name + " }}")
           for p in params.RUN_PARAMS if p.path.startswith("train.")]
    return _gpu_pod(settings, task_id=f"train_{stage}", name=f"conf-profile-train-{stage}", cmds=["accelerate"],
                    arguments=train_command(stage, settings), gpus=settings.compute.gpus, env=env,
                    labels={"conf-profile/stage": stage}, **kwargs)


# Inference pods: one GPU each; shards are the unit of parallelism (more shards, more pods).
INFERENCE_GPUS = 1
MODEL_VERSION_TEMPLATE = "{{ ti.xcom_pull(task_ids='champion')['model_version'] }}"


def inference_command(settings: Settings, shard: int) -> list[str]:
    """`-m conf_profile.cli infer-shard --shard <i> --model-version <templated> --interval <templated> --json`
    (the arguments after `python`)."""
    backend = "vllm" if settings.inference.backend == "local" else settings.inference.backend  # a GPU node
    args = ["-m", "conf_profile.cli", "infer-shard", "--shard", str(shard), "--model-version",
            MODEL_VERSION_TEMPLATE, "--interval", INTERVAL_TEMPLATE, "--backend", backend, "--json"]
    if settings.lake:
        args += ["--lake", settings.lake]
    return args


def _gpu_pod(settings: Settings, *, task_id: str, name: str, cmds: list[str], arguments: list[str], gpus: int,
             env: list, labels: dict[str, str], **kwargs: Any):
    """The one KubernetesPodOperator of every conf-profile GPU pod (trainer image, deferrable): the settings
    file (ConfigMap), credentials from the Secret, GPU and CPU resources, node selector and tolerations."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    c = settings.compute
    env = [k8s.V1EnvVar(name="MLFLOW_DISABLE_TELEMETRY", value="true"), *env]
    env += [k8s.V1EnvVar(name=var, value_from=k8s.V1EnvVarSource(
        secret_key_ref=k8s.V1SecretKeySelector(name=c.secret_name, key=key, optional=True)))
        for var, key in c.secret_env.items()]
    volumes, mounts = [], []
    if c.settings_config_map:
        env.append(k8s.V1EnvVar(name="CONF_PROFILE_CONFIG", value=c.settings_mount_path))
        volumes.append(k8s.V1Volume(name="conf-profile-settings",
                                    config_map=k8s.V1ConfigMapVolumeSource(name=c.settings_config_map)))
        mounts.append(k8s.V1VolumeMount(name="conf-profile-settings", mount_path=c.settings_mount_path,
                                        sub_path="config.yaml", read_only=True))
    resources = k8s.V1ResourceRequirements(
        limits={"nvidia.com/gpu": str(gpus), "cpu": c.pod_cpu, "memory": c.pod_memory},
        requests={"cpu": c.pod_cpu, "memory": c.pod_memory},
    )
    return KubernetesPodOperator(
        task_id=task_id,
        name=name,
        namespace=c.namespace,
        image=c.trainer_image,
        cmds=cmds,
        arguments=arguments,
        env_vars=env,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=c.env_secret))] if c.env_secret else [],
        container_resources=resources,
        node_selector=dict(c.node_selector),
        tolerations=[k8s.V1Toleration(**t) for t in c.tolerations],
        volumes=volumes,
        volume_mounts=mounts,
        service_account_name=c.service_account,
        labels={"app.kubernetes.io/name": "conf-profile", **labels},
        startup_timeout_seconds=c.pod_startup_timeout_s,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        deferrable=True,
        **kwargs,
    )


def inference_pod(settings: Settings, shard: int, **kwargs: Any):
    """KubernetesPodOperator profiling one user shard of the day on a GPU node (trainer image, deferrable);
    it commits profiles/dt=<day>/shard-<i>/ and the DAG's `profile_done` task writes the day's manifest. The
    shard count is fixed when the DAG is parsed (one pod per shard), so the pod gets it as well."""
    from kubernetes.client import models as k8s

    from conf_profile.config import params

    env = [k8s.V1EnvVar(name=params.env_var("labels.shards"), value=str(settings.labels.shards))]
    return _gpu_pod(settings, task_id=f"profile_shard_{shard}", name=f"conf-profile-infer-{shard}", cmds=["python"],
                    arguments=inference_command(settings, shard), gpus=INFERENCE_GPUS, env=env,
                    labels={"conf-profile/stage": "infer", "conf-profile/shard": str(shard)}, **kwargs)
