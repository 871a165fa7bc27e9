"""Resumable, sharded teacher labelling of one interval.

Layout: `runs/<interval>/teachers/<teacher_id>/shard-<i>/` (TEACHER_OUTPUT_SCHEMA, committed by a manifest).
A user belongs to shard blake2b(user_id) % shards — stable across runs, machines and Python versions, so an
Airflow mapped task per (teacher, shard) and a rerun always see the same users. A shard is skipped on rerun
when its manifest is there, lists files that exist, and was made from the same documents, the same teacher
spec and the same shard count; anything else (a crash before the manifest, a deleted or corrupt manifest,
new documents, a changed teacher) is redone. `force=True` redoes everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conf_profile.config import Settings, TeacherSpec
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.progress import bar
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.shards import shard_of
from conf_profile.storage import Lake
from conf_profile.taxonomy import Taxonomy, load_taxonomy
from conf_profile.teachers.backends import make_teacher
from conf_profile.teachers.base import Teacher, label_table

log = logging.getLogger(__name__)


class TeacherOutage(ConfProfileError):
    """A shard came back with too many error rows (server down, bad key, timeouts): not committed, retried."""

    exit_code = 4
    outcome = "retry"


class LabellingFailed(ConfProfileError):
    """Some shards failed; the others are committed. `report` holds the summary."""

    exit_code = 4

    def __init__(self, message: str, fix: str | None = None, report: dict | None = None):
        super().__init__(message, fix)
        self.report = report or {}


def shard_dir(interval: Interval, teacher: str, shard: int) -> str:
    return RunLayout(interval).teacher_shard(teacher, shard)


def teacher_dir(interval: Interval, teacher: str) -> str:
    return RunLayout(interval).teacher(teacher)


def find_spec(settings: Settings, teacher: str) -> TeacherSpec:
    for spec in settings.labels.teachers:
        if spec.name == teacher:
            return spec
    names = ", ".join(s.name for s in settings.labels.teachers) or "(none)"
    raise ConfProfileError(f"No teacher named {teacher!r} is configured (configured: {names}).",
                           "Pass one of those names, or add the teacher under labels.teachers in the config.")


def _spec_hash(spec: TeacherSpec, taxonomy: Taxonomy, settings: Settings | None = None) -> str:
    """What the shard's content depends on besides the documents: the spec (not `weight`, which only
    matters for voting), the taxonomy, and for lexicon teachers the lexicon file's content."""
    data: dict[str, Any] = {"spec": spec.model_dump(mode="json", exclude={"weight"}),
                            "taxonomy": taxonomy.model_dump(mode="json")}
    if spec.backend == "lexicon":
        from conf_profile.teachers.lexicon_file import lexicon_for

        data["lexicon"] = hashlib.blake2b(lexicon_for(spec, settings).read_bytes(), digest_size=8).hexdigest()
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=8).hexdigest()


def budget_key(settings: Settings | None) -> dict[str, Any]:
    """What a shard's users depend on besides the documents: the teacher budget, when one is set (an unset
    budget adds nothing, so shards made before budgets existed stay reusable)."""
    from conf_profile.budget import Budget
    from conf_profile.splits import Split

    if settings is None or not Budget.of(settings).active:
        return {}
    split = Split.of(settings)  # evaluation users are always labelled: the split moves the labelled set too
    return {"budget": Budget.of(settings).describe() | {"eval": [split.share, split.salt]}}


