"""The array-level Stage 1 aggregation: three votes, reliability weights, the confidence map, the prior
shift. No I/O.

Kept apart from `aggregate_interval` so the benchmark times exactly what the pipeline computes, and tests
can check it without a lake.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from conf_profile.config import LabelSettings
from conf_profile.labels.ballots import Ballots, Layout
from conf_profile.labels.calibrate import (
    PriorShift,
    decided,
    fit_calibrator,
    gold_points,
    loto,
    prior_shift,
    reliability_weights,
)
from conf_profile.labels.isotonic import Calibrator
from conf_profile.labels.vote import VoteResult, vote

LOTO = "leave-one-teacher-out"
GOLD_DEV = "gold-dev"


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


def aggregate_ballots(b: Ballots, settings: LabelSettings,
                      gold: tuple[np.ndarray, np.ndarray] | None = None) -> Aggregate:
    """`gold` = (codes, dev-user mask) from `encode_labels` when calibrating on gold dev users."""
    lay = b.layout
    thr, lam, red = settings.multilabel_threshold, settings.unknown_weight, settings.loto_redundancy
    majority = vote(b, "majority", thr, lam)
    weighted = vote(b, "weighted", thr, lam)
    first = loto(b, thr, lam, red)
    agreement, redundant, points = first.rate, first.redundant, first.points
    cb, cvote = b, weighted
    if settings.reliability_weights:
        # The map is still fitted on the first pass's points (others' votes without reliability weights):
        # a second pass with reweighted others measured worse ECE on two simulated weeks (docs/labels.md).
        cb = replace(b, weight=reliability_weights(b, first.rate))
        cvote = vote(cb, "weighted", thr, lam)
    source = LOTO
    if gold is not None:
        points, source = gold_points(lay, cvote, gold[0], gold[1]), GOLD_DEV
    cal = fit_calibrator(lay, points, settings.calibration_min_points, settings.calibration_per_attribute)
    q = cal.apply(lay.attributes, cvote.confidence)
    shift = prior_shift(lay, cvote, q, enabled=settings.prior_shift)
    raw = redecided_confidence(lay, cvote, shift.label)
    conf = np.where(decided(lay, shift.label), cal.apply(lay.attributes, raw), 0.0)
    # The score matrices are the largest arrays; only the calibrated vote's are needed later.
    majority = replace(majority, scores=None)
    if cvote is not weighted:
        weighted = replace(weighted, scores=None)
    return Aggregate(lay, majority, weighted, cvote, shift.label, conf, cal, shift, source, len(points),
                     agreement, redundant, cb.weight)


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
