"""Stage documents, mapped over user shards: plan the shards, build one shard, then commit the stage.

The plan splits each validated clean table by user shard once (`document_shards.scatter`); each shard
(`data.document_shards`) then builds the documents of its users only, from its part of the clean tables,
and is committed alone, so a rerun rebuilds only missing or stale shards and a killed shard is redone by
itself. The commit (fan-in) writes the documents dataset manifest over every shard's part, so readers
(labels, aggregate, train, evaluate) read `RunLayout.documents` as one table, then the stage manifest.
"""

from __future__ import annotations

from conf_profile.stages.context import StageContext


def plan(ctx: StageContext) -> list[dict]:
    from conf_profile.data.document_shards import scatter, shard_count
    from conf_profile.stages import manifest

    ctx.require("validate")
    manifest.invalidate(ctx.lake, ctx.layout, "documents")  # being rebuilt: nothing downstream reads it meanwhile
    scatter(ctx.lake, ctx.interval, ctx.settings)  # each clean table split by shard once: a shard reads its rows
    return [{"shard": s} for s in range(shard_count(ctx.settings))]


def run_shard(ctx: StageContext, shard: int) -> dict:
    from conf_profile.data.document_shards import build_shard

    ctx.require("validate")
    r = build_shard(ctx.lake, ctx.interval, ctx.settings, int(shard))
    keep = ("status", "documents", "users_seen", "pii_redactions", "truncated_users", "seconds", "path")
    return {"stage": "documents", "interval": str(ctx.interval), "shard": int(shard), **{k: r.get(k) for k in keep}}


def commit(ctx: StageContext) -> dict:
    from conf_profile.data.document_shards import commit as commit_shards

    ctx.require("validate")
    with ctx.child_run("documents"):
        ctx.track.dataset("clean", ctx.layout.clean_root, context="input")
        summary = commit_shards(ctx.lake, ctx.interval, ctx.settings)
        digest = ctx.track.dataset("documents", ctx.layout.documents, context="output")
        ctx.track.metrics({k: summary.get(k) for k in ("documents", "median_chars", "pii_redactions",
                                                       "truncated_users", "shards")})
    return {**summary, "stage": "documents", "interval": str(ctx.interval), "documents_hash": (digest or "")[:16]}
