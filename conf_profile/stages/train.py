"""Stages train_sft and train_rl (in the worker, local compute), and their record step after a GPU pod
(kubernetes compute: the pod ran `conf-profile train <stage>`, which commits the same stage manifest)."""

from __future__ import annotations

from conf_profile.stages.context import StageContext


def sft(ctx: StageContext, resume: bool = True) -> dict:
    from conf_profile.train.sft import train_sft

    ctx.require("aggregate")
    ctx.track.dataset("distill", ctx.layout.distill, context="training")
    r = train_sft(ctx.lake, ctx.interval, ctx.settings, resume=resume)
    return {**r, "stage": "train_sft", "interval": str(ctx.interval)}


def rl(ctx: StageContext) -> dict:
    from conf_profile.stages.runner import StageSkipped
    from conf_profile.train.rl import train_rl

    if ctx.settings.train.rl.steps <= 0:
        raise StageSkipped("Stage train_rl not run: train.rl.steps is 0.", "Set train.rl.steps > 0 to run GRPO.")
    ctx.require("aggregate", "train_sft")
    ctx.track.dataset("rl_prompts", ctx.layout.rl_prompts, context="training")
    r = train_rl(ctx.lake, ctx.interval, ctx.settings)
    return {**r, "stage": "train_rl", "interval": str(ctx.interval)}


def record(ctx: StageContext, stage: str) -> dict:
    """Kubernetes mode: log what the training pod committed into this run's MLflow child run."""
    from conf_profile.registry import tracking

    name = f"train_{stage}"
    m = ctx.require(name)[name]
    meta = ctx.lake.manifest(ctx.layout.model(stage)).get("meta", {})
    with ctx.child_run(name, {"compute": "kubernetes"}):
        if ctx.tracking:
            import mlflow

            mlflow.log_params({f"{stage}.{k}": tracking._param(v) for k, v in meta.items()})
            # the pod had no MLflow run: its numbers (seconds, steps, val_score, loss) come from the manifest
            mlflow.log_metrics({f"{stage}.{k}": float(v) for k, v in meta.items()
                                if isinstance(v, int | float) and not isinstance(v, bool)})
    return {"stage": name, "interval": str(ctx.interval), "path": ctx.lake.uri_of(ctx.layout.model(stage)),
            "fingerprint": m.fingerprint[:16], **{k: v for k, v in meta.items() if isinstance(v, int | float | str)}}
