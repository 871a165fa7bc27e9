"""Documents built per user shard: one shard's users from the clean tables, committed alone, then a fan-in.

Why shards: one process holding every user's events does not scale; a shard reads only its users' rows
(`documents.read_clean_tables(users=...)`) and is an Airflow mapped task of its own. The split is
`shards.shard_of` (the labels' split), so label shard i and document shard i hold the same users. A shard
is reused on rerun when its manifest records the same clean tables, the same document/source settings,
interval and shard count; anything else (a crash before its manifest, a deleted part, new clean data) is
rebuilt, alone. Every document depends on its own user's rows only, so the shards concatenate to exactly
the unsharded build (same redaction, same budget).
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile import shards as sharding
from conf_profile.shards import shard_of
from conf_profile.config import Settings, source_schemas
from conf_profile.data.documents import build_from_tables, read_clean_tables
from conf_profile.errors import ConfigError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.storage import Lake

SUMMED = ("documents", "pii_redactions", "truncated_users", "users_seen", "rows_without_user", "events",
          "users_skipped", "declared_gender_dropped")


def shard_count(settings: Settings) -> int:
    """The one user-shard count (documents, labels, daily inference): `labels.shards` (Param `shards`)."""
    n = int(settings.labels.shards)
    if n < 1:
        raise ConfigError(f"labels.shards is {n}.", "Set labels.shards (the DAG Param `shards`) to 1 or more.")
    return n


def expected(lake: Lake, interval: Interval, settings: Settings, shard: int) -> dict:
    """What a committed document shard must have been made from to be reused."""
    lay = RunLayout(interval)
    clean = {t: lake.fingerprint(lay.clean(t)) if lake.is_committed(lay.clean(t)) else None
             for t in source_schemas(settings)}
    config = {"documents": settings.documents.model_dump(mode="json"), "source": settings.source.model_dump(mode="json")}
    digest = hashlib.blake2b(json.dumps([clean, config], sort_keys=True).encode(), digest_size=8).hexdigest()
    return {"inputs": digest, "interval": str(interval), "shards": shard_count(settings), "shard": int(shard)}


def build_shard(lake: Lake, interval: Interval, settings: Settings, shard: int, force: bool = False) -> dict:
    """Build and commit runs/<interval>/documents/shard-<i> (skipped when current). Returns its summary with
    `status` done | skipped."""
    n = shard_count(settings)
    if not 0 <= shard < n:
        raise ConfigError(f"Document shard {shard} does not exist (labels.shards = {n}).",
                          f"Pass a shard from 0 to {n - 1}.")
    rel = RunLayout(interval).documents_shard(shard)
    expect = expected(lake, interval, settings, shard)
    if not force and (meta := sharding.finished(lake, rel, expect)) is not None:
        return {**meta, "status": "skipped", "path": lake.uri_of(rel)}
    t0 = time.perf_counter()
    if n == 1:
        tables = read_clean_tables(lake, interval, settings)
    else:  # rows without a user id are read (and counted as unusable) once, by shard 0
        parts = scattered_parts(lake, interval, settings, shard)
        if len(parts) == len(source_schemas(settings)):  # every table already split: read only this shard's rows
            tables = read_clean_tables(lake, interval, settings, parts=parts)
        else:
            users = shard_user_ids(lake, interval, settings, shard, n)
            tables = read_clean_tables(lake, interval, settings, users=users, nulls=shard == 0, parts=parts)
    out, summary = build_from_tables(tables, interval, settings)
    meta = {**expect, **summary, "seconds": round(time.perf_counter() - t0, 3)}
    lake.write_committed_table(rel, out, meta=meta)
    return {**meta, "status": "done", "path": lake.uri_of(rel)}


# ---- the scatter: each clean table split by user shard once ------------------------------------------------
# Without it every shard scans the week's user_id columns and filters rows: O(rows) per shard, so the stage grows
# as users x shards. The documents plan (and the daily prepare) split each table once, O(rows), one table in
# memory at a time; a shard then reads only its part. Parts are keyed by the clean table's fingerprint and the
# shard count (a stale or missing part falls back to the filtered scan), and deleted by the commit.
def _scatter_key(lake: Lake, interval: Interval, table: str, shards: int) -> dict:
    return {"clean": lake.fingerprint(RunLayout(interval).clean(table)), "shards": shards}


def scatter(lake: Lake, interval: Interval, settings: Settings) -> dict[str, int]:
    """Split every configured clean table into its user shards (rows without a user id go to shard 0, which
    counts them); returns rows split per table. Skips tables whose parts are current."""
    n, lay, done = shard_count(settings), RunLayout(interval), {}
    if n == 1:
        return done
    for name in source_schemas(settings):
        rel = lay.clean(name)
        if not lake.is_committed(rel):
            continue  # read_clean_tables names the missing table
        key = _scatter_key(lake, interval, name, n)
        root = lay.documents_scatter(name)
        if all(sharding.finished(lake, sharding.shard_dir(root, i), {**key, "shard": i}) for i in range(n)):
            continue
        table = lake.read_committed(rel)
        if "user_id" not in table.column_names:
            continue  # the schema check of read_clean_tables names it
        ids = table["user_id"].cast(pa.string())
        shard = shard_of(ids, n)
        shard[pc.is_null(ids).to_numpy(zero_copy_only=False)] = 0
        order = np.argsort(shard, kind="stable")  # stable: each shard keeps the rows' order of the clean table
        bounds = np.searchsorted(shard[order], np.arange(n + 1))
        table = table.take(pa.array(order))
        for i in range(n):
            part = table.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i]))
            lake.write_committed_table(sharding.shard_dir(root, i), part, meta={**key, "shard": i})
        done[name] = table.num_rows
    return done


def scattered_parts(lake: Lake, interval: Interval, settings: Settings, shard: int) -> dict[str, str]:
    """table -> the committed folder of this shard's rows, for every table whose scatter is current."""
    n, lay, out = shard_count(settings), RunLayout(interval), {}
    for name in source_schemas(settings):
        if not lake.is_committed(lay.clean(name)):
            continue
        part = sharding.shard_dir(lay.documents_scatter(name), shard)
        if sharding.finished(lake, part, {**_scatter_key(lake, interval, name, n), "shard": shard}):
            out[name] = part
    return out


