"""Dirt on purpose, at the configured rates: PII, prompt injections, over-long text, emoji and non-ASCII,
nulls, out-of-range numbers and duplicate rows.

Why each is a separate Bernoulli per row: the tests (and validation) measure every rate on the written
tables, so each must be controlled on its own, whatever else happened to the row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from conf_profile.config import SimulateSettings
from conf_profile.simulate import banks as B
from conf_profile.simulate import vocab as V
from conf_profile.simulate.text import choose, concat, int_strings, where


def pii_text(rng: np.random.Generator, n: int) -> pa.Array:
    """An email address, a phone number or an ID-like digit run, each after a short lead-in."""
    names = V.FIRST_NAMES["male"] + V.FIRST_NAMES["female"]
    email = concat(choose(V.PII_LEADS, rng.integers(0, len(V.PII_LEADS), n)),
                   choose(names, rng.integers(0, len(names), n)), choose(["", ".", "_"], rng.integers(0, 3, n)),
                   int_strings(rng.integers(1, 10_000, n)), "@",
                   choose(V.EMAIL_DOMAINS, rng.integers(0, len(V.EMAIL_DOMAINS), n)))
    mobile = concat("1", int_strings(rng.integers(30, 100, n)), choose([" ", "-", ""], rng.integers(0, 3, n)),
                    int_strings(rng.integers(0, 10_000, n), 4), choose([" ", "-", ""], rng.integers(0, 3, n)),
                    int_strings(rng.integers(0, 10_000, n), 4))
    phone = concat(choose(V.PHONE_LEADS, rng.integers(0, len(V.PHONE_LEADS), n)),
                   where(rng.random(n) < 0.5, concat("+86 ", mobile), mobile))
    ident = concat(choose(V.ID_LEADS, rng.integers(0, len(V.ID_LEADS), n)),
                   int_strings(rng.integers(110_000, 660_000, n)), int_strings(rng.integers(0, 10**12, n), 12))
    kind = rng.integers(0, 3, n)
    return where(kind == 0, email, where(kind == 1, phone, ident))


def decorate(rng: np.random.Generator, text: pa.Array, sim: SimulateSettings) -> pa.Array:
    """Emoji, non-ASCII phrases and over-long text appended at their rates (independently)."""
    n = len(text)
    text = where(rng.random(n) < sim.emoji_rate, concat(text, choose(V.EMOJI, rng.integers(0, len(V.EMOJI), n))), text)
    foreign = concat(" ", choose(V.NON_ASCII, rng.integers(0, len(V.NON_ASCII), n)))
    text = where(rng.random(n) < sim.non_ascii_rate, concat(text, foreign), text)
    long = rng.random(n) < sim.long_text_rate
    return where(long, concat(text, B.long_texts().pick(np.zeros(n, np.int64), rng)), text)


def inject(rng: np.random.Generator, text: pa.Array, rate: float) -> pa.Array:
    """Prompt-injection text replacing or following the comment."""
    n = len(text)
    attack = B.injections().pick(np.zeros(n, np.int64), rng)
    mixed = where(rng.random(n) < 0.5, attack, concat(text, " ", attack))
    return where(rng.random(n) < rate, mixed, text)


def null_where(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    return where(mask, pa.nulls(len(arr), arr.type), arr) if mask.any() else arr


def negate(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Out-of-range numbers (negative durations, refunds logged as negative prices)."""
    mask = rng.random(len(values)) < rate
    return np.where(mask, -np.maximum(np.abs(values), 1.0), values)


def duplicate_index(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Row order with exact duplicates inserted right after their original (at-least-once delivery).
    Each row is repeated with probability rate/(1-rate), so duplicates are `rate` of the output rows."""
    q = rate / (1 - rate) if rate < 1 else 1.0
    reps = 1 + (rng.random(n) < q)
    return np.repeat(np.arange(n), reps)
