"""Stage 1 aggregation streamed over user shards, so peak memory does not grow with the number of users.

Two passes over the shards (each shard holds all answers of its users, e.g. shard-i of every teacher):
1. the calibration sample: the `labels.calibration_sample_users` users with the smallest id hash
   (`labels.sample`), collected keeping only their rows and one shard at a time; LOTO, the isotonic maps,
   reliability rates and EM priors are fitted on it (`aggregate.fit_calibration`);
2. per shard: encode, the three votes, the calibrated vote with the fitted weights, map and priors
   (`aggregate.apply_calibration`); results are yielded shard by shard for the caller to write out.

Memory bound: O(answers of the largest shard + answers of the K = calibration_sample_users sampled users),
independent of the number of shards and users. Measured (bench_voting, 5 teachers x 8 attributes = 40
answers per user, 25k-user shards, K = 25k): peak RSS 0.70 GB at 50k and at 200k users (0.23 GB of it
imports), i.e. about 0.5 KB per answer row of a shard or of the sample; the whole table at once: 0.88 ->
2.72 GB. The caller should write each yielded shard out rather than keep it.
When the sample covers every user, results are identical to `aggregate_ballots` on the whole week; a
teacher's sample count (which splits its vote among its samples) is counted per shard, the same as for the
whole week when each teacher answers its users with the same number of samples.
Gold-dev calibration (`labels.gold_dev_users`) is not streamed: it needs the gold table of the dev users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import LabelSettings
from conf_profile.labels.aggregate import Aggregate, Calibration, apply_calibration, fit_calibration
from conf_profile.labels.ballots import Ballots, encode
from conf_profile.labels.sample import bottom_k, user_hash
from conf_profile.taxonomy import Taxonomy

Shard = pa.Table | tuple[pa.Table, pa.Array]  # teacher answers, optionally with the shard's user index


@dataclass
class Sample:
    table: pa.Table  # TEACHER_OUTPUT_SCHEMA rows of the sampled users
    n_users: int  # users seen over all shards (those with at least one answer without an error)
    n_sampled: int


def _split(shard: Shard) -> tuple[pa.Table, pa.Array | None]:
    return shard if isinstance(shard, tuple) else (shard, None)


def _row_hashes(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(hash per row, hashes of the users with an answer without error): one hash per distinct user."""
    enc = pc.dictionary_encode(pc.cast(table["user_id"], pa.string())).combine_chunks()
    h = user_hash(enc.dictionary)
    codes = pc.fill_null(enc.indices, 0).to_numpy(zero_copy_only=False)
    row_h = h[codes] if len(h) else np.zeros(len(codes), np.uint64)
    ok = pc.is_null(table["error"]).to_numpy(zero_copy_only=False)
    return row_h, np.unique(row_h[ok])


def collect_sample(shards: Iterable[Shard], k: int) -> Sample:
    """The rows of the `k` users with the smallest id hashes over all shards, in one pass that holds at
    most those users' rows plus one shard (the bottom-k is updated per shard and earlier rows re-filtered)."""
    kept: list[tuple[pa.Table, np.ndarray]] = []
    best = np.zeros(0, dtype=np.uint64)
    n_users = 0
    for shard in shards:
        table, _ = _split(shard)
        if table.num_rows == 0:
            continue
        row_h, users_h = _row_hashes(table)
        n_users += len(users_h)
        best = bottom_k(np.concatenate([best, users_h]), k)
        limit = best[-1] if len(best) else np.uint64(0)
        kept = [(t, h) if h.max(initial=0) <= limit else (t.filter(pa.array(h <= limit)), h[h <= limit])
                for t, h in kept]
        sel = row_h <= limit
        kept.append((table.filter(pa.array(sel)), row_h[sel]))
        kept = [(t, h) for t, h in kept if t.num_rows]
    tables = [t for t, _ in kept]
    table = pa.concat_tables(tables) if tables else None
    return Sample(table, n_users, len(best))


def aggregate_stream(shards: Callable[[], Iterable[Shard]], taxonomy: Taxonomy, settings: LabelSettings
                     ) -> tuple[Calibration, Iterator[tuple[Ballots, Aggregate]]]:
    """Fit the calibration on the sample (first pass over `shards()`), then yield (ballots, aggregate) per
    shard (second pass). `shards` is called twice and must yield the same shards both times; shards must
    not share users (a user's answers in two shards would be voted twice, apart)."""
    sample = collect_sample(shards(), settings.calibration_sample_users)
    if sample.table is None:
        raise ValueError("no teacher answers in any shard")
    sb = encode(sample.table, taxonomy, settings.teachers)
    del sample
    cal, _ = fit_calibration(sb, settings)
    del sb

    def per_shard() -> Iterator[tuple[Ballots, Aggregate]]:
        for shard in shards():
            table, users = _split(shard)
            b = encode(table, taxonomy, settings.teachers, users=users, keep_rationale=settings.include_rationale)
            del table
            yield b, apply_calibration(b, cal, settings)

    return cal, per_shard()
