"""Stage finish: end the DAG run's MLflow parent run (FINISHED, or FAILED when a task failed), whatever stage
the run stopped at — a parent run is never left RUNNING."""

from __future__ import annotations

from conf_profile.stages.context import StageContext


def run(ctx: StageContext, failed: bool | None = None) -> dict:
    """`failed` None: FAILED when a stage of this run tagged the parent run with its failure."""
    from conf_profile.registry import tracking
    from conf_profile.stages.runner import FAILED_TAG, finish

    if failed is None:
        parent = tracking.find_parent(ctx.tr, ctx.run_id)
        failed = bool(parent and ctx.tr.client.get_run(parent).data.tags.get(FAILED_TAG))
    finish(ctx, failed)
    return {"stage": "finish", "run_id": ctx.run_id, "status": "FAILED" if failed else "FINISHED"}
