"""The optimised vote against its previous implementation (`labels_dense_vote`, kept verbatim: every answer
row in every tally, no cached row splits), bit for bit, and the whole aggregation (three votes, LOTO,
calibration, priors) on it; on random tables with ties, zero confidences, unknowns, rows not sorted by
user, teacher weights, multi-label attributes and several samples per teacher."""

from __future__ import annotations

import labels_dense_vote as dense
import numpy as np
import pyarrow as pa
import pytest

from conf_profile.config import LabelSettings
from conf_profile.config.teachers import teacher_spec
from conf_profile.labels import aggregate as aggregate_mod
from conf_profile.labels import calibrate as calibrate_mod
from conf_profile.labels.aggregate import aggregate_ballots
from conf_profile.labels.ballots import encode
from conf_profile.labels.vote import vote
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing.teacher_answers import teacher_table

TAX = load_taxonomy()
FIELDS = ("label", "confidence", "n_voters", "denom", "scores")


def _table(seed: int, n_users: int = 120, samples: bool = False) -> pa.Table:
    """Coarse confidences (0.0 .. 0.9, so ties and zero weights are common), ~25 % unknown, some missing
    answers, every multi-label attribute with random label sets; optionally a second sample per teacher."""
    rng = np.random.default_rng(seed)
    rows = []
    order = list(TAX.single) + list(TAX.multi)
    for u in rng.permutation(n_users):  # rows not sorted by user: the bins must follow row order anyway
        for t in "abcde":
            for k in range(2 if samples and t in "ab" else 1):
                for attr in order:
                    if rng.random() < 0.1:
                        continue
                    conf = float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 0.9]))
                    if rng.random() < 0.25:
                        label = TAX.unknown
                    elif attr.is_multi:
                        label = list(rng.choice(attr.classes[:4], size=int(rng.integers(1, 3)), replace=False))
                    else:
                        label = str(rng.choice(attr.classes[:3]))
                    rows.append((f"user{u:04d}", t, attr.name, label, conf, None, k))
    return teacher_table(rows)


def _same(x, y, what) -> None:
    for f in FIELDS:
        a, b = getattr(x, f), getattr(y, f)
        if a is None or b is None:
            assert a is None and b is None, (what, f)
            continue
        assert a.dtype == b.dtype and np.array_equal(a, b), (what, f)


@pytest.mark.parametrize("seed,samples", [(0, False), (1, True), (2, False)])
def test_vote_is_bit_identical_to_the_full_tally(seed: int, samples: bool) -> None:
    teachers = [teacher_spec(name=t, weight=w) for t, w in zip("abcde", (1.0, 2.0, 0.5, 1.0, 1.0), strict=True)]
    for spec in (None, teachers):
        b = encode(_table(seed, samples=samples), TAX, teachers=spec)
        masks = [None, np.ones(len(b.u), bool)] + [b.teacher != t for t in range(len(b.teachers))]
        masks.append(np.random.default_rng(seed).random(len(b.u)) < 0.5)
        for method in ("majority", "weighted"):
            for rows in masks:
                for lam in (1.0, 0.0):
                    got = vote(b, method, 0.5, lam, rows=rows)
                    ref = dense.vote(b, method, 0.5, lam, rows=rows)
                    _same(got, ref, (method, lam, rows is None))
        tied = dense.vote(b, "weighted")
        assert (tied.label[:, b.layout.single_idx] == -1).any() and (tied.label >= 1).any()


def test_vote_without_single_votes_and_with_zero_confidences() -> None:
    t = teacher_table([("u1", "a", "gender", "unknown", 0.5), ("u2", "a", "gender", "unknown", 0.2)])
    b = encode(t, TAX)
    for method in ("majority", "weighted"):
        _same(vote(b, method), dense.vote(b, method), method)
    b = encode(teacher_table([("u1", "a", "gender", "male", 0.0), ("u1", "b", "gender", "female", 0.0)]), TAX)
    for method in ("majority", "weighted"):  # zero confidences: scores 0, every class within 1e-7 of the best
        _same(vote(b, method), dense.vote(b, method), method)


@pytest.mark.parametrize("seed", [0, 1])
def test_aggregation_equals_the_aggregation_on_dense_votes(seed: int, monkeypatch) -> None:
    b = encode(_table(seed, n_users=300, samples=seed == 1), TAX)
    settings = LabelSettings(teachers=[], calibration_min_points=50)
    got = aggregate_ballots(b, settings)
    monkeypatch.setattr(calibrate_mod, "vote", dense.vote)
    monkeypatch.setattr(aggregate_mod, "vote", dense.vote)
    b2 = encode(_table(seed, n_users=300, samples=seed == 1), TAX)
    ref = aggregate_ballots(b2, settings)
    for f in ("label", "confidence", "agreement", "redundant", "weight"):
        assert np.array_equal(getattr(got, f), getattr(ref, f), equal_nan=f == "agreement"), f
    for v in ("majority", "weighted", "calibrated_vote"):
        _same(getattr(got, v), getattr(ref, v), v)
    assert got.n_points == ref.n_points and got.source == ref.source
    assert got.calibrator.maps == ref.calibrator.maps and got.shift.priors == ref.shift.priors


def test_points_by_attribute_equal_one_mask_per_attribute() -> None:
    from conf_profile.labels.isotonic import by_attribute

    rng = np.random.default_rng(0)
    for dtype in (np.int16, np.int64):
        attr = rng.integers(0, 7, 5000).astype(dtype)
        attr[attr == 5] = 4  # an attribute without points
        rows = by_attribute(attr, 8)
        assert len(rows) == 8
        for i in range(8):
            assert np.array_equal(rows[i], np.flatnonzero(attr == i)), (dtype, i)
