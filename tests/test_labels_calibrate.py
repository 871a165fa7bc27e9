"""Label-free calibration: leave-one-teacher-out points, isotonic maps, EM priors, prior shift, class caps."""

from __future__ import annotations

import numpy as np
import pytest

from conf_profile.labels.ballots import Layout, encode
from conf_profile.labels.calibrate import (
    _soft_vote_em,
    class_caps,
    loto,
    loto_points,
    prior_shift,
    reliability_weights,
    saerens_em,
)
from conf_profile.labels.isotonic import Calibrator, fit_isotonic
from conf_profile.labels.vote import vote
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing.teacher_answers import teacher_table

TAX = load_taxonomy()


def test_loto_points_by_hand():
    b = encode(teacher_table([
        ("u1", "a", "gender", "male", 0.9), ("u1", "b", "gender", "male", 0.7), ("u1", "c", "gender", "female", 0.5),
        ("u2", "a", "gender", "male", 0.5), ("u2", "b", "gender", "unknown", 0.1), ("u2", "c", "gender", "male", 0.5),
    ]), TAX)
    p = loto_points(b, threshold=0.5, unknown_weight=1.0)
    got = sorted(zip(np.round(p.x.astype(float), 4).tolist(), p.y.astype(float).tolist(), strict=True))
    # held out a: u1 others {b male .7, c female .5} -> male .7/1.2, a agrees; u2 others {b unk .1, c male .5}
    #   -> male .5/.6, a agrees.  held out b: u1 {a .9 male, c .5 female} -> male .9/1.4, b agrees; u2: b
    #   abstained -> no point.  held out c: u1 {a, b male} -> male 1.0, c disagrees; u2 -> male .5/.6, agrees.
    expect = sorted([(round(0.7 / 1.2, 4), 1.0), (round(0.5 / 0.6, 4), 1.0), (round(0.9 / 1.4, 4), 1.0),
                     (1.0, 0.0), (round(0.5 / 0.6, 4), 1.0)])
    assert np.allclose(got, expect, atol=1e-4)
    assert set(p.attr.tolist()) == {b.layout.attributes.index("gender")}


def test_loto_multilabel_compares_whole_sets():
    b = encode(teacher_table([
        ("u1", "a", "interests", ["gaming", "music"], 0.9), ("u1", "b", "interests", ["gaming", "music"], 0.5),
        ("u1", "c", "interests", ["gaming"], 0.5),
    ]), TAX)
    p = loto_points(b, 0.5, 1.0)
    # held out a: others {gm .5, g .5}: gaming 1.0, music .5 >= .5 -> {g, m}, conf .5/1.0; a agrees
    # held out b: others {gm .9, g .5}: {g, m}(music .9/1.4) conf .9/1.4; b agrees
    # held out c: others both {g, m}: conf 1.0; c said {g}: disagrees
    got = sorted(zip(np.round(p.x.astype(float), 4).tolist(), p.y.astype(float).tolist(), strict=True))
    assert np.allclose(got, sorted([(0.5, 1.0), (round(0.9 / 1.4, 4), 1.0), (1.0, 0.0)]), atol=1e-4)


def test_isotonic_map_recovers_rates_and_is_monotone():
    rng = np.random.default_rng(0)
    x = np.repeat([0.2, 0.5, 0.8], 4000)
    rate = np.repeat([0.1, 0.5, 0.9], 4000)
    y = (rng.random(len(x)) < rate).astype(float)
    m = fit_isotonic(x, y, "attribute")
    assert m(np.array([0.2, 0.5, 0.8])) == pytest.approx([0.1, 0.5, 0.9], abs=0.03)
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(m(grid)) >= 0)
    assert m(np.array([0.0]))[0] == pytest.approx(m(np.array([0.2]))[0])  # clipped, not extrapolated
    assert fit_isotonic(np.array([0.5]), np.array([1.0]), "attribute").scope == "identity"


def test_calibrator_falls_back_to_pooled_map_for_small_attributes():
    attrs = ["gender", "age_group"]
    x = np.r_[np.full(300, 0.9), np.full(300, 0.6), np.full(5, 0.9)]
    y = np.r_[np.ones(300), np.zeros(300), np.zeros(5)]
    ai = np.r_[np.zeros(600, int), np.ones(5, int)]
    cal = Calibrator.fit(attrs, ai, x, y, min_points=100)
    assert cal.maps["gender"].scope == "attribute"
    assert cal.maps["age_group"].scope == "pooled"
    assert cal.maps["age_group"].n_points == 5
    out = cal.apply(attrs, np.array([[0.9, 0.9]]))
    assert out[0, 0] == pytest.approx(1.0)
    assert out[0, 1] == pytest.approx(300 / 305)  # the pooled map mixes in the 5 wrong points


