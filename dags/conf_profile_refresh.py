"""
### conf_profile_refresh — the weekly refresh of the user-profiling student

One run = one Monday-aligned week (UTC), its data interval `START..END` (END exclusive):

`exclusive` (waits while another refresh run works, backfills included) → `extract_validate` →
`plan_documents` → `documents` (mapped over user shards) → `documents_done` →
`plan_label` → `label` (mapped over teacher × shard) → `label_done` →
`aggregate` → `train_sft` → `train_rl` → `evaluate` → `register` → `promote` → `finish_run`

The stages, their task ids and what each reads and writes are listed once, in `conf_profile.stages.registry`;
every task runs through the same stage runner as `conf-profile run`. Each stage commits as a unit (its
outputs, then a stage manifest); a stage refuses an upstream that has not committed. Data moves through the
lake by URI (`runs/<START>_<END>/...`); XComs are small summaries. Every task of a run logs into one MLflow
parent run, which `finish_run` ends whatever happened. `promote` applies the gate of method.md ("Promotion")
and never demotes a newer champion (backfills are safe). Older weeks: backfill from the UI or
`airflow backfill create --dag-id conf_profile_refresh --from-date ... --to-date ...` (docs/orchestration.md).

Compute (`compute.mode` in the settings): `local` runs every stage in the worker; `kubernetes` runs SFT and
GRPO as GPU pods (KubernetesPodOperator) and labels with the vLLM service.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task

from conf_profile import airflow_support as af
from conf_profile.stages.registry import BY_NAME

SETTINGS = af.dag_settings()
KUBERNETES = SETTINGS.compute.mode == "kubernetes"
T = {name: stage.task_id for name, stage in BY_NAME.items()}


@dag(
    dag_id="conf_profile_refresh",
    description="Weekly: validate logs, label with teachers, distil + GRPO a student, evaluate, register, promote",
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=af.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=af.default_args(SETTINGS),
    tags=[*af.TAGS, "weekly", "training"],
    doc_md=__doc__,
    on_failure_callback=af.on_dag_failure,
    params=af.dag_params(SETTINGS),
)
def conf_profile_refresh():
    @task.sensor(task_id=af.GATE_TASK, mode="reschedule", poke_interval=af.LOCK_POKE_S, retries=2,
                 retry_delay=timedelta(seconds=30), timeout=timedelta(days=6).total_seconds(),
                 pool=SETTINGS.compute.promote_pool)
    def exclusive():
        """One refresh run works at a time, backfills included (docs/orchestration.md, "Concurrency")."""
        return af.take_run_lock()

    @task(task_id=T["validate"], retries=0, outlets=[Asset(af.VALIDATED_WEEK)], execution_timeout=timedelta(hours=1))
    def validate():
        return af.run_task("validate")

    @task(task_id=BY_NAME["documents"].plan_task_id, retries=0)
    def plan_documents():
        return af.run_task("documents", part="plan")

    @task(task_id=T["documents"], map_index_template="{{ shard_name }}", execution_timeout=timedelta(hours=1))
    def documents(shard: int):
        get_current_context()["shard_name"] = f"shard-{shard}"
        return af.run_task("documents", shard=shard)

    @task(task_id=BY_NAME["documents"].commit_task_id, retries=0)
    def documents_done():
        return af.run_task("documents", part="commit")

    @task(task_id=BY_NAME["label"].plan_task_id, retries=0)
    def plan_label():
        return af.run_task("label", part="plan")

    @task(task_id=T["label"], map_index_template="{{ shard_name }}", execution_timeout=timedelta(hours=6))
    def label(teacher: str, shard: int):
        get_current_context()["shard_name"] = f"{teacher}/shard-{shard}"
        return af.run_task("label", teacher=teacher, shard=shard)

    @task(task_id=BY_NAME["label"].commit_task_id, trigger_rule="all_done", retries=0)
    def label_done():
        return af.run_task("label", part="commit")

    @task(task_id=T["aggregate"], execution_timeout=timedelta(hours=1))
    def aggregate():
        return af.run_task("aggregate")

    @task(task_id=T["train_sft"], retries=1, execution_timeout=timedelta(hours=12))
    def train_sft():
        return af.run_task("train_sft")

    @task(task_id=T["train_rl"], retries=1, execution_timeout=timedelta(hours=12))
    def train_rl():
        return af.run_task("train_rl")

    @task(task_id=f"record_{T['train_sft']}", retries=1)
    def record_sft():
        return af.run_task("train_sft", part="record", stage="sft")

    @task(task_id=f"record_{T['train_rl']}", retries=1)
    def record_rl():
        return af.run_task("train_rl", part="record", stage="rl")

    @task(task_id=T["evaluate"], trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(hours=3))
    def evaluate():
        return af.run_task("evaluate")

    @task(task_id=T["register"], outlets=[Asset(af.REGISTERED_MODEL)])
    def register():
        return af.run_task("register")

    @task(task_id=T["promote"], pool=SETTINGS.compute.promote_pool, max_active_tis_per_dag=1)
    def promote(registered: dict):
        return af.run_task("promote", model_version=registered["model_version"])

    @task(task_id=T["finish"], trigger_rule="all_done", retries=1)
    def finish():
        return af.finish_run()

    validated, doc_plan, plan = validate(), plan_documents(), plan_label()
    exclusive() >> validated
    docs, docs_done = documents.expand_kwargs(doc_plan), documents_done()
    labels, committed, agg = label.expand_kwargs(plan), label_done(), aggregate()
    validated >> doc_plan
    docs >> docs_done >> plan
    labels >> committed >> agg
    if KUBERNETES:
        sft_pod, rl_pod = af.training_pod("sft", SETTINGS), af.training_pod("rl", SETTINGS)
        sft_done, rl_done = record_sft(), record_rl()
        agg >> sft_pod >> sft_done >> rl_pod >> rl_done
    else:
        sft_done, rl_done = train_sft(), train_rl()
        agg >> sft_done >> rl_done
    ev = evaluate()
    [sft_done, rl_done] >> ev
    registered = register()
    ev >> registered
    promote(registered) >> finish()


conf_profile_refresh()
