"""Random streams keyed by (seed, week, stream name).

Why one stream per (week, table) instead of one generator for the run: a week (or one table of it) can be
regenerated on its own and comes out byte-identical, and adding a table does not shift the others' draws.
"""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, week: int, stream: str) -> np.random.Generator:
    key = zlib.crc32(stream.encode())
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, week + 1, key])))
