"""Stage register: the student (RL when GRPO committed, else SFT) as an MLflow model version, idempotently:
a version is keyed by (interval, code, data, config) and a rerun with the same key reuses it. Without gold
the gold hash is "none" (no gold dataset is logged) and the version's `reference` tag says "quasi-labels"."""

from __future__ import annotations

import json

from conf_profile.errors import LakeError
from conf_profile.layout import LakeLayout
from conf_profile.stages.context import StageContext

NO_GOLD = "none"


def lineage_hashes(ctx: StageContext) -> dict[str, str]:
    from conf_profile.gold import has_gold
    from conf_profile.registry import tracking

    lay = ctx.layout
    gold = tracking.dataset_hash(ctx.lake, LakeLayout.gold_root) if has_gold(ctx.lake) else NO_GOLD
    return {"raw": tracking.raw_hash(ctx.lake, ctx.interval), "clean": tracking.dataset_hash(ctx.lake, lay.clean_root),
            "documents": tracking.dataset_hash(ctx.lake, lay.documents),
            "distill": tracking.dataset_hash(ctx.lake, lay.distill), "gold": gold}


def registration_key(ctx: StageContext, hashes: dict[str, str] | None = None) -> dict[str, str]:
    from conf_profile.registry import tracking

    hashes = hashes or lineage_hashes(ctx)
    return {"data_interval": str(ctx.interval), "code_version": tracking.code_version(),
            "dataset_hash": tracking.combined_hash(hashes)[:32],
            "config_hash": tracking.config_hash(ctx.settings)[:32]}


def run(ctx: StageContext) -> dict:
    import mlflow

    from conf_profile.registry import models, tracking
    from conf_profile.registry.metrics import version_metric_tags
    from conf_profile.stages.evaluate import trained_stages
    from conf_profile.train import runtime

    ctx.require("evaluate")
    from conf_profile.train.select import read_selection

    trained = trained_stages(ctx)
    selection = read_selection(ctx.lake, ctx.interval)  # chosen without labels by the evaluate stage
    stage = selection["stage"] if selection and selection["stage"] in trained else \
        next((s for s in ("rl", "sft") if s in trained), None)
    if stage is None:
        raise LakeError(f"No trained student to register for {ctx.interval}.", "Run the training stages first.")
    card = ctx.lake.read_json(ctx.layout.report)
    row = next((r for r in card["rows"] if r["name"] == f"student:{stage}"), None)
    if row is None:
        raise LakeError(f"The report card of {ctx.interval} has no student:{stage} row.",
                        "Run the evaluate stage first.")
    hashes = lineage_hashes(ctx)
    lay = ctx.layout
    # The evaluated artefacts themselves are part of the key: a rerun reuses a version only for identical content.
    key = {**registration_key(ctx, hashes), "model_hash": ctx.lake.fingerprint(lay.model(stage))[:32]}
    tags = {"dag_run_id": ctx.run_id, "git_sha": tracking.git_sha(),
            "teacher_ids": ",".join(t.name for t in ctx.settings.labels.teachers),
            "dataset_hashes": json.dumps({k: v[:16] for k, v in hashes.items()}, sort_keys=True),
            "gold_hash": hashes["gold"][:32], "student_stage": stage, "student_base": ctx.settings.train.student,
            "model_lake_uri": ctx.lake.uri_of(lay.model(stage)), "eval_users": str(card.get("eval_users")),
            "reference": card.get("reference", "gold"), **version_metric_tags(row), **warm_start_tags(ctx)}
    tr = ctx.tr
    parent = tracking.find_parent(tr, ctx.run_id)
    tags["mlflow_parent_run_id"] = parent or ""
    name = ctx.settings.mlflow.model_name
    datasets = (("raw", "raw", "raw"), ("clean", lay.clean_root, "input"), ("documents", lay.documents, "input"),
                ("distill", lay.distill, "training"), ("gold", LakeLayout.gold_root, "evaluation"))
    with ctx.child_run("register") as run:
        for ds_name, rel, use in datasets:
            if hashes[ds_name] == NO_GOLD:
                continue  # no gold this week: nothing to log as the evaluation dataset
            tracking.log_dataset(ctx.lake, ds_name, rel, context=use, digest=hashes[ds_name])
            if parent:  # the DAG run's parent shows the whole lineage too
                tracking.log_dataset(ctx.lake, ds_name, rel, context=use, digest=hashes[ds_name], parent_run_id=parent)
        mlflow.set_tags({"dataset_hashes": tags["dataset_hashes"], **key})

        def log_model():
            local = ctx.lake.local_dir(lay.model(stage), runtime.work_dir(ctx.settings, ctx.interval, f"register-{stage}"))
            return models.log_student(local, ctx.settings.taxonomy_path, ctx.settings.compute.inference_batch_size)

        result = models.register_student(tr.client, name, key, tags, log_model, run_id=run.info.run_id)
        if result["reused"]:
            tr.client.set_model_version_tag(name, result["model_version"], "last_reused_by", ctx.run_id)
        mlflow.set_tags({"model_version": result["model_version"], "model_reused": str(result["reused"]).lower()})
        from conf_profile.train.student_eval import plot_file

        plot = lay.plot(plot_file(f"student:{stage}"))  # the registered student's own reliability diagram
        if ctx.lake.exists(plot):
            tracking.log_lake_file(ctx.lake, plot, "plots")
        child = run.info.run_id
    if parent:
        tr.client.set_tag(parent, "model_version", result["model_version"])
    return {"stage": "register", "interval": str(ctx.interval), "model_name": name,
            "model_version": result["model_version"], "reused": result["reused"], "student_stage": stage,
            "model_uri": f"models:/{name}/{result['model_version']}", "mlflow_run_id": parent,
            "mlflow_child_run_id": child, "experiment_id": tr.experiment_id, "tracking_uri": tr.tracking_uri,
            "dataset_hash": key["dataset_hash"][:16], "code_version": key["code_version"]}


def warm_start_tags(ctx: StageContext) -> dict[str, str]:
    """What a later week needs to warm-start from this version (train/warm_start.py): the taxonomy and tokenizer
    hashes the SFT stage recorded (RL continues SFT, so they hold for both), and where SFT itself started."""
    from conf_profile.train import warm_start

    meta = ctx.lake.manifest(ctx.layout.model("sft")).get("meta", {}) if ctx.lake.is_committed(
        ctx.layout.model("sft")) else {}
    keys = (warm_start.TAXONOMY_TAG, warm_start.TOKENIZER_TAG, warm_start.FROM_TAG)
    return {k: str(meta[k]) for k in keys if meta.get(k)}
