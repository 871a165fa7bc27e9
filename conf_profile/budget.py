"""The teacher budget: which of a week's users the teachers label (method.md 2.3).

Teachers are the expensive part in production, so labelling is budgeted: at most `labels.teacher_budget.users`
users, or a `share` of them, per week. SFT learns from the labelled users; GRPO runs on the others, where the
student's own rollouts make the quasi-ground truth. The split is label-free and deterministic: users are
ranked by a salted hash of their id (like `splits.py`, a salt of its own so it is independent of the eval
split), and the first k are labelled. Evaluation users are never part of the budget: they are always
labelled (the report card scores teachers and votes on them) and never train, exactly as without a budget.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.splits import Split


def _rank_key(user_id: str, salt: str) -> bytes:
    return hashlib.blake2b(f"{salt}\x1f{user_id}".encode(), digest_size=8).digest()


@dataclass(frozen=True)
class Budget:
    """`labels.teacher_budget` as configured; `users` and `share` None = no limit (both set: the smaller)."""

    users: int | None = None
    share: float | None = None
    salt: str = "teacher-budget"

    @classmethod
    def of(cls, settings: Any) -> Budget:
        tb = settings.labels.teacher_budget
        return cls(tb.users, tb.share, tb.salt)

    @property
    def active(self) -> bool:
        return self.users is not None or self.share is not None

    def limit(self, n_candidates: int) -> int:
        """How many of `n_candidates` (non-evaluation) users the teachers label."""
        k = n_candidates
        if self.share is not None:
            k = min(k, math.floor(self.share * n_candidates + 1e-9))
        if self.users is not None:
            k = min(k, self.users)
        return max(0, k)

    def mask(self, user_ids: pa.Array | pa.ChunkedArray | list[str], split: Split) -> np.ndarray:
        """True for users the teachers label: every evaluation user, plus the first `limit` of the others
        by salted hash (ties by id). Depends only on the ids, so every shard task and a rerun agree."""
        ids = pc.cast(user_ids, pa.string()).to_pylist() if isinstance(user_ids, pa.Array | pa.ChunkedArray) \
            else list(user_ids)
        is_eval = split.mask(ids)
        if not self.active:
            return np.ones(len(ids), dtype=bool)
        cand = [i for i in np.flatnonzero(~is_eval)]
        cand.sort(key=lambda i: (_rank_key(ids[i] or "", self.salt), ids[i] or ""))
        out = is_eval.copy()
        out[np.asarray(cand[:self.limit(len(cand))], dtype=np.int64)] = True
        return out

    def describe(self) -> dict:
        return {"users": self.users, "share": self.share, "salt": self.salt}