def shard_user_ids(lake: Lake, interval: Interval, settings: Settings, shard: int, shards: int) -> pa.Array:
    """The shard's user ids over the configured clean tables, from their user_id columns only. A table that
    is missing or has no such column is left to `read_clean_tables`, which names the problem."""
    lay, ids = RunLayout(interval), []
    for name in source_schemas(settings):
        rel = lay.clean(name)
        if not lake.is_committed(rel):
            continue
        try:
            col = lake.read_committed(rel, columns=["user_id"])
        except (pa.ArrowInvalid, KeyError, ValueError):
            continue
        if col.num_columns:
            ids += [c.cast(pa.string()) for c in col["user_id"].chunks]
    return sharding.shard_users(pa.chunked_array(ids, pa.string()), shard, shards)


def commit(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """The fan-in: the documents dataset manifest over every current shard, and the summary of all shards."""
    n = shard_count(settings)
    rel = RunLayout(interval).documents
    metas = sharding.commit_shards(lake, rel, n, expect=lambda i: expected(lake, interval, settings, i))
    scattered = RunLayout(interval).path("documents_scatter")
    if lake.exists(scattered):
        lake.delete(scattered)  # every shard is committed: the split copy of the clean tables is no longer needed
    summary = combine(metas)
    chars = lake.read_committed(rel, columns=["n_chars"])["n_chars"].to_numpy() if summary["documents"] else []
    summary.update(median_chars=int(np.median(chars)) if len(chars) else 0,
                   max_chars=int(np.max(chars)) if len(chars) else 0, shards=n, interval=str(interval),
                   char_budget=settings.documents.char_budget, path=lake.uri_of(rel))
    man = lake.manifest(rel)
    lake.write_json(f"{rel}/_manifest.json", {**man, "meta": {k: v for k, v in summary.items() if k != "path"}})
    return summary


def combine(metas: list[dict]) -> dict:
    """The shards' summaries as one (counts summed; sources and PII kinds summed per key)."""
    out: dict = {k: sum(int(m.get(k) or 0) for m in metas) for k in SUMMED}
    for key in ("pii_by_kind", "sources"):
        acc: dict[str, int] = {}
        for m in metas:
            for k, v in (m.get(key) or {}).items():
                acc[k] = acc.get(k, 0) + int(v)
        out[key] = acc
    out["tables"] = metas[0].get("tables", []) if metas else []
    return out


def build_documents(lake: Lake, interval: Interval, settings: Settings, force: bool = False) -> dict:
    """Build and commit runs/<interval>/documents in this process: every shard of `labels.shards`, then the
    fan-in commit; returns the committed summary."""
    scatter(lake, interval, settings)
    for i in range(shard_count(settings)):
        build_shard(lake, interval, settings, i, force)
    return commit(lake, interval, settings)
