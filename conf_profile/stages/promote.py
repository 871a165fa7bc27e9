"""Stage promote (the gate: challenger always, champion when the rules allow) and the manual registry
actions of the conf_profile_promote DAG and `conf-profile registry` (promote a named version, roll back)."""

from __future__ import annotations

import logging
import re

from conf_profile.errors import ConfigError, LakeError
from conf_profile.stages.context import StageContext

log = logging.getLogger("conf_profile.stages")


def run(ctx: StageContext, model_version: str | None = None, force: bool | None = None) -> dict:
    import mlflow

    from conf_profile.registry import models, promotion, tracking
    from conf_profile.stages.register import registration_key

    force = bool(ctx.controls.get("force_promote", False)) if force is None else bool(force)
    name = ctx.settings.mlflow.model_name
    tr = ctx.tr
    if model_version is None:
        mv = models.find_version(tr.client, name, registration_key(ctx))
        if mv is None:
            raise LakeError(f"No registered version of {name} for {ctx.interval} with this code and data.",
                            "Run the register stage first.")
        model_version = str(mv.version)
    card = ctx.lake.read_json(ctx.layout.report)
    mv = tr.client.get_model_version(name, str(model_version))
    stage = (mv.tags or {}).get("student_stage", "rl")
    row = next((r for r in card["rows"] if r["name"] == f"student:{stage}"), None) or promotion.version_row(mv) or {}
    reevaluated = {m.group(1): r for r in card["rows"] if (m := re.fullmatch(r"champion:v(\d+)", r["name"]))}
    cand = promotion.Candidate(str(model_version), ctx.interval, row, (mv.tags or {}).get("gold_hash"),
                               card.get("reference", promotion.GOLD))
    _score_current_champion(ctx, cand, reevaluated)
    parent = tracking.find_parent(tr, ctx.run_id)
    with ctx.child_run("promote", {"force_promote": force}):
        result = promotion.promote(tr.client, name, cand, ctx.settings.mlflow.promotion, force=force,
                                   reevaluated=reevaluated, actor=f"dag_run:{ctx.run_id}", run_id=ctx.run_id,
                                   mlflow_run_id=parent)
        mlflow.log_dict(result, "promotion.json")
        mlflow.set_tags({"promotion_decision": result["decision"], "model_version": str(model_version)})
        _log_champion_history(ctx, name)
    if parent:
        tr.client.set_tag(parent, "promotion_decision", result["decision"])
        tr.client.set_tag(parent, "promotion_reasons", "; ".join(result["reasons"])[:4900])
    log.info("promotion decision for %s v%s: %s — %s", name, model_version, result["decision"],
             "; ".join(result["reasons"]))
    champion = promotion.current_champion(tr, name)
    return {"stage": "promote", "interval": str(ctx.interval), "model_name": name,
            "model_version": str(model_version), "promoted": result["promoted"], "decision": result["decision"],
            "reasons": result["reasons"], "forced": result["forced"],
            "champion": None if champion is None else str(champion.version),
            "champion_before": result.get("champion_before"), "mlflow_run_id": parent,
            "experiment_id": tr.experiment_id, "tracking_uri": tr.tracking_uri}


def _log_champion_history(ctx: StageContext, name: str) -> None:
    """Headline F1 and ECE per week of every version that has been champion (registered metrics), as a plot
    under plots/ and on this promote run."""
    from conf_profile.evaluate.plots import history_png
    from conf_profile.registry import models, promotion, tracking

    ever = {str(h.get("version")) for h in promotion.history(ctx.tr.client, name)}
    rows = [v for v in models.list_versions(ctx.tr.client, name, limit=200) if v["version"] in ever]
    points = sorted(((v["data_interval"] or "?", promotion._num(v["f1"]), promotion._num(v["ece"])) for v in rows),
                    key=lambda p: p[0])
    if points:
        rel = ctx.layout.plot("champion_history.png")
        ctx.lake.write_bytes(rel, history_png(points, f"{name}: champions by week"))
        tracking.log_lake_file(ctx.lake, rel, "plots")


def _score_current_champion(ctx: StageContext, cand, reevaluated: dict[str, dict]) -> None:
    """The champion may have changed since `evaluate` (a manual promotion, an overlapping run): compare with
    the champion as it is now, scored on this interval's gold users here, inside the promotion pool."""
    from conf_profile.registry import promotion
    from conf_profile.stages.evaluate import _champion_row

    champ = promotion.current_champion(ctx.tr, ctx.settings.mlflow.model_name)
    if champ is None or str(champ.version) == cand.version:
        return
    if promotion.champion_view(champ, cand, reevaluated).row is not None:
        return  # already scored on this gold set
    log.info("champion is v%s since evaluate: scoring it on %s before the gate", champ.version, ctx.interval)
    version, error = _champion_row(ctx, [])
    if error is None and version is not None:
        reevaluated[version] = ctx.lake.read_json(ctx.layout.eval_row(f"champion:v{version}"))


def manual(ctx: StageContext, model_version: str | None, action: str = "promote", reason: str = "",
           actor: str | None = None) -> dict:
    """Promote a named version (metric checks overridden, interval rule kept) or roll back (to the previous
    champion, or to a named version)."""
    from conf_profile.registry import promotion

    tr = ctx.tr
    name = ctx.settings.mlflow.model_name
    who = actor or (f"dag_run:{ctx.run_id}" if ctx.run_id and ctx.run_id != "adhoc" else "manual")
    version = str(model_version).strip() if model_version not in (None, "") else None
    run_id = ctx.run_id if ctx.run_id != "adhoc" else None
    if action == "promote":
        if version is None:
            raise ConfigError("promote needs a model_version.", "Pass the version number to promote.")
        result = promotion.promote_manual(tr.client, name, version, ctx.settings.mlflow.promotion,
                                          reason or "manual", actor=who, run_id=run_id)
    elif action == "rollback":
        result = promotion.rollback(tr.client, name, version, reason, actor=who, run_id=run_id)
    else:
        raise ConfigError(f"Unknown action {action!r}.", "Use promote or rollback.")
    champion = promotion.current_champion(tr, name)
    return {"stage": "promote_manual", "action": action, "model_name": name, "reason": reason,
            "experiment_id": tr.experiment_id, "tracking_uri": tr.tracking_uri,
            **{k: v for k, v in result.items() if k != "checks"},
            "champion": None if champion is None else str(champion.version)}
