"""Vectorised text: template families rendered once into banks, then picked and joined per row with pyarrow.

Why banks: rendering a template per event in Python is the slow part of any log simulator. We render each
family into a few hundred distinct strings once (deterministically, cached), and per row only compute an
integer index with numpy; `pa.Array.take` and `binary_join_element_wise` do the string work in C++.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.simulate.vocab import SLOTS

_SLOT = re.compile(r"\{(\w+)\}")


def render(template: str, slots: dict[str, list[str]], rnd: random.Random) -> str:
    """Fill every `{slot}` with a random alternative; unknown slots stay as written."""

    def fill(m: re.Match) -> str:
        alts = slots.get(m.group(1))
        return rnd.choice(alts) if alts else m.group(0)

    return _SLOT.sub(fill, template)


def expand(templates: Sequence[str], key: str, per_template: int = 12,
           extra: dict[str, list[str]] | None = None, typo_rate: float = 0.0) -> list[str]:
    """Up to `per_template` distinct renderings of each template (deterministic for `key`)."""
    slots = {**SLOTS, **(extra or {})}
    rnd = random.Random(zlib.crc32(key.encode()))
    out: dict[str, None] = {}
    for t in templates:
        got = 0
        for _ in range(per_template * 3):
            s = render(t, slots, rnd)
            if s not in out:
                out[s] = None
                got += 1
            if got >= per_template:
                break
    texts = list(out)
    if typo_rate:
        texts += [_typo(s, rnd) for s in texts if rnd.random() < typo_rate]
    return texts or [""]


def _typo(s: str, rnd: random.Random) -> str:
    """Swap two adjacent letters: real queries are misspelled, and lexicons miss misspellings."""
    if len(s) < 5:
        return s
    i = rnd.randrange(1, len(s) - 2)
    return s[:i] + s[i + 1] + s[i] + s[i + 2:]


@dataclass(frozen=True)
class Bank:
    """Many groups of strings in one Arrow array; `group` selects the group of each row."""

    values: pa.Array
    offsets: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, groups: Sequence[Sequence[str]]) -> Bank:
        groups = [list(g) or [""] for g in groups]
        sizes = np.array([len(g) for g in groups], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(pa.array([s for g in groups for s in g], pa.string()), offsets, sizes)

    def index(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Row index into `values` for uniform draws `u` in [0, 1)."""
        return self.offsets[group] + np.minimum((u * self.sizes[group]).astype(np.int64), self.sizes[group] - 1)

    def pick(self, group: np.ndarray, rng: np.random.Generator) -> pa.Array:
        return self.values.take(pa.array(self.index(group, rng.random(len(group)))))


@dataclass(frozen=True)
class Ref:
    """A string column not yet materialised: row i is `values[index[i]]`. Why: reordering (time sort,
    duplicates) then costs an integer gather, and the strings are gathered once, at the end."""

    values: pa.Array
    index: np.ndarray

    def reorder(self, order: np.ndarray) -> Ref:
        return Ref(self.values, self.index[order])

    def materialise(self) -> pa.Array:
        return self.values.take(pa.array(self.index))


def concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise string concatenation; a null part makes the row null (callers avoid nulls)."""
    return pc.binary_join_element_wise(*parts, "")


def choose(values: Sequence[str], idx: np.ndarray) -> pa.Array:
    return pa.array(list(values), pa.string()).take(pa.array(idx))


def int_strings(values: np.ndarray, width: int = 0) -> pa.Array:
    """Integers as decimal strings, zero-padded to `width`."""
    out = pc.cast(pa.array(values, pa.int64()), pa.string())
    return pc.utf8_lpad(out, width, "0") if width else out


def where(mask: np.ndarray, a: pa.Array, b: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask, pa.bool_()), a, b)
