"""Assembling documents within the character budget ("equal-rate filling", see data/documents.py): the
candidate items of every section, the segmented budget, headers, and one joined text per user. Kept apart
from the section builders so both stay readable; all vectorised (numpy + Arrow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SECTIONS = ("profile", "watch", "searches", "comments", "purchases")  # the default source's sections


@dataclass
class Items:
    """Candidate lines of one section: user code, priority rank (0 = most informative), display position."""

    section: int
    code: np.ndarray
    rank: np.ndarray
    pos: np.ndarray
    line: pa.Array

    @classmethod
    def empty(cls, section: int) -> Items:
        z = np.zeros(0, dtype=np.int64)
        return cls(section, z, z, z, pa.array([], pa.string()))



def group_starts(*keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys begins (arrays already sorted by these keys)."""
    n = len(keys[0])
    start = np.zeros(n, dtype=bool)
    if n:
        start[0] = True
        for k in keys:
            start[1:] |= k[1:] != k[:-1]
    return start


def _arr(x: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array (list offsets, masks and `concat_arrays` want arrays, not chunks)."""
    if isinstance(x, pa.ChunkedArray):
        return x.combine_chunks() if x.num_chunks else pa.array([], x.type)
    return x


# ---- budget and assembly ----------------------------------------------------------------------------------


def select_within_budget(code: np.ndarray, sec: np.ndarray, rank: np.ndarray, cost: np.ndarray,
                         limit: int, n_sections: int | None = None) -> np.ndarray:
    """Keep-mask by equal-rate filling (module docstring). Inputs sorted by (code, sec, rank); `cost`
    includes each line's newline and, on a section's first item, its header line."""
    end = segmented_cumsum(cost, group_starts(code, sec))
    order = np.lexsort((rank, sec, end, code))
    c, s, r, x = code[order], sec[order], rank[order], cost[order]
    user_start = group_starts(c)
    alive = np.ones(len(c), dtype=bool)
    passes = (int(sec.max()) + 1 if len(sec) else 0) if n_sections is None else n_sections
    for _ in range(passes + 1):  # each pass closes at least one section of every overflowing user
        fail = alive & (segmented_cumsum(np.where(alive, x, 0), user_start) > limit)
        if not fail.any():
            break
        first = np.flatnonzero(fail)
        first = first[np.unique(c[first], return_index=True)[1]]
        fsec = np.full(code.max() + 1, -1)
        frank = np.zeros(code.max() + 1, dtype=np.int64)
        fsec[c[first]], frank[c[first]] = s[first], r[first]
        alive &= ~((s == fsec[c]) & (r >= frank[c]))
    keep = np.zeros(len(code), dtype=bool)
    keep[order] = alive
    return keep


def segmented_cumsum(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting where `start` is True."""
    cs = np.cumsum(x)
    if len(x) == 0:
        return cs
    gid = np.cumsum(start) - 1
    return cs - (cs - x)[start][gid]


def assemble(items: list[Items], n_users: int, budget: int,
             sections: list[str] | tuple[str, ...] = SECTIONS) -> tuple[pa.Array, dict]:
    """Apply the budget, add section headers, join each user's lines in section order (`Items.section`
    indexes `sections`)."""
    headers_text = [f"## {s}" for s in sections]
    code = np.concatenate([i.code for i in items]).astype(np.int64)
    sec = np.concatenate([np.full(len(i.code), i.section) for i in items]).astype(np.int64)
    rank = np.concatenate([i.rank for i in items]).astype(np.int64)
    pos = np.concatenate([i.pos for i in items]).astype(np.int64)
    line = pa.concat_arrays([_arr(i.line).cast(pa.large_string()) for i in items])  # > 2 GiB of lines is fine
    order = np.lexsort((rank, sec, code))
    code, sec, rank, pos = code[order], sec[order], rank[order], pos[order]
    line = line.take(pa.array(order))
    head = group_starts(code, sec)
    header_cost = np.array([len(h) + 1 for h in headers_text] or [0])
    cost = pc.utf8_length(line).to_numpy().astype(np.int64) + 1 + np.where(head, header_cost[sec], 0)
    keep = (select_within_budget(code, sec, rank, cost, budget + 1, len(sections)) if len(code)
            else np.zeros(0, bool))
    shown = head & keep  # a section's first item is kept iff the section appears
    all_code = np.concatenate([code[keep], code[shown]])
    all_sec = np.concatenate([sec[keep], sec[shown]])
    all_pos = np.concatenate([pos[keep], np.full(int(shown.sum()), -1)])
    headers = pa.array(headers_text, pa.large_string()).take(pa.array(sec[shown], pa.int64()))
    all_line = pa.concat_arrays([line.filter(pa.array(keep)), headers])
    final = np.lexsort((all_pos, all_sec, all_code))
    offsets = np.searchsorted(all_code[final], np.arange(n_users + 1)).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), all_line.take(pa.array(final)))
    docs = pc.binary_join(lists, pa.scalar("\n", pa.large_string()))
    stats = {
        "sources": {s: int(np.sum(sec[shown] == i)) for i, s in enumerate(sections)},
        "truncated_users": int(len(np.unique(code[~keep]))),
    }
    return docs, stats
