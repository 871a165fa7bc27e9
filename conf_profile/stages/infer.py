"""The daily inference DAG's stages: pin the champion, prepare the day, profile each user shard, commit the day.

The champion is pinned by version at the start of the run, so a promotion meanwhile does not mix models.
`prepare` validates the day's raw partitions once and plans the user shards (`shards.shard_of`, the split of
documents and labels); each `profile` shard builds its users' documents (`data.document_shards`) and
profiles them (`profile_documents`), committed alone under profiles/dt=<day>/shard-<i>/ and reused on rerun
when made by the same model version from the same documents; the commit (fan-in) writes the day's one
profiles table manifest (user_id, attribute, label, confidence, model_version) over every shard's part.
"""

from __future__ import annotations

import json
import time
from typing import Any

from conf_profile.layout import LakeLayout
from conf_profile.stages.context import StageContext

VALID = b"conf_profile.valid_answers"  # schema metadata of profile_documents' table: fully valid answers
STATS = b"conf_profile.inference_stats"  # ... and the backend's stats (failed users and why)


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


def prepare(ctx: StageContext, pods: int | None = None) -> list[dict]:
    """Validate the day's raw partitions (once, for all shards) and plan one profile task per user shard.
    `pods`: the number of profile pods the DAG rendered (kubernetes mode), which the shard count must equal."""
    import logging

    from conf_profile.data.document_shards import shard_count
    from conf_profile.data.validate import validate_interval
    from conf_profile.errors import ConfigError

    n = shard_count(ctx.settings)
    if pods is not None and int(pods) != n:
        raise ConfigError(f"The run asks for {n} shards but the inference DAG rendered {pods} profile pods.",
                          "In kubernetes compute mode the shard count is fixed when the DAG is parsed: leave the "
                          "`shards` Param at its default or change labels.shards in the DAG's settings.")
    v = validate_interval(ctx.lake, ctx.interval, ctx.settings)
    from conf_profile.data.document_shards import scatter

    scatter(ctx.lake, ctx.interval, ctx.settings)  # the day's clean tables split by shard once
    quarantined = sum(t.get("rows_quarantined", 0) for t in v.get("tables", {}).values())
    logging.getLogger("conf_profile.stages").info("validated %s: %d rows quarantined; %d shards",
                                                  ctx.interval, quarantined, n)
    return [{"shard": s} for s in range(n)]


def profile_documents(settings: Any, model_ref: str, users: list[str], texts: list[str], taxonomy: Any,
                      cache: Any = None):
    """Profiles (PRED_SCHEMA: user_id, attribute, label, confidence) of these users' documents through the
    configured inference backend (`conf_profile.inference`: local, vllm or openai; `inference.samples`); the
    number of fully valid answers rides in the schema metadata (VALID), the backend's stats in STATS."""
    import json

    from conf_profile.inference import profile_documents as run_backend

    table, stats = run_backend(settings, model_ref, users, texts, taxonomy, cache=cache)
    valid = round((stats.get("valid_rate") or 0) * stats.get("profiled", 0))
    return table.replace_schema_metadata({VALID: str(valid).encode(), STATS: json.dumps(stats).encode()})


def profile_shard(ctx: StageContext, model_version: str, shard: int) -> dict:
    """Build shard `shard`'s documents of the day and profile them with the pinned champion (pyfunc model
    from the registry); committed under profiles/dt=<day>/shard-<i>/, skipped when already current."""
    import pyarrow as pa

    from conf_profile import shards as sharding
    from conf_profile.data.document_shards import build_shard, shard_count
    from conf_profile.taxonomy import load_taxonomy

    t0 = time.perf_counter()
    shard, n = int(shard), shard_count(ctx.settings)
    build_shard(ctx.lake, ctx.interval, ctx.settings, shard)
    docs_rel = ctx.layout.documents_shard(shard)
    rel = LakeLayout.profiles_shard(ctx.interval.start, shard)
    expect = {"model_version": str(model_version), "documents": ctx.lake.fingerprint(docs_rel), "shards": n,
              "shard": shard, **_answering(ctx.settings)}
    out = {"stage": "infer_profiles", "interval": str(ctx.interval), "shard": shard,
           "model_version": str(model_version), "path": ctx.lake.uri_of(rel)}
    if (meta := sharding.finished(ctx.lake, rel, expect)) is not None:
        return {**out, **{k: meta.get(k) for k in ("users", "rows", "valid")}, "status": "skipped"}
    docs = ctx.lake.read_committed(docs_rel, columns=["user_id", "document"])
    users = docs.column("user_id").to_pylist() if docs.num_columns else []
    texts = docs.column("document").to_pylist() if docs.num_columns else []
    taxonomy = load_taxonomy(ctx.settings.taxonomy_path)
    ctx.tr  # noqa: B018 - configures the MLflow tracking/registry URIs
    from conf_profile.train import runtime

    table = profile_documents(ctx.settings, f"models:/{ctx.settings.mlflow.model_name}/{model_version}", users,
                              texts, taxonomy, cache=runtime.work_dir(ctx.settings, ctx.interval,
                                                                      f"infer-model-{model_version}"))
    md = table.schema.metadata or {}
    valid, stats = int(md.get(VALID, b"0")), json.loads(md.get(STATS, b"{}"))
    table = table.replace_schema_metadata(None)
    table = table.append_column("model_version", pa.array([str(model_version)] * table.num_rows, pa.string()))
    failed = {"failed_users": stats.get("failed_users", 0), "failure_reasons": stats.get("failure_reasons", {})}
    meta = {**expect, "interval": str(ctx.interval), "users": len(users), "rows": table.num_rows, "valid": valid,
            **failed}
    ctx.lake.write_committed_table(rel, table, meta=meta)
    return {**out, "users": len(users), "rows": table.num_rows, "valid": valid, **failed, "status": "done",
            "seconds": round(time.perf_counter() - t0, 1)}


def _answering(settings: Any) -> dict:
    """How answers are made: a shard profiled with another backend or number of samples is redone."""
    return {"backend": settings.inference.backend, "samples": settings.inference.samples}


def commit(ctx: StageContext, model_version: str) -> dict:
    """The fan-in: the day's documents dataset and its one profiles table (manifest over every shard)."""
    from conf_profile import shards as sharding
    from conf_profile.data import document_shards

    n = document_shards.shard_count(ctx.settings)
    docs = document_shards.commit(ctx.lake, ctx.interval, ctx.settings)
    rel = LakeLayout.profiles(ctx.interval.start)
    metas = sharding.commit_shards(ctx.lake, rel, n, expect=lambda i: {
        "model_version": str(model_version), "shards": n, "shard": i, **_answering(ctx.settings),
        "documents": ctx.lake.fingerprint(ctx.layout.documents_shard(i))})
    users, rows, valid, failed = (sum(int(m.get(k) or 0) for m in metas)
                                  for k in ("users", "rows", "valid", "failed_users"))
    meta = {"interval": str(ctx.interval), "model_name": ctx.settings.mlflow.model_name,
            "model_version": str(model_version), "users": users, "rows": rows, "shards": n,
            "failed_users": failed, **_answering(ctx.settings)}
    man = ctx.lake.manifest(rel)
    ctx.lake.write_json(f"{rel}/_manifest.json", {**man, "meta": meta})
    return {"stage": "infer_profiles", "interval": str(ctx.interval), "users": users, "rows": rows, "shards": n,
            "failed_users": failed, "documents": docs["documents"], "valid_rate": round(valid / users, 4) if users else None,
            "model_version": str(model_version), "path": ctx.lake.uri_of(rel)}

