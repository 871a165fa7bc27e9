"""The one deterministic sharding of users: shard = blake2b(user_id) % shards.

Why one function on the ground floor: documents, teacher labels and daily inference are all mapped over user
shards, and label shard i reads the users of document shard i only if every stage splits users the same way.
blake2b is stable across runs, machines and Python versions (unlike `hash()`); it is computed once per
distinct user id, so repeated ids (event rows) cost one dictionary encode.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.errors import ConfProfileError
from conf_profile.storage import MANIFEST, Lake


def shard_of(user_ids: pa.Array | pa.ChunkedArray | list[str | None], shards: int) -> np.ndarray:
    """Shard index of each user id (a null id hashes as ""): blake2b(user_id, 8 bytes, little endian) % shards."""
    arr = user_ids if isinstance(user_ids, pa.Array | pa.ChunkedArray) else pa.array(user_ids, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.string())
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    enc = pc.dictionary_encode(pc.fill_null(arr.cast(pa.string()), ""))
    values = enc.dictionary.to_pylist()
    # One joined buffer of 8-byte digests read as little-endian uint64: the same numbers as int.from_bytes,
    # without a Python int and modulo per user.
    digests = b"".join([hashlib.blake2b(u.encode(), digest_size=8).digest() for u in values])
    per_value = (np.frombuffer(digests, dtype="<u8") % np.uint64(shards)).astype(np.int64)
    return per_value[enc.indices.to_numpy(zero_copy_only=False)]


def shard_users(user_ids: pa.Array | pa.ChunkedArray, shard: int, shards: int) -> pa.Array:
    """The distinct non-null user ids among `user_ids` that belong to `shard` (sorted)."""
    uniq = pc.unique(user_ids).drop_null()
    uniq = uniq.take(pc.sort_indices(uniq))
    return uniq.filter(pa.array(shard_of(uniq, shards) == shard))


# ---- sharded committed datasets ---------------------------------------------------------------------------
# A sharded dataset is a folder of shard folders `shard-<i>/`, each committed alone (its own manifest, meta
# recording what it was made from), plus the dataset's manifest written last by the fan-in: it lists every
# shard's files, so `Lake.read_committed(folder)` reads the whole dataset and `Lake.fingerprint(folder)` names
# its content, exactly as for an unsharded folder.
def shard_dir(rel: str, shard: int) -> str:
    return posixpath.join(rel, f"shard-{shard}")


def finished(lake: Lake, rel: str, expect: dict[str, Any]) -> dict | None:
    """The manifest meta of a committed shard folder whose files exist and whose meta matches `expect`
    (same inputs, settings and shard count), else None: the shard must be (re)built."""
    try:
        if not lake.is_committed(rel):
            return None
        m = lake.manifest(rel)
        meta = m.get("meta") or {}
        if not m["files"] or not all(lake.exists(posixpath.join(rel, f)) for f in m["files"]):
            return None
    except (ValueError, KeyError, TypeError, OSError, ConfProfileError):
        return None  # unreadable or corrupt manifest: redo the shard
    return meta if all(meta.get(k) == v for k, v in expect.items()) else None


def commit_shards(lake: Lake, rel: str, shards: int, meta: dict | None = None,
                  expect: Callable[[int], dict[str, Any]] | None = None) -> list[dict]:
    """Write the dataset manifest of `rel` over its shards 0..shards-1 (fan-in) and delete what it does not
    list (shards beyond the count, an older unsharded part). Every shard must be committed (and match
    `expect(i)`), else ConfProfileError naming the missing ones. Returns the shards' metas."""
    metas, files, hashes, missing = [], [], {}, []
    for i in range(shards):
        d = shard_dir(rel, i)
        m = finished(lake, d, expect(i) if expect else {})
        if m is None:
            missing.append(f"shard-{i}")
            continue
        man = lake.manifest(d)
        for f in man["files"]:
            name = f"shard-{i}/{f}"
            files.append(name)
            hashes[name] = (man.get("hashes") or {}).get(f) or lake.file_hash(posixpath.join(d, f))
        metas.append(m)
    if missing:
        raise ConfProfileError(
            f"{lake.uri_of(rel)} is incomplete: {', '.join(missing)} of {shards} not committed or stale.",
            "Rerun the stage: finished shards are kept, only the missing ones are built.")
    lake.write_json(posixpath.join(rel, MANIFEST), {"files": sorted(files), "hashes": hashes, "meta": meta or {}})
    keep = {f"shard-{i}" for i in range(shards)} | {MANIFEST}
    for name in lake.listdir(rel):
        if name not in keep and not name.startswith(".tmp-"):
            lake.delete(posixpath.join(rel, name))
    return metas
