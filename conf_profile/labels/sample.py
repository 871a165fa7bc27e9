"""The calibration sample: a fixed, hash-chosen subset of users on which the confidence map, reliability
weights and priors are fitted (`labels.calibration_sample_users`).

Why a hash and not "the first N": user ids may carry order (sign-up date, shard), a hash does not; and the
bottom-k of a hash can be kept while streaming over shards with k entries of memory, whatever the number of
users, and picks the same users whether the week is aggregated in one piece or shard by shard.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.labels.ballots import Ballots

_P = np.uint64(0x100000001B3)  # FNV-64 prime


def user_hash(users: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(n,) uint64 hash of each user id, from the Arrow string buffers (no per-user Python): a polynomial
    over the bytes, then the splitmix64 finaliser. Stable across runs and platforms; nulls hash as ""."""
    if isinstance(users, pa.ChunkedArray):
        users = users.combine_chunks()
    arr = pc.fill_null(pc.cast(users, pa.large_string()), "")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offs[0]:offs[-1]] if arr.buffers()[2] else np.zeros(0, np.uint8)
    start, lens = offs[:-1] - offs[0], np.diff(offs)
    pos = np.arange(len(data), dtype=np.int64) - np.repeat(start, lens)
    powers = np.cumprod(np.full(int(lens.max(initial=0)) + 1, _P, dtype=np.uint64), dtype=np.uint64)
    with np.errstate(over="ignore"):
        vals = (data.astype(np.uint64) + np.uint64(1)) * powers[pos]
        csum = np.concatenate([np.zeros(1, np.uint64), np.cumsum(vals, dtype=np.uint64)])
        h = (csum[start + lens] - csum[start]) ^ lens.astype(np.uint64)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def bottom_k(hashes: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distinct hashes, sorted (all of them when there are fewer)."""
    h = np.unique(hashes)
    return h if len(h) <= k else h[:k]


def sample_mask(users: pa.Array, k: int, force: np.ndarray | None = None) -> np.ndarray | None:
    """Users in the calibration sample: the `k` smallest hashes, plus `force` (e.g. gold dev users).
    None when the sample is everyone (so callers can skip subsetting and results stay bit-identical)."""
    if len(users) <= k:
        return None
    h = user_hash(users)
    mask = h <= bottom_k(h, k)[-1] if k > 0 else np.zeros(len(users), dtype=bool)
    if force is not None:
        mask |= force
    return None if mask.all() else mask


def subset_users(b: Ballots, keep: np.ndarray) -> Ballots:
    """The ballots of the users in `keep` (a (n_users,) mask), users re-indexed in the same order. Teachers,
    weights and exclusion counts are kept as they are, so the subset votes exactly as those users did."""
    new_u = np.cumsum(keep, dtype=np.int64) - 1
    rows = keep[b.u]
    idx = np.flatnonzero(rows)
    row_map = np.cumsum(rows, dtype=np.int64) - 1
    pair_keep = rows[b.pair_row]
    return Ballots(
        layout=b.layout, users=b.users.filter(pa.array(keep)), teachers=b.teachers,
        u=new_u[b.u[idx]], a=b.a[idx], col=b.col[idx], mask=b.mask[idx], abstain=b.abstain[idx], conf=b.conf[idx],
        weight=b.weight[idx], share=b.share[idx], teacher=b.teacher[idx], sample=b.sample[idx],
        pair_row=row_map[b.pair_row[pair_keep]], pair_col=b.pair_col[pair_keep],
        rationale=None if b.rationale is None else b.rationale.take(pa.array(idx)),
        excluded_error=b.excluded_error, excluded_invalid=b.excluded_invalid,
        excluded_unknown_user=b.excluded_unknown_user,
    )