class _Documents:
    """The interval's documents with the shard of every user. The fingerprint hashes the committed files'
    bytes, so rebuilt documents with new content make every shard stale. With `only`, a labelling task reads
    just that shard's part when the documents were built with the same shard count (documents and labels
    split users with the one `shards.shard_of`): the work of one task then does not grow with all users.
    With a teacher budget (`labels.teacher_budget`) only the budgeted users (and every evaluation user) are
    kept: teachers never see the others; `unlabelled` counts them (the budget ranks all users, so it reads
    every shard's user ids)."""

    def __init__(self, lake: Lake, interval: Interval, shards: int, settings: Settings | None = None,
                 only: int | None = None):
        layout = RunLayout(interval)
        rel = layout.documents
        if not lake.is_committed(rel):
            raise ConfProfileError(f"No committed documents for {interval} at {lake.uri_of(rel)}.",
                                   f"Run `conf-profile documents --interval {interval}` first.")
        every = sorted(n for n in lake.manifest(rel)["files"] if n.endswith(".parquet"))
        names = every
        if only is not None and _built_with(lake, layout.documents_shard(only), shards):
            names = [n for n in every if n.startswith(f"shard-{only}/")]

        def read(files: list[str], columns: list[str]) -> pa.Table:
            parts = [pq.read_table(pa.BufferReader(lake.read_bytes(posixpath.join(rel, n))), columns=columns)
                     for n in files]
            return (pa.concat_tables(parts) if parts else
                    pa.table({c: pa.array([], pa.string()) for c in columns}))

        self.fingerprint = lake.fingerprint(rel)
        self.table = read(names, ["user_id", "document"])
        self.unlabelled = 0
        self.budget = budget_key(settings)
        if self.budget:
            from conf_profile.budget import Budget
            from conf_profile.splits import Split

            ids = self.table["user_id"] if names == every else read(every, ["user_id"])["user_id"]
            keep = Budget.of(settings).mask(ids, Split.of(settings))
            self.unlabelled = int((~keep).sum())
            kept = pc.filter(ids, pa.array(keep))
            self.table = self.table.filter(pc.is_in(self.table["user_id"], value_set=kept.combine_chunks()
                                                    if isinstance(kept, pa.ChunkedArray) else kept))
        self.shards = shards
        self.shard = shard_of(self.table["user_id"], shards)

    def for_shard(self, shard: int) -> pa.Table:
        return self.table.filter(pa.array(self.shard == shard)).combine_chunks()


def _built_with(lake: Lake, shard_rel: str, shards: int) -> bool:
    """Whether a committed documents shard folder was split into `shards` shards."""
    try:
        return lake.is_committed(shard_rel) and (lake.manifest(shard_rel).get("meta") or {}).get("shards") == shards
    except (ValueError, KeyError, TypeError, OSError, ConfProfileError):
        return False


def _finished(lake: Lake, rel: str, expect: dict[str, Any]) -> dict | None:
    """The manifest meta of a reusable finished shard, else None."""
    try:
        if not lake.is_committed(rel):
            return None
        manifest = lake.manifest(rel)
        files = manifest["files"]
        meta = manifest.get("meta") or {}
        if not files or not all(lake.exists(f"{rel}/{f}") for f in files):
            return None
    except (ValueError, KeyError, TypeError, OSError, ConfProfileError):
        return None  # unreadable or corrupt manifest: redo the shard
    if any(meta.get(k) != v for k, v in expect.items()):
        return None
    return meta


class _LazyTeacher:
    """Builds the teacher on first use (loading a model is expensive) and reuses it for every shard."""

    def __init__(self, spec: TeacherSpec, settings: Settings):
        self.spec, self.settings = spec, settings
        self.obj: Teacher | None = None

    def get(self, taxonomy: Taxonomy) -> Teacher:
        if self.obj is None:
            self.obj = make_teacher(self.spec, taxonomy, self.settings)
        return self.obj


