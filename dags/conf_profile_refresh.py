"""
### conf_profile_refresh — the weekly refresh of the user-profiling student

One run = one Monday-aligned week (UTC), its data interval `START..END` (END exclusive):

`extract_validate` → `documents` → `label` (mapped over teacher × shard) → `aggregate` → `train_sft` →
`train_rl` → `evaluate` → `register` → `promote`

Data moves through the lake by URI (`runs/<START>_<END>/...`); XComs are small summaries. Every task of a run
logs into one MLflow parent run (tagged with the run id). `promote` applies the gate of method.md
("Promotion") and never demotes a newer champion (backfills are safe). Older weeks: backfill from the UI or
`airflow backfill create --dag-id conf_profile_refresh --from-date ... --to-date ...` (docs/orchestration.md).

Compute (`compute.mode` in the settings): `local` runs every stage in the worker; `kubernetes` runs SFT and
GRPO as GPU pods (KubernetesPodOperator) and labels with the vLLM service.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task

from conf_profile import airflow_support as af

SETTINGS = af.dag_settings()
TEACHERS = [t.name for t in SETTINGS.labels.teachers]
KUBERNETES = SETTINGS.compute.mode == "kubernetes"


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
    params={
        "teachers": Param(TEACHERS, type="array", items={"type": "string", "enum": TEACHERS}, minItems=1,
                          title="Teachers", description="Teachers that label this week (labels.teachers)."),
        "shards": Param(SETTINGS.labels.shards, type="integer", minimum=1, title="Shards",
                        description="Document shards per teacher; each (teacher, shard) is one mapped task."),
        "student": Param(SETTINGS.train.student, type="string", title="Student",
                         description="Student preset (tiny, small), a checkpoint path or a models:/ URI."),
        "sft_epochs": Param(SETTINGS.train.sft.epochs, type="number", minimum=0, title="SFT epochs",
                            description="0: by budget (train.sft.budget_examples); > 0: fixed epochs."),
        "rl_steps": Param(SETTINGS.train.rl.steps, type="integer", minimum=0, title="GRPO steps",
                          description="0 skips GRPO (local compute): the SFT student is registered."),
        "force_promote": Param(False, type="boolean", title="Force promote",
                               description="Override the metric checks of the gate (never the interval rule: "
                                           "a backfill cannot replace a newer champion)."),
        "stop_after": Param("all", type="string", enum=["all", *af.STAGES], title="Stop after",
                            description="Run the stages up to this one; later ones are skipped."),
    },
)
def conf_profile_refresh():
    @task(retries=0, outlets=[Asset(af.VALIDATED_WEEK)], execution_timeout=timedelta(hours=1))
    def extract_validate():
        return af.run_stage("extract_validate")

    @task(execution_timeout=timedelta(hours=1))
    def documents():
        return af.run_stage("build_documents")

    @task(retries=0)
    def plan_label_shards():
        return af.run_stage("plan_label_shards")

    @task(map_index_template="{{ shard_name }}", execution_timeout=timedelta(hours=6))
    def label(teacher: str, shard: int):
        get_current_context()["shard_name"] = f"{teacher}/shard-{shard}"
        return af.run_stage("label_shard", teacher=teacher, shard=shard)

    @task(execution_timeout=timedelta(hours=1))
    def aggregate():
        return af.run_stage("aggregate")

    @task(retries=1, execution_timeout=timedelta(hours=12))
    def train_sft():
        return af.run_stage("train_sft")

    @task(retries=1, execution_timeout=timedelta(hours=12))
    def train_rl():
        return af.run_stage("train_rl")

    @task(retries=1, task_id="record_train_sft")
    def record_sft():
        return af.run_stage("record_training", stage="sft")

    @task(retries=1, task_id="record_train_rl")
    def record_rl():
        return af.run_stage("record_training", stage="rl")

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(hours=3))
    def evaluate():
        return af.run_stage("evaluate")

    @task(outlets=[Asset(af.REGISTERED_MODEL)])
    def register():
        return af.run_stage("register")

    @task(pool=SETTINGS.compute.promote_pool, max_active_tis_per_dag=1)
    def promote(registered: dict):
        return af.run_stage("promote", model_version=registered["model_version"])

    validated = extract_validate()
    docs = documents()
    plan = plan_label_shards()
    labels = label.expand_kwargs(plan)
    agg = aggregate()
    validated >> docs >> plan
    labels >> agg
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
    promote(registered)


conf_profile_refresh()
