"""Reading Stage 1 inputs from the lake: committed teacher shards and the documents."""

from __future__ import annotations

import posixpath

import pyarrow as pa

from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.storage import Lake


def teacher_dir(interval: Interval) -> str:
    return RunLayout(interval).teachers


def read_teacher_outputs(lake: Lake, interval: Interval, shards: int | None = None,
                         teachers: list[str] | None = None) -> tuple[pa.Table, dict]:
    """The committed shards of `teachers` (default: every teacher folder), as one TEACHER_OUTPUT_SCHEMA table.
    Only configured teachers vote: the aggregate stage passes the teachers the label stage committed, so a
    folder left by a teacher removed from the configuration is never read. Checks: `teacher_shards`."""
    plan, info = teacher_shards(lake, interval, shards, teachers)
    tables = [tab for rels in plan.values() for rel in rels if (tab := read_teacher_shard(lake, rel)).num_rows]
    if not tables:
        raise no_teacher_outputs(lake, interval)
    return pa.concat_tables(tables), info


def teacher_shards(lake: Lake, interval: Interval, shards: int | None = None,
                   teachers: list[str] | None = None) -> tuple[dict[str, list[str]], dict]:
    """teacher -> its committed shard folders (shard order), without reading them, and the info dict
    ({"teachers", "shards": teacher -> shard count}). With `shards`, teacher t's list holds shard-i at
    position i, exactly shard-0 .. shard-(n-1).

    A shard folder without a manifest (a labelling run did not finish), or, when `shards` is given, a
    missing shard-<i> of a teacher that has outputs, would silently drop users: both are errors naming
    the shards."""
    root = teacher_dir(interval)
    if teachers is None:
        teachers = [t for t in lake.listdir(root) if not t.startswith((".", "_"))]
    plan: dict[str, list[str]] = {}
    unfinished: list[str] = []
    for t in teachers:
        present = sorted(s for s in lake.listdir(posixpath.join(root, t)) if s.startswith("shard-"))
        if shards is not None:  # exactly shard-0 .. shard-(n-1): stale higher shards would double-count users
            unfinished += [f"{t}/shard-{i}" for i in range(shards) if f"shard-{i}" not in present]
            present = [f"shard-{i}" for i in range(shards) if f"shard-{i}" in present]
        for shard in present:
            rel = posixpath.join(root, t, shard)
            if not lake.is_committed(rel):
                unfinished.append(f"{t}/{shard}")
                continue
            plan.setdefault(t, []).append(rel)
    if unfinished:
        raise LakeError(
            f"Teacher output shards missing or without a manifest under {lake.uri_of(root)}: "
            f"{', '.join(unfinished[:10])} (a labelling run did not finish).",
            f"Rerun `conf-profile label --interval {interval}` (it resumes), then aggregate again.",
        )
    return plan, {"teachers": sorted(plan), "shards": {t: len(r) for t, r in plan.items()}}


def read_teacher_shard(lake: Lake, rel: str, columns: list[str] | None = None) -> pa.Table:
    """One committed teacher shard as TEACHER_OUTPUT_SCHEMA rows (only `columns`, in schema order, if given:
    the vote never reads `raw_output`, and `rationale` only for `labels.include_rationale`)."""
    schema = pa.schema([f for f in TEACHER_OUTPUT_SCHEMA if columns is None or f.name in columns])
    tab = lake.read_committed(rel, columns=None if columns is None else schema.names)
    if not tab.num_rows:
        return schema.empty_table()
    return tab.select(schema.names).cast(schema)


def no_teacher_outputs(lake: Lake, interval: Interval) -> LakeError:
    return LakeError(f"No committed teacher outputs under {lake.uri_of(teacher_dir(interval))}.",
                     f"Run `conf-profile label --interval {interval}` first.")


def read_documents(lake: Lake, interval: Interval) -> pa.Table:
    rel = RunLayout(interval).documents
    if not lake.is_committed(rel):
        raise LakeError(f"No committed documents at {lake.uri_of(rel)}.",
                        f"Run `conf-profile documents --interval {interval}` first.")
    return lake.read_committed(rel, columns=["user_id", "document"])