def _run_shard(lake: Lake, interval: Interval, spec: TeacherSpec, shard: int, docs: _Documents,
               teacher: _LazyTeacher, taxonomy: Taxonomy, force: bool, max_error_share: float = 1.0) -> dict:
    rel = shard_dir(interval, spec.name, shard)
    expect = {"documents": docs.fingerprint, "spec": _spec_hash(spec, taxonomy, teacher.settings), "shards": docs.shards,
              "shard": shard, **docs.budget}
    if not force:
        meta = _finished(lake, rel, expect)
        if meta is not None:
            return {**meta, "status": "skipped", "path": rel}
    t0 = time.perf_counter()
    subset = docs.for_shard(shard)
    obj = teacher.get(taxonomy)
    table = label_table(obj, subset) if subset.num_rows else TEACHER_OUTPUT_SCHEMA.empty_table()
    table = _check_rows(table, subset, spec, taxonomy.names)
    err = table["error"]
    n_err = len(err) - err.null_count
    reasons = Counter(pc.drop_null(err).to_pylist()).most_common(5) if n_err else []
    meta = {
        **expect,
        "teacher": spec.name,
        "backend": spec.backend,
        "interval": str(interval),
        "users": subset.num_rows,
        "rows": table.num_rows,
        "errors": n_err,
        "top_errors": [[r[:200], c] for r, c in reasons],
        "seconds": round(time.perf_counter() - t0, 3),
        **({"teacher_info": obj.describe()} if hasattr(obj, "describe") else {}),
    }
    if table.num_rows and n_err / table.num_rows > max_error_share:
        top = "; ".join(f"{r[:120]} (x{c})" for r, c in meta["top_errors"][:2])
        raise TeacherOutage(
            f"Teacher {spec.name!r} shard {shard} of {interval}: {n_err:,} of {table.num_rows:,} answers are errors "
            f"({n_err / table.num_rows:.0%} > labels.max_error_share {max_error_share:.0%}); not committed. "
            f"Most frequent: {top}.",
            "Check the teacher's server, model and API key (the environment), then rerun: the shard is redone.")
    lake.write_committed_table(rel, table, meta=meta)
    return {**meta, "status": "done", "path": rel}


def _check_rows(table: pa.Table, docs: pa.Table, spec: TeacherSpec, names: list[str]) -> pa.Table:
    """Guard the contract every backend promises: the schema, the teacher id, and one row per
    (user, sample, attribute) for exactly the shard's users — a silent loss would skew every vote."""
    if table.schema != TEACHER_OUTPUT_SCHEMA:
        table = table.select(TEACHER_OUTPUT_SCHEMA.names).cast(TEACHER_OUTPUT_SCHEMA)
    expected = docs.num_rows * max(1, spec.samples) * len(names)
    if table.num_rows != expected:
        raise ConfProfileError(
            f"Teacher {spec.name!r} returned {table.num_rows} rows for {docs.num_rows} users "
            f"(expected {expected} = users x samples x attributes).",
            "This is a bug in the teacher backend; rerun with --debug and report it.")
    got = set(pc.unique(table["user_id"]).to_pylist())
    if got != set(docs["user_id"].to_pylist()):
        raise ConfProfileError(f"Teacher {spec.name!r} returned rows for other users than it was given.",
                               "This is a bug in the teacher backend; rerun with --debug and report it.")
    if pc.any(pc.not_equal(table["teacher_id"], spec.name)).as_py():
        raise ConfProfileError(f"Teacher {spec.name!r} wrote rows under another teacher id.",
                               "This is a bug in the teacher backend.")
    return table


def label_shard(lake: Lake, interval: Interval, settings: Settings, teacher: str, shard: int,
                force: bool = False) -> dict:
    """Label one (teacher, shard): the unit an Airflow mapped task runs. Returns the shard's summary
    (status done|skipped, users, rows, errors, path)."""
    shards = settings.labels.shards
    if not 0 <= shard < shards:
        raise ConfProfileError(f"Shard {shard} does not exist (labels.shards = {shards}).",
                               f"Pass a shard from 0 to {shards - 1}.")
    spec = find_spec(settings, teacher)
    taxonomy = load_taxonomy(settings.taxonomy_path)
    docs = _Documents(lake, interval, shards, settings, only=shard)
    return _run_shard(lake, interval, spec, shard, docs, _LazyTeacher(spec, settings), taxonomy, force,
                      settings.labels.max_error_share)


