"""Choose which trained student to register, without labels: SFT vs RL on the label-free validation set.

Why: GRPO does not always beat SFT (docs/training.md), and "register RL whenever it ran" ships a worse
model half the time. Both stage folders already hold their best validated checkpoint (sft.py / rl.py keep
it); here both are scored again on the same held-out distillation users by the same greedy answers, and
the higher confidence-weighted agreement wins (ties and margins below `min_gain` go to SFT, the simpler
model). Gold is never read. The decision is written to runs/<key>/models/selection.json, for the register
stage (version tag) and the report card (both scores).
"""

from __future__ import annotations

import time

from conf_profile.config import Settings
from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.train import runtime, student
from conf_profile.train.rl import validation_set
from conf_profile.train.validation import ValidationSet, score_model

CANDIDATES = ("sft", "rl")


def selection_path(interval: Interval) -> str:
    return RunLayout(interval).selection


def pick(scores: dict[str, dict], min_gain: float = 0.0) -> str:
    """The stage with the higher validation score; RL must beat SFT by more than `min_gain`."""
    if "rl" in scores and ("sft" not in scores or scores["rl"]["score"] > scores["sft"]["score"] + min_gain):
        return "rl"
    if "sft" in scores:
        return "sft"
    raise ValueError("no candidate was scored")


def score_candidates(models: dict[str, tuple], vset: ValidationSet, settings: Settings) -> dict[str, dict]:
    """{stage: validation result} for already-loaded (model, tokenizer) pairs (tests call this directly)."""
    taxonomy = load_taxonomy(settings.taxonomy_path)
    return {stage: score_model(m, tok, vset, taxonomy, settings.train.eval.batch_size)
            for stage, (m, tok) in models.items()}


def choose_student(lake: Lake, interval: Interval, settings: Settings, min_gain: float = 0.0,
                   stages: list[str] | None = None) -> dict:
    """Score the committed models/sft and models/rl on the validation users, write and return
    {"stage": "sft"|"rl", "scores": {stage: {score, agreement, quasi_ece, valid_rate, users, seconds}},
     "best_steps": {stage: step kept by training}, "val_users": N, "path": <selection.json URI>}."""
    t0 = time.perf_counter()
    runtime.setup_torch(settings)
    present = [s for s in CANDIDATES if lake.is_committed(student.model_dir(interval, s))
               and (stages is None or s in stages)]  # the stage runner passes the stages this run trained
    if not present:
        raise LakeError(f"No trained student for {interval} (no committed models/sft or models/rl).",
                        f"Run `conf-profile train sft --interval {interval}` first.")
    vset = validation_set(lake, interval, settings)
    meta = {s: lake.manifest(student.model_dir(interval, s)).get("meta", {}) for s in present}
    if len(vset) == 0 or len(present) == 1:  # nothing to compare on, or nothing to compare
        chosen = "rl" if present == ["rl"] else "sft"
        scores: dict[str, dict] = {}
        reason = "only one model" if len(present) == 1 else "no validation users (train.sft.val_share = 0)"
    else:
        models = {}
        for s in present:
            path = student.resolve(s, settings, lake, interval, cache=runtime.work_dir(settings, interval, f"select-{s}"))
            mdl, tok = student.load(path)
            models[s] = (mdl.to("cuda") if runtime.has_gpu() else mdl, tok)
        scores = score_candidates(models, vset, settings)
        chosen = pick(scores, min_gain)
        reason = "higher confidence-weighted agreement on the validation users"
    out = {"stage": chosen, "scores": scores, "reason": reason, "val_users": len(vset),
           "best_steps": {s: m.get("best_step") for s, m in meta.items()}, "interval": str(interval),
           "seconds": round(time.perf_counter() - t0, 1)}
    rel = selection_path(interval)
    lake.write_json(rel, out)
    runtime.log_metrics({f"select.{s}.score": v["score"] for s, v in scores.items()})
    return {**out, "path": lake.uri_of(rel)}


def read_selection(lake: Lake, interval: Interval) -> dict | None:
    """The committed selection of `interval`, or None when choose_student has not run."""
    rel = selection_path(interval)
    return lake.read_json(rel) if lake.exists(rel) else None


def version_tags(selection: dict) -> dict[str, str]:
    """MLflow version tags for the register stage: which stage was chosen and both validation scores."""
    tags = {"student_stage": selection["stage"], "selection.reason": selection.get("reason", ""),
            "selection.val_users": str(selection.get("val_users", 0))}
    for stage, res in selection.get("scores", {}).items():
        tags[f"selection.{stage}_score"] = str(res["score"])
    return tags
