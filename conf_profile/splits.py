"""The evaluation split: a hash-based share of users that students never train on.

Gold labels are read only by evaluation; the split itself uses only user ids, so it is label-free and the
same for every week and every component (teachers, votes and students are all scored on the same users).
Its share and salt are settings (`evaluation.share`, `evaluation.salt`); every caller passes them (`Split.of`),
so a changed setting moves aggregation, training and evaluation together. The empty salt is the historical
split (a hash of the user id alone).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_SHARE = 0.2
_BUCKETS = 10_000


def _bucket(user_id: str, salt: str = "") -> int:
    key = f"{salt}\x1f{user_id}" if salt else user_id
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "little") % _BUCKETS


def is_eval_user(user_id: str, share: float = DEFAULT_SHARE, salt: str = "") -> bool:
    return _bucket(user_id, salt) < int(share * _BUCKETS)


def eval_mask(user_ids: pa.Array | pa.ChunkedArray | list[str], share: float = DEFAULT_SHARE,
              salt: str = "") -> np.ndarray:
    """Boolean mask over `user_ids`: True for evaluation users."""
    if isinstance(user_ids, pa.ChunkedArray | pa.Array):
        user_ids = pc.cast(user_ids, pa.string()).to_pylist()
    limit = int(share * _BUCKETS)
    return np.fromiter((_bucket(u, salt) < limit for u in user_ids), dtype=bool, count=len(user_ids))


@dataclass(frozen=True)
class Split:
    """The evaluation split as configured: pass `Split.of(settings)` wherever users are split."""

    share: float = DEFAULT_SHARE
    salt: str = ""

    @classmethod
    def of(cls, settings: Any) -> Split:
        """From `Settings` (its `evaluation` section) or an `EvaluationSettings`."""
        ev = getattr(settings, "evaluation", settings)
        return cls(float(ev.share), str(ev.salt))

    def mask(self, user_ids: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
        return eval_mask(user_ids, self.share, self.salt)

    def is_eval(self, user_id: str) -> bool:
        return is_eval_user(user_id, self.share, self.salt)