def label_interval(lake: Lake, interval: Interval, settings: Settings, teacher: str | None = None,
                   force: bool = False, shards: list[int] | None = None) -> dict:
    """Label the interval's documents with one or all configured teachers, shard by shard, skipping
    finished shards. A failing shard does not stop the others; failures raise LabellingFailed at the end
    (with the summary), and a rerun redoes only them."""
    n_shards = settings.labels.shards
    if n_shards < 1:
        raise ConfProfileError(f"labels.shards is {n_shards}.", "Set labels.shards to 1 or more.")
    specs = [find_spec(settings, teacher)] if teacher else list(settings.labels.teachers)
    if not specs:
        raise ConfProfileError("No teachers are configured.", "Add at least one entry under labels.teachers.")
    wanted = sorted(set(shards)) if shards is not None else list(range(n_shards))
    for s in wanted:
        if not 0 <= s < n_shards:
            raise ConfProfileError(f"Shard {s} does not exist (labels.shards = {n_shards}).",
                                   f"Pass a shard from 0 to {n_shards - 1}.")
    taxonomy = load_taxonomy(settings.taxonomy_path)
    docs = _Documents(lake, interval, n_shards, settings)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"interval": str(interval), "users": docs.table.num_rows, "shards": n_shards,
                               "unlabelled_by_budget": docs.unlabelled,
                               "teachers": {}, "paths": {}, "failed": []}
    progress = bar("label", total=len(specs) * len(wanted), unit="shard")
    try:
        for spec in specs:
            stats = {"backend": spec.backend, "shards_done": 0, "shards_skipped": 0, "shards_failed": 0,
                     "rows": 0, "errors": 0, "users": 0}
            lazy = _LazyTeacher(spec, settings)
            for shard in wanted:
                progress.set_postfix_str(f"{spec.name} shard {shard}")
                try:
                    result = _run_shard(lake, interval, spec, shard, docs, lazy, taxonomy, force,
                                        settings.labels.max_error_share)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - one shard's failure must not stop the others
                    log.warning("teacher %s shard %d failed: %s", spec.name, shard, exc)
                    log.debug("teacher %s shard %d failed", spec.name, shard, exc_info=True)
                    stats["shards_failed"] += 1
                    summary["failed"].append({"teacher": spec.name, "shard": shard,
                                              "error": f"{type(exc).__name__}: {exc}"})
                    progress.update(1)
                    if isinstance(exc, ConfProfileError) and lazy.obj is None:
                        break  # the teacher cannot even be built: its other shards would fail the same way
                    continue
                stats["shards_done" if result["status"] == "done" else "shards_skipped"] += 1
                for k in ("rows", "errors", "users"):
                    stats[k] += int(result.get(k, 0))
                progress.update(1)
            if shards is None:
                _drop_stale_shards(lake, interval, spec.name, n_shards)
            summary["teachers"][spec.name] = stats
            summary["paths"][spec.name] = lake.uri_of(teacher_dir(interval, spec.name))
    finally:
        progress.close()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if summary["failed"]:
        first = summary["failed"][0]
        raise LabellingFailed(
            f"{len(summary['failed'])} teacher shard(s) failed for {interval}; the others are committed. "
            f"First: {first['teacher']} shard {first['shard']}: {first['error'][:300].rstrip('.')}.",
            "Fix the cause and rerun the same command: finished shards are skipped.", report=summary)
    return summary


def _drop_stale_shards(lake: Lake, interval: Interval, teacher: str, shards: int) -> None:
    """Shard folders beyond the configured count (labels.shards was lowered) would double-count users."""
    for name in lake.listdir(teacher_dir(interval, teacher)):
        if name.startswith("shard-") and name[6:].isdigit() and int(name[6:]) >= shards:
            lake.delete(f"{teacher_dir(interval, teacher)}/{name}")


def shard_status(lake: Lake, interval: Interval, settings: Settings) -> dict[str, list[str]]:
    """Per configured teacher, what keeps its labels from being complete and current ([] = complete): a shard
    missing, unfinished, or made from other documents, another teacher spec or another shard count."""
    taxonomy = load_taxonomy(settings.taxonomy_path)
    n = settings.labels.shards
    docs_fp = lake.fingerprint(RunLayout(interval).documents)
    out: dict[str, list[str]] = {}
    for spec in settings.labels.teachers:
        problems = []
        for shard in range(n):
            expect = {"documents": docs_fp, "spec": _spec_hash(spec, taxonomy, settings), "shards": n, "shard": shard,
                      **budget_key(settings)}
            if _finished(lake, shard_dir(interval, spec.name, shard), expect) is None:
                problems.append(f"shard-{shard}")
        out[spec.name] = problems
    return out
