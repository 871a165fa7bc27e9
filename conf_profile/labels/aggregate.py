"""The array-level Stage 1 aggregation: three votes, reliability weights, the confidence map, the prior
shift. No I/O.

Kept apart from `aggregate_interval` so the benchmark times exactly what the pipeline computes, and tests
can check it without a lake.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from conf_profile.config import LabelSettings
from conf_profile.errors import ConfProfileError
from conf_profile.labels.ballots import Ballots, Layout
from conf_profile.labels.calibrate import (
    Points,
    Priors,
    PriorShift,
    decided,
    estimate_priors,
    fit_calibrator,
    gold_points,
    loto,
    own_answers,
    reliability_weights,
    shift_labels,
)
from conf_profile.labels.isotonic import Calibrator, by_attribute
from conf_profile.labels.sample import sample_mask, subset_users
from conf_profile.labels.vote import VoteResult, vote

# Where the confidence map's points come from, in the order tried (method.md 4, "never degrades silently"):
LOTO = "leave-one-teacher-out"
LOTO_ALL = "leave-one-teacher-out, redundant teachers kept"  # too few points once redundant ones are left out
AGREEMENT = "agreement with the weighted vote"  # every teacher redundant / one teacher: optimistic, but monotone
IDENTITY = "identity (no calibration points)"
GOLD_DEV = "gold-dev"


class CalibrationError(ConfProfileError):
    """The fitted map is worse calibrated than the uncalibrated vote on its own points: never used."""


@dataclass
class Aggregate:
    layout: Layout
    majority: VoteResult
    weighted: VoteResult
    calibrated_vote: VoteResult  # the weighted vote with reliability weights (before the prior shift)
    label: np.ndarray  # (U, A) calibrated vote labels (after the prior shift)
    confidence: np.ndarray  # (U, A) calibrated probabilities; 0 where unknown / empty
    calibrator: Calibrator
    shift: PriorShift
    source: str  # LOTO or GOLD_DEV
    n_points: int
    agreement: np.ndarray  # (n_teachers, A) LOTO agreement rates (NaN: no answers)
    redundant: np.ndarray  # (n_teachers, A) left out of the LOTO points
    weight: np.ndarray  # (n_answers,) vote weight of each answer in the calibrated vote


@dataclass
class Calibration:
    """What is fitted on the calibration sample and applied to every user (or shard of users)."""

    teachers: list[str]  # teacher names the rows of `agreement` / `redundant` refer to
    agreement: np.ndarray  # (n_teachers, A) LOTO agreement rates (NaN: no answers)
    redundant: np.ndarray  # (n_teachers, A)
    calibrator: Calibrator
    source: str  # LOTO or GOLD_DEV
    n_points: int
    priors: Priors
    sample_users: int  # users the fit saw

    def rates_for(self, teachers: list[str]) -> np.ndarray:
        """Agreement rates in the row order of another teacher list (NaN for teachers the fit never saw)."""
        pos = {t: i for i, t in enumerate(self.teachers)}
        rows = [self.agreement[pos[t]] if t in pos else np.full(self.agreement.shape[1], np.nan) for t in teachers]
        return np.array(rows).reshape(len(teachers), self.agreement.shape[1])


def aggregate_ballots(b: Ballots, settings: LabelSettings,
                      gold: tuple[np.ndarray, np.ndarray] | None = None) -> Aggregate:
    """`gold` = (codes, dev-user mask) from `encode_labels` when calibrating on gold dev users.
    The calibration is fitted on at most `settings.calibration_sample_users` users (hash-chosen, gold dev
    users always in) and applied to all; when that covers everyone the sample is skipped altogether."""
    force = None if gold is None else gold[1].any(axis=1)
    sample = sample_mask(b.users, settings.calibration_sample_users, force)
    if sample is None:
        cal, votes = fit_calibration(b, settings, gold)
        return apply_calibration(b, cal, settings, votes)
    sgold = None if gold is None else (gold[0][sample], gold[1][sample])
    cal, _ = fit_calibration(subset_users(b, sample), settings, sgold)
    return apply_calibration(b, cal, settings)


def fit_calibration(b: Ballots, settings: LabelSettings, gold: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[Calibration, dict[str, VoteResult]]:
    """LOTO (or gold dev) points, isotonic maps, reliability rates and EM priors from the users of `b`.
    Also returns the votes it computed on `b` (weighted, calibrated), so applying to the same users reuses them."""
    lay = b.layout
    thr, lam, red = settings.multilabel_threshold, settings.unknown_weight, settings.loto_redundancy
    weighted = vote(b, "weighted", thr, lam)
    first = loto(b, thr, lam, red)
    points, cvote = first.points, weighted
    if settings.reliability_weights:
        # The map is still fitted on the first pass's points (others' votes without reliability weights):
        # a second pass with reweighted others measured worse ECE on two simulated weeks (docs/labels.md).
        cvote = vote(replace(b, weight=reliability_weights(b, first.rate)), "weighted", thr, lam)
    if gold is not None:
        points, source = gold_points(lay, cvote, gold[0], gold[1]), GOLD_DEV
    else:
        points, source = fallback_points(b, cvote, first.points, settings)
    cal = fit_calibrator(lay, points, settings.calibration_min_points, settings.calibration_per_attribute)
    check_not_worse(lay, cal, points, source)
    pri = estimate_priors(lay, cvote, cal.apply(lay.attributes, cvote.confidence))
    fitted = Calibration(list(b.teachers), first.rate, first.redundant, cal, source, len(points), pri, b.n_users)
    return fitted, {"weighted": weighted, "calibrated": cvote}


def fallback_points(b: Ballots, cvote: VoteResult, loto_points: Points, settings: LabelSettings) -> tuple[Points, str]:
    """LOTO points; with fewer than `calibration_min_points`, LOTO with the redundant teachers kept; then each
    teacher's agreement with the (calibrated) weighted vote; the first source with enough points wins, else the
    one with the most points, else the identity. The source is reported everywhere the map is."""
    need = settings.calibration_min_points
    thr, lam = settings.multilabel_threshold, settings.unknown_weight
    tried = [(loto_points, LOTO)]
    if len(loto_points) < need:
        tried.append((loto(b, thr, lam, None).points, LOTO_ALL))
        if len(tried[-1][0]) < need:
            tried.append((agreement_points(b, cvote, thr, lam), AGREEMENT))
    for pts, src in tried:
        if len(pts) >= need:
            return pts, src
    pts, src = max(tried, key=lambda p: len(p[0]))
    return (pts, src) if len(pts) else (pts, IDENTITY)


def agreement_points(b: Ballots, cvote: VoteResult, threshold: float, unknown_weight: float) -> Points:
    """(vote confidence, does this teacher's answer equal the vote?) for every answered, decided cell."""
    lay = b.layout
    ai_all, x_all, y_all = [], [], []
    for t in np.flatnonzero(np.bincount(b.teacher, minlength=len(b.teachers))):
        own, answered = own_answers(b, b.teacher == t, threshold, unknown_weight)
        ok = answered & decided(lay, cvote.label)
        _, ai = np.nonzero(ok)
        ai_all.append(ai)
        x_all.append(cvote.confidence[ok])
        y_all.append((own == cvote.label)[ok].astype(np.float64))
    if not ai_all:
        return Points(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    return Points(np.concatenate(ai_all), np.concatenate(x_all), np.concatenate(y_all))


def check_not_worse(lay: Layout, cal: Calibrator, points: Points, source: str) -> None:
    """The calibrated confidences must not be worse calibrated (ECE, 10 bins) than the uncalibrated vote on
    the points they were fitted on; the stage fails with this message otherwise."""
    if not len(points):
        return
    mapped = np.empty(len(points))
    for name, sel in zip(lay.attributes, by_attribute(points.attr, lay.n_attrs), strict=True):
        mapped[sel] = cal.maps[name](points.x[sel])
    raw, fitted = _ece(points.x, points.y), _ece(mapped, points.y)
    if fitted > raw + 1e-3:  # numerical slack only: an isotonic fit on its own points does not get worse
        raise CalibrationError(
            f"The confidence map fitted on {len(points):,} points ({source}) is worse calibrated than the "
            f"uncalibrated vote on those points (ECE {fitted:.3f} vs {raw:.3f}): not used.",
            "Check the teachers (are they all redundant?), or configure labels.gold_dev_users.")


def _ece(conf: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    b = np.minimum((np.clip(conf, 0, 1) * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, weights=correct, minlength=n_bins) - np.bincount(b, weights=conf, minlength=n_bins))
    return float(gap.sum() / max(n.sum(), 1))


def apply_calibration(b: Ballots, cal: Calibration, settings: LabelSettings,
                      votes: dict[str, VoteResult] | None = None) -> Aggregate:
    """The three votes of the users in `b`, the calibrated one with `cal`'s reliability weights, confidence
    map and priors. `votes` from `fit_calibration` on the same `b` are reused, not recomputed."""
    lay = b.layout
    thr, lam = settings.multilabel_threshold, settings.unknown_weight
    votes = votes or {}
    majority = vote(b, "majority", thr, lam)
    weighted = votes.get("weighted") or vote(b, "weighted", thr, lam)
    cb, cvote = b, weighted
    if settings.reliability_weights:
        cb = replace(b, weight=reliability_weights(b, cal.rates_for(b.teachers)))
        cvote = votes.get("calibrated") or vote(cb, "weighted", thr, lam)
    label, changed = shift_labels(lay, cvote, cal.priors, enabled=settings.prior_shift)
    shift = PriorShift(label, cal.priors.priors, cal.priors.vote_shares, changed, cal.priors.iterations)
    raw = redecided_confidence(lay, cvote, label)
    conf = np.where(decided(lay, label), cal.calibrator.apply(lay.attributes, raw), 0.0)
    # The score matrices are the largest arrays; only the calibrated vote's are needed later.
    majority = replace(majority, scores=None)
    if cvote is not weighted:
        weighted = replace(weighted, scores=None)
    return Aggregate(lay, majority, weighted, cvote, label, conf, cal.calibrator, shift, cal.source, cal.n_points,
                     cal.rates_for(b.teachers), _rows_for(cal, b.teachers), cb.weight)


def _rows_for(cal: Calibration, teachers: list[str]) -> np.ndarray:
    pos = {t: i for i, t in enumerate(cal.teachers)}
    rows = [cal.redundant[pos[t]] if t in pos else np.zeros(cal.redundant.shape[1], bool) for t in teachers]
    return np.array(rows, dtype=bool).reshape(len(teachers), cal.redundant.shape[1])


def redecided_confidence(layout: Layout, result: VoteResult, label: np.ndarray) -> np.ndarray:
    """Vote confidence (score share) of `label`, which may differ from the vote's own argmax."""
    conf = result.confidence.copy()
    for ai in layout.single_idx:  # per attribute: a gather over users
        lab = label[:, ai]
        changed = (lab != result.label[:, ai]) & (lab >= 0)
        if changed.any():
            rows = np.flatnonzero(changed)
            s = result.scores[rows, layout.offsets[ai] + lab[rows]]
            conf[rows, ai] = s / result.denom[rows, ai]
    return conf
