"""The daily inference DAG's stages: pin the champion, prepare the day's documents, profile every active user.

The champion is pinned by version at the start of the run, so a promotion meanwhile does not mix models; the
profiles table (user_id, attribute, label, confidence, model_version) is committed with a manifest under
profiles/dt=<day>/.
"""

from __future__ import annotations

import time
from typing import Any

from conf_profile.layout import LakeLayout
from conf_profile.stages.context import StageContext


def champion(ctx: StageContext) -> dict:
    from conf_profile.registry.promotion import current_champion
    from conf_profile.stages.runner import NothingToDo

    name = ctx.settings.mlflow.model_name
    mv = current_champion(ctx.tr, name)
    if mv is None:
        raise NothingToDo(f"No champion for {name} in MLflow ({ctx.tr.tracking_uri}): skipping today's profiles.",
                          "Run conf_profile_refresh until a version passes the gate, or promote one with "
                          "conf_profile_promote.")
    return {"model_name": name, "model_version": str(mv.version), "model_uri": f"models:/{name}/{mv.version}",
            "data_interval": (mv.tags or {}).get("data_interval")}


def prepare(ctx: StageContext) -> dict:
    """Validate the day's raw partitions and build one document per active user of the day."""
    from conf_profile.data.documents import build_documents
    from conf_profile.data.validate import validate_interval

    v = validate_interval(ctx.lake, ctx.interval, ctx.settings)
    d = build_documents(ctx.lake, ctx.interval, ctx.settings)
    return {"stage": "infer_prepare", "interval": str(ctx.interval),
            "rows_quarantined": sum(t.get("rows_quarantined", 0) for t in v.get("tables", {}).values()),
            "documents": d.get("documents"), "path": d.get("path")}


def profiles(ctx: StageContext, model_version: str) -> dict:
    """Profile the day's active users with the champion (pyfunc model from the registry) in batches."""
    import mlflow.pyfunc
    import pyarrow as pa

    from conf_profile.taxonomy import load_taxonomy
    from conf_profile.train.student_eval import predictions

    t0 = time.perf_counter()
    ctx.tr  # noqa: B018 - configures the MLflow tracking/registry URIs
    name = ctx.settings.mlflow.model_name
    model = mlflow.pyfunc.load_model(f"models:/{name}/{model_version}")
    docs = ctx.lake.read_committed(ctx.layout.documents, columns=["user_id", "document"])
    taxonomy = load_taxonomy(ctx.settings.taxonomy_path)
    users = docs.column("user_id").to_pylist()
    texts = docs.column("document").to_pylist()
    bs = ctx.settings.compute.inference_batch_size
    parts, valid = [], 0
    for start in range(0, len(users), bs):
        rollouts, ok = parse_student_answers(list(model.predict(texts[start:start + bs])), taxonomy)
        valid += ok
        parts.append(predictions(users[start:start + bs], rollouts, taxonomy))
    table = pa.concat_tables(parts) if parts else predictions([], [], taxonomy)
    table = table.append_column("model_version", pa.array([str(model_version)] * table.num_rows, pa.string()))
    rel = LakeLayout.profiles(ctx.interval.start)
    ctx.lake.write_committed_table(rel, table, meta={"interval": str(ctx.interval), "model_name": name,
                                                     "model_version": str(model_version), "users": len(users)})
    return {"stage": "infer_profiles", "interval": str(ctx.interval), "users": len(users), "rows": table.num_rows,
            "valid_rate": round(valid / len(users), 4) if users else None, "model_version": str(model_version),
            "path": ctx.lake.uri_of(rel), "seconds": round(time.perf_counter() - t0, 1)}


def parse_student_answers(texts: list[str], taxonomy: Any) -> tuple[list, int]:
    """Student answers -> (rollouts, number fully valid), parsed exactly as the evaluation parses them."""
    from conf_profile.teachers.parse import parse_answer
    from conf_profile.train.rewards import Rollout

    parsed = [parse_answer(t, taxonomy, confidence="probability") for t in texts]
    rollouts = [Rollout(dict(p.labels), dict(p.confidences), p.error is None) for p in parsed]
    return rollouts, sum(1 for p in parsed if p.ok)
