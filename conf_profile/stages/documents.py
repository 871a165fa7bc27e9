"""Stage documents: one redacted, delimited, budgeted document per user from the validated tables."""

from __future__ import annotations

from conf_profile.stages.context import StageContext


def run(ctx: StageContext) -> dict:
    from conf_profile.data.documents import build_documents

    ctx.require("validate")
    ctx.track.dataset("clean", ctx.layout.clean_root, context="input")
    summary = build_documents(ctx.lake, ctx.interval, ctx.settings)
    digest = ctx.track.dataset("documents", ctx.layout.documents, context="output")
    ctx.track.metrics({k: summary.get(k) for k in ("documents", "median_chars", "pii_redactions", "truncated_users")})
    return {**summary, "stage": "documents", "interval": str(ctx.interval), "documents_hash": (digest or "")[:16]}
