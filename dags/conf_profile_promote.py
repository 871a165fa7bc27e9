"""
### conf_profile_promote — manual promotion or rollback of the champion

Trigger with Params:
- `action`: `promote` a named version (the gate's metric checks are overridden — a person decided — but a
  version trained on an older week than the champion is refused: that is a rollback), or `rollback`
  (to `model_version`, or, when it is empty, to the previous champion recorded when the current one was
  promoted);
- `model_version`: the registered version number;
- `reason`: written to the version's tags and to the champion history.

Shares the 1-slot promotion pool with conf_profile_refresh, so a manual action never races an automatic one.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from conf_profile import airflow_support as af

SETTINGS = af.dag_settings()


@dag(
    dag_id="conf_profile_promote",
    description="Manual: promote a named model version to champion, or roll the champion back",
    schedule=None,
    start_date=af.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**af.default_args(SETTINGS), "retries": 0},
    tags=[*af.TAGS, "manual", "registry"],
    doc_md=__doc__,
    params={
        "action": Param("promote", type="string", enum=["promote", "rollback"], title="Action"),
        "model_version": Param("", type="string", pattern="^[0-9]*$", title="Model version",
                               description="Version number; empty with rollback = the previous champion."),
        "reason": Param("", type="string", minLength=3, maxLength=500, title="Reason",
                        description="Why (kept in the version's tags and the champion history)."),
    },
)
def conf_profile_promote():
    @task(pool=SETTINGS.compute.promote_pool, max_active_tis_per_dag=1)
    def promote_manual(params=None, dag_run=None):
        who = getattr(dag_run, "triggering_user_name", None) or "manual"
        return af.run_task("promote_manual", with_interval=False, model_version=params["model_version"] or None,
                            action=params["action"], reason=params["reason"], actor=f"{who} ({dag_run.run_id})")

    promote_manual()


conf_profile_promote()
