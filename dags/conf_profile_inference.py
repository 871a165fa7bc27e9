"""
### conf_profile_inference — daily profiles from the champion

One run = one day (UTC). `champion` pins the current `models:/<name>@champion` version (skipped, with a
message, when there is none); `prepare` validates the day's logs once and plans the user shards (the Param
`shards`, the same split as the refresh's documents and labels); `profile` (mapped, one task per shard)
builds the shard's documents and profiles them with the student (the evaluation's generation and the shared
parser), committed under `profiles/dt=YYYY-MM-DD/shard-<i>/`; `profile_done` writes the day's one profiles
table (user_id, attribute, label, confidence, model_version): a manifest over every shard's part. A rerun
redoes only the shards that are missing or were made by another model version.

Compute (`compute.mode`): `local` profiles in the worker; `kubernetes` runs one GPU pod per shard
(`profile_shard_<i>`, the trainer image); there the shard count is fixed when the DAG is parsed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task

from conf_profile import airflow_support as af
from conf_profile.config import params as run_params
from conf_profile.stages.registry import BY_NAME

SETTINGS = af.dag_settings()
KUBERNETES = SETTINGS.compute.mode == "kubernetes"
STAGE = BY_NAME["infer_profiles"]
SHARDS = run_params.BY_NAME["shards"]


@dag(
    dag_id="conf_profile_inference",
    description="Daily: profile the day's active users with the champion student",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=af.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=af.default_args(SETTINGS),
    tags=[*af.TAGS, "daily", "inference"],
    doc_md=__doc__,
    params={SHARDS.name: Param(SETTINGS.labels.shards, title=SHARDS.title, description=(
        "User shards of the day; each shard is one mapped profile task (kubernetes mode: one pod per shard, "
        "fixed at parse time)."), **run_params.json_schema(SETTINGS, SHARDS))},
)
def conf_profile_inference():
    @task(task_id=BY_NAME["infer_champion"].task_id, retries=0)
    def champion():
        return af.run_task("infer_champion", with_interval=False)

    @task(task_id=STAGE.plan_task_id, retries=0, execution_timeout=timedelta(hours=1))
    def prepare():
        return af.run_task("infer_profiles", part="plan", pods=SETTINGS.labels.shards if KUBERNETES else None)

    @task(task_id=STAGE.task_id, map_index_template="{{ shard_name }}", execution_timeout=timedelta(hours=6))
    def profile(model: dict, shard: int):
        get_current_context()["shard_name"] = f"shard-{shard}"
        return af.run_task("infer_profiles", model_version=model["model_version"], shard=shard)

    @task(task_id=STAGE.commit_task_id, retries=0, outlets=[Asset("conf-profile://profiles")])
    def profile_done(model: dict):
        return af.run_task("infer_profiles", part="commit", model_version=model["model_version"])

    chosen = champion()
    plan = prepare()
    chosen >> plan
    if KUBERNETES:
        pods = [af.inference_pod(SETTINGS, i) for i in range(SETTINGS.labels.shards)]
        plan >> pods >> profile_done(chosen)
    else:
        profile.partial(model=chosen).expand_kwargs(plan) >> profile_done(chosen)


conf_profile_inference()
