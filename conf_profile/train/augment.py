"""Document views for SFT on small weeks: every pass over a user sees a different view of their document.

Why: the compute budget gives a small week many epochs (12 at 2,500 users) and the tiny student starts to
memorise the documents after ~10 of them (validation valid-JSON rate falls, docs/training.md). A view keeps
the document's structure (section headers and every non-item line, e.g. the profile fields, stay as they
are) and changes only its item lines (`- ...`, one event each): `shuffle` permutes them inside their section,
`drop` leaves out a share of them (never all of a section) in their original order. The answer target stays
the same: it is a soft quasi-label of the whole week, and a view keeps most of the evidence. View 0 is the
document itself, so a run with one view is the plain run. Views are a pure function of (seed, user id, view
index): a rerun or a resumed run trains on the same examples.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

MODES = ("none", "shuffle", "drop")
ITEM_PREFIX = "- "  # an event line of the document format (conf_profile/data/documents.py)


def _rng(seed: int, user_id: str, index: int) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\x1f{user_id}\x1f{index}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def view(document: str, mode: str, rng: np.random.Generator, drop: float = 0.0) -> str:
    """One view of `document` (see module docstring); `mode` "none" returns it unchanged."""
    if mode == "none":
        return document
    lines = document.split("\n")
    out: list[str] = []
    run: list[str] = []  # consecutive item lines (one section's items)

    def flush() -> None:
        if not run:
            return
        if mode == "shuffle":
            out.extend(run[i] for i in rng.permutation(len(run)))
        else:
            keep = rng.random(len(run)) >= drop
            if not keep.any():
                keep[rng.integers(len(run))] = True
            out.extend(line for line, k in zip(run, keep, strict=True) if k)
        run.clear()

    for line in lines:
        if line.startswith(ITEM_PREFIX):
            run.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out)


def views_for(epochs: float, mode: str, min_epochs: float) -> int:
    """How many views of each document a schedule of `epochs` passes trains on: one per pass when `mode`
    is on and the schedule exceeds `min_epochs` passes (small weeks), else 1 (the documents as they are)."""
    if mode == "none" or epochs <= min_epochs:
        return 1
    return max(1, math.ceil(epochs))


def expand(rows: list[dict], views: int, mode: str, seed: int, drop: float = 0.0) -> list[dict]:
    """`views` copies of each row (user_id, document, target): copy 0 as is, copy k a view seeded by
    (seed, user id, k). Targets are never changed. Ordered view by view (the trainer shuffles)."""
    out = list(rows)
    for k in range(1, views):
        out.extend({**r, "document": view(r["document"], mode, _rng(seed, r["user_id"], k), drop)} for r in rows)
    return out