def test_saerens_em_recovers_a_known_prior_shift():
    rng = np.random.default_rng(1)
    means = np.array([0.0, 1.5, 3.0])
    train_prior = np.array([0.6, 0.3, 0.1])
    true_prior = np.array([0.2, 0.3, 0.5])
    y = rng.choice(3, size=30000, p=true_prior)
    x = rng.normal(means[y], 1.0)
    lik = np.exp(-0.5 * (x[:, None] - means[None, :]) ** 2)
    post = lik * train_prior
    post /= post.sum(axis=1, keepdims=True)  # exact posteriors of a classifier trained under train_prior
    assert np.abs(post.mean(axis=0) - true_prior).max() > 0.1  # the naive estimate is far off
    prior, adj, iters = saerens_em(post, train_prior)
    assert prior == pytest.approx(true_prior, abs=0.02)
    assert adj.sum(axis=1) == pytest.approx(np.ones(len(x)))
    assert iters > 1
    # adjusted decisions are more accurate than the unadjusted ones under the shifted prior
    assert (adj.argmax(1) == y).mean() > (post.argmax(1) == y).mean()


def test_soft_vote_em_recovers_the_class_distribution():
    rng = np.random.default_rng(2)
    n, r = 40000, 0.5
    true_prior = np.array([0.4, 0.3, 0.2, 0.1])
    y = rng.choice(4, size=n, p=true_prior)
    # the vote is right with probability r, else it says the majority class 0: it says 0 for ~70 % of users
    voted = np.where(rng.random(n) < r, y, 0)
    # calibrated q: P(y = voted | voted); wrong "0" votes hide the other classes in proportion to the prior,
    # which is exactly the soft-vote model the EM assumes
    q0 = true_prior[0] / (true_prior[0] + (1 - r) * (1 - true_prior[0]))
    q = np.where(voted == 0, q0, 1.0)
    assert (voted == 0).mean() == pytest.approx(0.7, abs=0.01)
    prior, _ = _soft_vote_em(voted, q, 4, np.full(4, 0.25))
    assert prior == pytest.approx(np.bincount(y, minlength=4) / n, abs=0.01)


def test_soft_vote_em_fixed_point_by_hand():
    # two users vote class 0 with q = .6, one votes class 1 with q = 1: class 0 keeps 2 * .6 / 3 = .4; the
    # .8 remainder flows to classes 1 and 2 by the prior, and class 2 (never voted) decays to 0
    prior, _ = _soft_vote_em(np.array([0, 0, 1]), np.array([0.6, 0.6, 1.0]), 3, np.full(3, 1 / 3))
    assert prior == pytest.approx([0.4, 0.6, 0.0], abs=1e-4)


def test_prior_shift_redecides_overpredicted_class():
    rows = []
    for i in range(6):  # close calls won by male
        rows += [(f"m{i}", "a", "gender", "male", 0.5), (f"m{i}", "b", "gender", "female", 0.3)]
    for i in range(2):  # clear females
        rows += [(f"f{i}", "a", "gender", "female", 0.9), (f"f{i}", "b", "gender", "female", 0.9)]
    b = encode(teacher_table(rows), TAX)
    r = vote(b)
    g = b.layout.attributes.index("gender")
    q = np.zeros_like(r.confidence)
    is_m = np.array([u.startswith("m") for u in b.users.to_pylist()])
    q[:, g] = np.where(is_m, 0.55, 0.95)
    s = prior_shift(b.layout, r, q)
    # soft votes: 6 x (m .55, f .45) + 2 x (m .05, f .95) -> priors (.425, .575)
    assert s.priors["gender"] == pytest.approx([0.425, 0.575], abs=1e-6)
    # vote shares with add-one smoothing: male 7/10, female 3/10; male .5 * .425/.7 < female .3 * .575/.3
    assert (s.label[is_m, g] == 1).all() and (s.label[~is_m, g] == 1).all()
    assert s.changed["gender"] == 6
    off = prior_shift(b.layout, r, q, enabled=False)
    assert off.changed["gender"] == 0 and (off.label == r.label).all()


def test_class_caps_drop_lowest_confidence_users():
    lay = Layout(TAX)
    g = lay.attributes.index("gender")
    n = 11
    label = np.full((n, lay.n_attrs), -1, dtype=np.int64)
    label[:, lay.multi_idx] = 0
    label[:8, g] = 0  # 8 male
    label[8:10, g] = 1  # 2 female
    label[10, g] = 0  # one more male, but not eligible (an evaluation user)
    conf = np.zeros((n, lay.n_attrs))
    conf[:, g] = [0.9, 0.3, 0.8, 0.2, 0.7, 0.6, 0.95, 0.5, 0.4, 0.9, 0.1]
    eligible = np.arange(n) < 10
    priors = {a: [1.0 / len(lay.classes(i))] * len(lay.classes(i)) for i, a in enumerate(lay.attributes)
              if not lay.is_multi[i]}
    keep, dropped = class_caps(lay, label, conf, priors, factor=1.2, eligible=eligible)
    # cap = ceil(1.2 * 0.5 * 10) = 6 males: drop the 2 least confident males (users 3: .2 and 1: .3)
    assert dropped["gender"] == 2
    assert np.flatnonzero(eligible & ~keep).tolist() == [1, 3]
    assert not keep[10]  # not eligible stays out
    keep2, dropped2 = class_caps(lay, label, conf, priors, factor=2.0, eligible=eligible)
    assert dropped2["gender"] == 0 and (keep2 == eligible).all()


