"""Stage validate: Great Expectations suites over the interval's raw tables; the report goes to the lake
and to MLflow. A critical failure raises ValidationFailed (never retried) after the report is logged."""

from __future__ import annotations

import posixpath

from conf_profile.errors import ValidationFailed
from conf_profile.stages.context import StageContext


def run(ctx: StageContext) -> dict:
    from conf_profile.data.validate import validate_interval
    from conf_profile.data.validation.report import format_summary
    from conf_profile.registry import tracking

    raw = tracking.raw_hash(ctx.lake, ctx.interval, list(ctx.settings.source.tables))
    ctx.inputs["raw"] = raw
    ctx.track.dataset("raw", "raw", "raw", digest=raw)
    try:
        summary = validate_interval(ctx.lake, ctx.interval, ctx.settings)
    except ValidationFailed as exc:
        _log(ctx, exc.report or {})
        raise
    _log(ctx, summary)
    tables = {n: {k: t.get(k) for k in ("rows_in", "rows_kept", "rows_quarantined")}
              for n, t in summary.get("tables", {}).items()}
    return {
        **summary, "stage": "validate", "interval": str(ctx.interval), "success": bool(summary.get("success")),
        "rows_in": sum(t["rows_in"] or 0 for t in tables.values()),
        "rows_kept": sum(t["rows_kept"] or 0 for t in tables.values()),
        "rows_quarantined": sum(t["rows_quarantined"] or 0 for t in tables.values()),
        "warnings": len(summary.get("warnings", [])), "warning_messages": summary.get("warnings", []),
        "raw_hash": raw[:16], "summary_text": format_summary(summary)}


def _log(ctx: StageContext, summary: dict) -> None:
    metrics = {}
    for name, t in (summary.get("tables") or {}).items():
        for k in ("rows_in", "rows_kept", "rows_quarantined"):
            metrics[f"validation.{name}.{k}"] = t.get(k)
    ctx.track.metrics(metrics)
    ctx.track.tags({"validation_success": str(bool(summary.get("success"))).lower()})
    vdir = ctx.layout.validation
    for rel in ctx.lake.list_files(vdir):
        base = posixpath.basename(rel)
        if rel.endswith((".json", ".html")) and not base.startswith((".", "_")) and "/quarantine/" not in rel:
            sub = posixpath.dirname(posixpath.relpath(rel, vdir))
            ctx.track.lake_file(rel, posixpath.join("validation", sub) if sub else "validation")
