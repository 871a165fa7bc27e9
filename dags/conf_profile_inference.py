"""
### conf_profile_inference — daily profiles from the champion

One run = one day (UTC). `champion` pins the current `models:/<name>@champion` version (skipped, with a
message, when there is none); `prepare` validates the day's logs and builds one document per active user;
`profile` generates the profiles in batches with the student (the evaluation's generation and the shared
parser) and writes `profiles/dt=YYYY-MM-DD/` (user_id, attribute, label, confidence, model_version) atomically,
committed with a manifest.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

from conf_profile import airflow_support as af

SETTINGS = af.dag_settings()


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
)
def conf_profile_inference():
    @task(retries=0)
    def champion():
        return af.run_task("infer_champion", with_interval=False)

    @task(execution_timeout=timedelta(hours=1))
    def prepare():
        return af.run_task("infer_prepare")

    @task(outlets=[Asset("conf-profile://profiles")], execution_timeout=timedelta(hours=6))
    def profile(model: dict):
        return af.run_task("infer_profiles", model_version=model["model_version"])

    chosen = champion()
    chosen >> prepare() >> profile(chosen)


conf_profile_inference()
