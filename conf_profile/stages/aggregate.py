"""Stage aggregate: votes, label-free calibration, per-teacher predictions, distillation and RL sets — from the
teachers the label stage committed (never a folder of a teacher no longer configured)."""

from __future__ import annotations

from conf_profile.stages.context import StageContext


def run(ctx: StageContext) -> dict:
    from conf_profile.labels import aggregate_interval

    ctx.require("documents", "label")
    committed = ctx.lake.read_json(ctx.layout.path("teachers", "_teachers.json"))
    voting = [t for t in ctx.settings.labels.teachers if t.name in committed["teachers"]]
    ctx.settings.labels.teachers = voting
    ctx.track.dataset("documents", ctx.layout.documents, context="input")
    summary = aggregate_interval(ctx.lake, ctx.interval, ctx.settings)
    left_out = sorted(committed.get("left_out") or {})
    summary["left_out_teachers"] = left_out
    ctx.track.dataset("distill", ctx.layout.distill, context="output")
    metrics = {k: summary.get(k) for k in ("users", "eval_users", "answers", "distill_records", "capped_out",
                                           "rl_prompts", "calibration_points")}
    metrics.update({f"label_coverage.{a}": v for a, v in (summary.get("coverage") or {}).items()})
    ctx.track.metrics(metrics)
    ctx.track.tags({"calibration": summary.get("calibration"), "teachers": ",".join(t.name for t in voting),
                    "left_out_teachers": ",".join(left_out) or "none"})
    ctx.track.lake_file(ctx.layout.calibration, "labels")
    return {**summary, "stage": "aggregate", "interval": str(ctx.interval)}
