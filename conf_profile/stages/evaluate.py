"""Stage evaluate: score the students this run trained (and the current champion, on the same users and
reference, for the gate), build the report card, log card, table, per-attribute metrics and reliability
diagrams. Without gold the reference is the quasi-labels (`gold.read_reference`); the card says so."""

from __future__ import annotations

import logging

from conf_profile.errors import LakeError
from conf_profile.layout import LakeLayout
from conf_profile.stages.context import StageContext

log = logging.getLogger("conf_profile.stages")


def trained_stages(ctx: StageContext) -> list[str]:
    """Model stages whose training stage committed for this interval (a stale models/rl left by an earlier
    run whose GRPO is now skipped does not count)."""
    from conf_profile.stages import manifest

    return [s for s in ("sft", "rl") if manifest.read(ctx.lake, ctx.layout, f"train_{s}") is not None]


def run(ctx: StageContext) -> dict:
    from conf_profile.evaluate.report import report_interval
    from conf_profile.registry.metrics import card_metrics, card_table, row_metrics
    from conf_profile.train import student
    from conf_profile.train.student_eval import evaluate_model

    ctx.require("aggregate")
    trained = trained_stages(ctx)
    if not trained:
        raise LakeError(f"No trained student for {ctx.interval} (train_sft has not committed).",
                        "Run the training stages first.")
    ctx.require(*[f"train_{s}" for s in trained])
    from conf_profile.gold import has_gold

    if has_gold(ctx.lake):
        ctx.track.dataset("gold", LakeLayout.gold_root, context="evaluation")
    for rel in ctx.lake.list_files(ctx.layout.eval, suffix=".json"):
        ctx.lake.delete(rel)  # rows of an earlier attempt (a model no longer trained, an old champion)
    evaluated: list[str] = []
    stages = (["base"] if ctx.lake.is_committed(ctx.layout.base_model) or
              ctx.settings.train.student not in student.PRESETS else []) + trained
    for stage in stages:
        evaluate_model(ctx.lake, ctx.interval, ctx.settings, stage, f"student:{stage}")
        evaluated.append(f"student:{stage}")
    champion_version, champion_error = _champion_row(ctx, evaluated)
    from conf_profile.train.select import choose_student

    if len(trained) > 1:  # label-free: SFT vs RL on the validation users (gold is not read)
        selection = choose_student(ctx.lake, ctx.interval, ctx.settings, stages=trained)
    else:
        selection = {"stage": trained[0], "scores": {}, "reason": "only one model trained", "val_users": 0}
    card = report_interval(ctx.lake, ctx.interval, ctx.settings)
    card["selection"] = {k: selection.get(k) for k in ("stage", "scores", "reason", "val_users")}
    ctx.lake.write_json(ctx.layout.report, card)
    ctx.track.dict(card, "report_card.json")
    if ctx.track._on():
        import mlflow

        mlflow.log_table(card_table(card), artifact_file="report_card_table.json")
    ctx.track.lake_folder(ctx.layout.plots, "plots", suffix=".png")
    metrics = card_metrics(card)
    ctx.track.metrics(metrics)
    ctx.track.tags({"reference": card["reference"]})
    candidate = f"student:{selection['stage']}"
    row = next((r for r in card["rows"] if r["name"] == candidate), None)
    if row and ctx.tracking:
        from conf_profile.registry import tracking

        parent = tracking.find_parent(ctx.tr, ctx.run_id)
        if parent:
            tracking.log_parent_metrics(ctx.tr, parent, row_metrics(row, prefix="student"))
            tracking.log_parent_metrics(ctx.tr, parent, metrics)
    return {"stage": "evaluate", "interval": str(ctx.interval), "reference": card["reference"],
            "eval_users": card.get("eval_users"),
            "report_uri": ctx.lake.uri_of(ctx.layout.report), "candidate": candidate,
            "rows": [{k: r.get(k) for k in ("name", "f1", "coverage", "ece", "valid_rate")} for r in card["rows"]],
            "evaluated": evaluated, "selected": selection["stage"], "selection_scores": selection.get("scores"),
            "champion_evaluated": champion_version if champion_error is None else None,
            "champion_error": champion_error}


def _champion_row(ctx: StageContext, evaluated: list[str]) -> tuple[str | None, str | None]:
    """Re-evaluate the current champion on this interval's users and reference (the gate compares like with
    like)."""
    from conf_profile.registry.promotion import current_champion
    from conf_profile.train.student_eval import evaluate_model

    champ = current_champion(ctx.tr, ctx.settings.mlflow.model_name)
    if champ is None:
        return None, None
    version = str(champ.version)
    try:
        evaluate_model(ctx.lake, ctx.interval, ctx.settings, f"models:/{ctx.settings.mlflow.model_name}/{version}",
                       f"champion:v{version}")
        evaluated.append(f"champion:v{version}")
        return version, None
    except Exception as exc:  # noqa: BLE001 - the gate then refuses the comparison, and says why
        error = f"{type(exc).__name__}: {exc}"
        log.warning("could not re-evaluate champion v%s: %s", version, error)
        ctx.track.tags({"champion_reeval_error": error[:500]})
        return version, error



