"""Streamed aggregation over user shards and the calibration sample: same results as the whole week."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.config import LabelSettings
from conf_profile.labels.aggregate import aggregate_ballots
from conf_profile.labels.ballots import encode
from conf_profile.labels.sample import sample_mask, subset_users, user_hash
from conf_profile.labels.stream import aggregate_stream, collect_sample
from conf_profile.labels.vote import vote
from conf_profile.testing.teacher_answers import answers_to_table, bench_taxonomy, simulate_answers

TAX = bench_taxonomy(4)
N = 1200


@pytest.fixture(scope="module")
def week() -> pa.Table:
    answers, _ = simulate_answers(N, TAX, 4, seed=3)
    return answers_to_table(answers, TAX)


def _shards(table: pa.Table, n: int) -> list[pa.Table]:
    """User shards by hash bucket (rows keep their order within a shard)."""
    users = table["user_id"].combine_chunks()
    bucket = user_hash(users) % np.uint64(n)
    return [table.filter(pa.array(bucket == i)) for i in range(n)]


def _streamed(table: pa.Table, settings: LabelSettings, n_shards: int = 3):
    shards = _shards(table, n_shards)
    cal, parts = aggregate_stream(lambda: iter(shards), TAX, settings)
    return cal, list(parts)


def _check_same(whole, b, parts) -> None:
    """Every shard's user rows equal the whole-week aggregate's rows for the same users."""
    seen = 0
    for sb, agg in parts:
        rows = pc.index_in(sb.users, value_set=b.users).to_numpy()
        seen += len(rows)
        for name in ("label", "confidence"):
            assert np.array_equal(getattr(agg, name), getattr(whole, name)[rows])
        for v in ("majority", "weighted", "calibrated_vote"):
            assert np.array_equal(getattr(agg, v).label, getattr(whole, v).label[rows])
            assert np.array_equal(getattr(agg, v).confidence, getattr(whole, v).confidence[rows])
        assert agg.calibrator.maps == whole.calibrator.maps
        assert agg.shift.priors == whole.shift.priors
    assert seen == b.n_users


def test_user_hash_is_stable_and_spreads():
    ids = pa.array(["u1", "u2", "", "a-much-longer-user-id-0001", "u1"])
    h = user_hash(ids)
    assert h.dtype == np.uint64 and h[0] == h[4] and len(set(h[:4].tolist())) == 4
    assert np.array_equal(user_hash(pa.chunked_array([ids[:2], ids[2:]])), h)
    assert np.array_equal(user_hash(ids.slice(1, 3)), h[1:4])  # offsets of a sliced array
    many = user_hash(pa.array([f"user{i:05d}" for i in range(20000)]))
    share = np.bincount((many % np.uint64(4)).astype(np.int64), minlength=4) / len(many)
    assert np.all(np.abs(share - 0.25) < 0.02)


def test_sample_mask_covers_everyone_or_k_plus_forced():
    users = pa.array([f"user{i:04d}" for i in range(100)])
    assert sample_mask(users, 100) is None
    force = np.zeros(100, bool)
    force[[3, 7]] = True
    m = sample_mask(users, 10, force)
    h = user_hash(users)
    assert m[np.argsort(h)[:10]].all() and m[[3, 7]].all() and 10 <= m.sum() <= 12


def test_subset_votes_like_those_users_did(week):
    b = encode(week, TAX)
    keep = np.zeros(b.n_users, bool)
    keep[::3] = True
    sub = subset_users(b, keep)
    assert sub.n_users == keep.sum() and sub.users.to_pylist() == b.users.filter(pa.array(keep)).to_pylist()
    for method in ("majority", "weighted"):
        full, part = vote(b, method), vote(sub, method)
        assert np.array_equal(part.label, full.label[keep]) and np.array_equal(part.confidence, full.confidence[keep])


def test_collect_sample_keeps_the_k_smallest_hashes(week):
    sample = collect_sample(_shards(week, 4), 100)
    users = pc.unique(sample.table["user_id"])
    all_users = pc.unique(week["user_id"])
    expected = np.sort(user_hash(all_users))[:100]
    assert sample.n_users == N and sample.n_sampled == 100
    assert np.array_equal(np.sort(user_hash(users)), expected)
    # every row of a sampled user is there
    assert sample.table.num_rows == pc.sum(pc.is_in(week["user_id"], value_set=users)).as_py()


def test_stream_equals_whole_week_when_the_sample_covers_everyone(week):
    settings = LabelSettings(teachers=[])
    b = encode(week, TAX)
    whole = aggregate_ballots(b, settings)
    cal, parts = _streamed(week, settings)
    assert cal.sample_users == N and len(parts) == 3
    _check_same(whole, b, parts)


def test_stream_equals_whole_week_with_the_same_small_sample(week):
    settings = LabelSettings(teachers=[], calibration_sample_users=300, prior_shift=True)
    b = encode(week, TAX)
    whole = aggregate_ballots(b, settings)
    cal, parts = _streamed(week, settings, n_shards=4)
    assert cal.sample_users == 300
    _check_same(whole, b, parts)
    # a smaller sample fits a different (but still sane) calibration than everyone
    everyone = aggregate_ballots(b, LabelSettings(teachers=[], prior_shift=True))
    assert everyone.n_points > whole.n_points
    assert np.mean(whole.label == everyone.label) > 0.95
