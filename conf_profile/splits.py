"""The evaluation split: a fixed, hash-based share of users that students never train on.

Gold labels are read only by evaluation; the split itself uses only user ids, so it is label-free and the
same for every week and every component (teachers, votes and students are all scored on the same users).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EVAL_FRACTION = 0.2
_BUCKETS = 10_000


def _bucket(user_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=4).digest(), "little") % _BUCKETS


def is_eval_user(user_id: str, fraction: float = EVAL_FRACTION) -> bool:
    return _bucket(user_id) < int(fraction * _BUCKETS)


def eval_mask(user_ids: pa.Array | pa.ChunkedArray | list[str], fraction: float = EVAL_FRACTION) -> np.ndarray:
    """Boolean mask over `user_ids`: True for evaluation users."""
    if isinstance(user_ids, pa.ChunkedArray | pa.Array):
        user_ids = pc.cast(user_ids, pa.string()).to_pylist()
    limit = int(fraction * _BUCKETS)
    return np.fromiter((_bucket(u) < limit for u in user_ids), dtype=bool, count=len(user_ids))
