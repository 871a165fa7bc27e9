"""Stage label, mapped over (teacher, shard): plan the pairs, label one pair, then commit the stage.

The commit (fan-in) is where "a teacher outage is never a success" is enforced: every configured teacher
must have all its shards committed from the current documents (a shard with too many error rows was never
committed: `labels.max_error_share`). With `labels.min_teachers` below the number of teachers, incomplete
teachers are left out loudly (named in the summary, the aggregate, the report card and MLflow); otherwise the
commit fails naming them. Only the teachers the commit lists vote.
"""

from __future__ import annotations

from conf_profile.errors import ConfigError
from conf_profile.stages.context import StageContext
from conf_profile.stages.manifest import StageNotReady


def plan(ctx: StageContext) -> list[dict]:
    from conf_profile.teachers.lexicon_file import check_lexicons

    ctx.require("documents")
    check_lexicons(ctx.settings)  # a broken lexicon fails the plan once, not every mapped shard
    items = [{"teacher": t.name, "shard": s} for t in ctx.settings.labels.teachers
             for s in range(ctx.settings.labels.shards)]
    if not items:
        raise ConfigError("No teachers are configured.", "Add at least one entry under labels.teachers.")
    return items


def run_shard(ctx: StageContext, teacher: str, shard: int) -> dict:
    from conf_profile.teachers.labelling import label_shard

    ctx.require("documents")
    r = label_shard(ctx.lake, ctx.interval, ctx.settings, teacher, int(shard))
    out = {k: r.get(k) for k in ("status", "users", "rows", "errors", "seconds", "path")}
    return {"stage": "label", "interval": str(ctx.interval), "teacher": teacher, "shard": int(shard), **out}


def commit(ctx: StageContext) -> dict:
    from conf_profile.teachers.labelling import shard_status

    ctx.require("documents")
    status = shard_status(ctx.lake, ctx.interval, ctx.settings)
    complete = [t for t, problems in status.items() if not problems]
    missing = {t: p for t, p in status.items() if p}
    need = ctx.settings.labels.min_teachers or len(status)
    if len(complete) < need or not complete:
        listed = "; ".join(f"{t} ({', '.join(p[:4])}{' ...' if len(p) > 4 else ''})" for t, p in missing.items())
        raise StageNotReady(
            f"Teacher labels for {ctx.interval} are incomplete: {len(complete)} of {len(status)} configured "
            f"teachers are complete, {need} needed. Missing or stale: {listed}.",
            f"Rerun `conf-profile label --interval {ctx.interval}` (finished shards are kept), or allow fewer "
            "teachers with labels.min_teachers.")
    ctx.lake.write_json(ctx.layout.path("teachers", "_teachers.json"),
                        {"teachers": complete, "left_out": missing})
    return {"stage": "label", "interval": str(ctx.interval), "committed": True, "teachers": complete,
            "left_out": sorted(missing), "shards": ctx.settings.labels.shards}