def test_redundant_teacher_is_left_out_and_reliability_weights():
    rows = []
    truth = ["male", "female"] * 10
    for i, y in enumerate(truth):
        other = "female" if y == "male" else "male"
        a = y if i % 5 else other  # a: right 16/20
        b_ = y if i % 4 else other  # b: right 15/20
        rows += [(f"u{i:02d}", "a", "gender", a, 0.7), (f"u{i:02d}", "b", "gender", b_, 0.5)]
        rows.append((f"u{i:02d}", "copy", "gender", a, 0.9))  # "copy" reads what a reads: always says a's answer
    bal = encode(teacher_table(rows), TAX)
    g = bal.layout.attributes.index("gender")
    res = loto(bal, 0.5, 1.0, redundancy=0.9)
    k = {t: bal.teachers.index(t) for t in ("a", "b", "copy")}
    # copy vs vote(a .7, b .5): a wins whenever they disagree, so copy always agrees -> redundant; and a vs
    # vote(b .5, copy .9) is copy's answer, i.e. a's own: a pair of copies are redundant with each other
    assert res.rate[k["copy"], g] == pytest.approx(1.0) and res.rate[k["a"], g] == pytest.approx(1.0)
    assert res.redundant[k["copy"], g] and res.redundant[k["a"], g] and not res.redundant[k["b"], g]
    everyone = loto(bal, 0.5, 1.0)
    assert len(everyone.points) == 60 and len(res.points) == 20  # only b's points are informative
    assert not everyone.redundant.any()
    # b vs vote(a .7, copy .9) = a's answer: b agrees when a and b are both right or both wrong
    agree_b = np.mean([(i % 5 != 0) == (i % 4 != 0) for i in range(20)])
    assert res.rate[k["b"], g] == pytest.approx(agree_b)
    w = reliability_weights(bal, res.rate)
    assert w[bal.teacher == k["b"]] == pytest.approx(np.full(20, agree_b))


def test_loto_votes_the_samples_of_a_held_out_teacher():
    b = encode(teacher_table([
        # teacher s sampled three times: male .5, male .3, female .7 -> its own vote is male (.8 vs .7)
        ("u1", "s", "gender", "male", 0.5, None, 0), ("u1", "s", "gender", "male", 0.3, None, 1),
        ("u1", "s", "gender", "female", 0.7, None, 2),
        ("u1", "o", "gender", "male", 0.9),
    ]), TAX)
    res = loto(b, 0.5, 1.0)
    k = {t: b.teachers.index(t) for t in ("s", "o")}
    g = b.layout.attributes.index("gender")
    # s held out: others = o (male, 1.0) -> s's own vote male agrees; o held out: others = s's samples,
    # each weighing 1/3: male (.8/3) vs female (.7/3) -> male, o agrees
    assert res.rate[k["s"], g] == 1.0 and res.rate[k["o"], g] == 1.0
    assert sorted(np.round(res.points.x.astype(float), 4).tolist()) == [round(0.8 / 1.5, 4), 1.0]


def test_calibration_falls_back_in_order_and_never_silently():
    """Two redundant teachers (the same answers): LOTO keeps no points, LOTO with them kept has some; with a
    higher floor the agreement with the vote is used; with no answers at all the map is the identity, named."""
    from conf_profile.config import LabelSettings
    from conf_profile.labels.aggregate import AGREEMENT, IDENTITY, LOTO_ALL, aggregate_ballots

    rows = []
    for i in range(60):
        lab = "male" if i % 3 else "female"
        rows += [(f"u{i}", t, "gender", lab, 0.7) for t in ("a", "b")]
    b = encode(teacher_table(rows), TAX)
    agg = aggregate_ballots(b, LabelSettings(calibration_min_points=10, loto_redundancy=0.9))
    assert agg.source == LOTO_ALL and agg.n_points > 0
    agg = aggregate_ballots(b, LabelSettings(calibration_min_points=100_000, loto_redundancy=0.9))
    assert agg.source in (LOTO_ALL, AGREEMENT) and agg.n_points > 0
    empty = encode(teacher_table([("u1", "a", "gender", "unknown", 0.1)]), TAX)
    assert aggregate_ballots(empty, LabelSettings()).source == IDENTITY


def test_a_map_worse_than_the_raw_vote_is_refused():
    from conf_profile.labels.aggregate import CalibrationError, check_not_worse
    from conf_profile.labels.calibrate import Points
    from conf_profile.labels.isotonic import IsoMap

    lay = encode(teacher_table([("u1", "a", "gender", "male", 0.9)]), TAX).layout
    cal = Calibrator({a: IsoMap([0.0, 1.0], [1.0, 1.0], 0, "test") for a in lay.attributes})
    pts = Points(np.zeros(200, np.int64), np.full(200, 0.5), np.tile([0.0, 1.0], 100))  # perfectly calibrated
    with pytest.raises(CalibrationError, match="worse calibrated"):
        check_not_worse(lay, cal, pts, "test")
