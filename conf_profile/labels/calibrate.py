"""Label-free calibration (method.md Stage 1 step 4): confidence maps, class priors, class caps.

(a) Confidence: isotonic map from the vote confidence to P(correct), fitted on leave-one-teacher-out
    agreement (for each teacher t: does t's answer equal the vote of the others, at the others' confidence?)
    or, when configured, on a few gold dev users.
(b) Priors: EM on the calibrated soft votes estimates each attribute's class distribution; the vote is then
    re-decided with the Saerens et al. (2002) prior-ratio adjustment (see `prior_shift`).
(c) Caps: no class may exceed its estimated share by more than a factor in the distillation set.
The formulas and the choices behind them are written up in docs/labels.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from conf_profile.labels.ballots import Ballots, Layout
from conf_profile.labels.isotonic import Calibrator
from conf_profile.labels.vote import VoteResult, vote
from conf_profile.progress import progress


@dataclass
class Points:
    """(attribute, confidence, correct) triples for fitting the confidence map."""

    attr: np.ndarray  # attribute index
    x: np.ndarray  # vote confidence
    y: np.ndarray  # 1 = correct (agreement), 0 = not

    def __len__(self) -> int:
        return len(self.x)


def decided(layout: Layout, label: np.ndarray) -> np.ndarray:
    """Non-abstained answers: a class for single-label attributes, a non-empty set for multi-label ones."""
    return np.where(layout.is_multi[None, :], label != 0, label >= 0)


@dataclass
class Loto:
    """Leave-one-teacher-out results: the calibration points and each (teacher, attribute)'s agreement rate."""

    points: Points
    rate: np.ndarray  # (n_teachers, A) share of the teacher's answers that equal the others' vote (NaN: none)
    redundant: np.ndarray  # (n_teachers, A) bool: rate >= the redundancy limit, points left out


def loto(b: Ballots, threshold: float, unknown_weight: float, redundancy: float | None = None,
         weight: np.ndarray | None = None) -> Loto:
    """Leave-one-teacher-out agreement. For each teacher t: does t's answer equal the vote of the others,
    at the others' vote confidence? A teacher's samples are held out together (its answer is the vote of its
    samples); points where it abstained carry no information and are skipped.

    Redundancy: a (teacher, attribute) whose answers equal the others' vote at least `redundancy` of the time
    is (nearly) a function of the others - e.g. a teacher reading every source the others read - so its
    agreement measures redundancy, not correctness, and its points are left out (docs/labels.md shows the
    measurement; None = keep all). `weight` overrides the answers' vote weights for the others' vote."""
    lay = b.layout
    voting = b if weight is None else replace(b, weight=weight)
    n_t = len(b.teachers)
    rate = np.full((n_t, lay.n_attrs), np.nan)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    present = np.flatnonzero(np.bincount(b.teacher, minlength=n_t)).tolist()  # no sort of every answer
    for t in progress(present, desc="leave-one-teacher-out", unit="teacher"):
        mine = b.teacher == t
        others = vote(voting, "weighted", threshold, unknown_weight, rows=~mine, count_voters=False)
        own_label, own_answered = own_answers(b, mine, threshold, unknown_weight)
        ok = own_answered & decided(lay, others.label)
        agree = (own_label == others.label) & ok
        n_ok = ok.sum(axis=0)
        rate[t] = np.where(n_ok > 0, agree.sum(axis=0) / np.maximum(n_ok, 1), np.nan)
        _, ai = np.nonzero(ok)  # compact dtypes: at 1M users there are tens of millions of points
        parts.append((ai.astype(np.int16), others.confidence[ok].astype(np.float32), agree[ok].astype(np.int8),
                      np.full(len(ai), t, dtype=np.int16)))
    redundant = np.zeros_like(rate, dtype=bool) if redundancy is None else np.nan_to_num(rate, nan=0.0) >= redundancy
    if not parts:
        return Loto(Points(np.zeros(0, np.int64), np.zeros(0), np.zeros(0)), rate, redundant)
    ai, x, y, tt = (np.concatenate(p) for p in zip(*parts, strict=True))
    keep = ~redundant[tt, ai]
    return Loto(Points(ai[keep], x[keep], y[keep]), rate, redundant)


def own_answers(b: Ballots, mine: np.ndarray, threshold: float, unknown_weight: float) -> tuple[np.ndarray, ...]:
    """One teacher's answer per (user, attribute) in the vote's coding, and whether it answered (not unknown).
    With one answer per cell (the usual single sample) that is the answer itself; several samples are voted."""
    lay = b.layout
    group = b.index("group")[mine]
    if len(group) and np.bincount(group).max() > 1:
        own = vote(b, "weighted", threshold, unknown_weight, rows=mine)
        return own.label, np.where(lay.is_multi[None, :], own.n_voters > 0, own.label >= 0)
    label = np.where(lay.is_multi, 0, -1)[None, :] * np.ones((b.n_users, 1), dtype=np.int64)
    answered = np.zeros((b.n_users, lay.n_attrs), dtype=bool)
    rows = np.flatnonzero(mine & ~b.abstain)
    u, a = b.u[rows], b.a[rows]
    label[u, a] = np.where(lay.is_multi[a], b.mask[rows], b.col[rows] - lay.offsets[a])
    answered[u, a] = True
    return label, answered


def loto_points(b: Ballots, threshold: float, unknown_weight: float, redundancy: float | None = None) -> Points:
    return loto(b, threshold, unknown_weight, redundancy).points


def reliability_weights(b: Ballots, rate: np.ndarray) -> np.ndarray:
    """Per answer: its vote weight times its teacher's agreement rate on that attribute (Wawa-style label-free
    reliability; a teacher that rarely agrees with the others on an attribute counts less there)."""
    r = np.nan_to_num(rate, nan=0.5)
    return b.weight * r[b.teacher, b.a]


def gold_points(layout: Layout, result: VoteResult, gold_code: np.ndarray, has_gold: np.ndarray) -> Points:
    """Vote confidence vs. correctness on the gold dev users (`gold_code` in the vote's label coding)."""
    ok = has_gold & decided(layout, result.label)
    _, ai = np.nonzero(ok)
    return Points(ai, result.confidence[ok], (result.label[ok] == gold_code[ok]).astype(np.int8))


def fit_calibrator(layout: Layout, points: Points, min_points: int, per_attribute: bool) -> Calibrator:
    return Calibrator.fit(layout.attributes, points.attr, points.x, points.y, min_points, per_attribute)


# ---- (b) priors ------------------------------------------------------------------------------------------
def saerens_em(post: np.ndarray, train_prior: np.ndarray, tol: float = 1e-8,
               max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray, int]:
    """Saerens, Latinne & Decaestecker (2002): posteriors `post` (n, C) were produced under `train_prior`;
    estimate the prior of this population and the adjusted posteriors. Returns (prior, posteriors, iters)."""
    train_prior = np.clip(np.asarray(train_prior, dtype=np.float64), 1e-12, None)
    prior = train_prior.copy()
    adj = post
    for it in range(1, max_iter + 1):
        adj = post * (prior / train_prior)[None, :]
        adj /= np.clip(adj.sum(axis=1, keepdims=True), 1e-300, None)
        new = adj.mean(axis=0)
        if np.abs(new - prior).max() < tol:
            return new, adj, it
        prior = new
    return prior, adj, max_iter


@dataclass
class PriorShift:
    label: np.ndarray  # (U, A) re-decided labels (multi-label columns unchanged)
    priors: dict[str, list[float]]  # estimated class priors per single-label attribute
    vote_shares: dict[str, list[float]]  # share of each class among the (unshifted) decided votes
    changed: dict[str, int]  # users whose label changed, per attribute
    iterations: dict[str, int]


@dataclass
class Priors:
    """What `prior_shift` estimates, apart from the users it re-decides (so a sample can fit it)."""

    priors: dict[str, list[float]]
    vote_shares: dict[str, list[float]]
    iterations: dict[str, int]
    ratio: dict[str, np.ndarray]  # prior / smoothed vote share: the re-decision factor (attributes with votes)


def prior_shift(layout: Layout, result: VoteResult, calibrated: np.ndarray, enabled: bool = True) -> PriorShift:
    """Estimate class priors and re-decide single-label votes.

    Soft vote of a user: the calibrated probability q at the voted class, the rest (1 - q) over the other
    classes in proportion to the prior. EM (the Saerens update with the vote itself as the "classifier")
    alternates prior = mean soft vote and soft votes given the prior until it converges. The re-decision is
    the Saerens prior-ratio adjustment of the raw vote scores: y' = argmax_v score(v) * prior(v) / share(v),
    where share(v) is how often the vote says v, so classes the teachers over-predict are damped. Only classes
    some teacher said can win; unknown stays unknown."""
    est = estimate_priors(layout, result, calibrated)
    label, changed = shift_labels(layout, result, est, enabled)
    return PriorShift(label, est.priors, est.vote_shares, changed, est.iterations)


def estimate_priors(layout: Layout, result: VoteResult, calibrated: np.ndarray) -> Priors:
    """The EM priors and vote shares of `prior_shift`, per single-label attribute."""
    priors: dict[str, list[float]] = {}
    shares: dict[str, list[float]] = {}
    iters: dict[str, int] = {}
    ratio: dict[str, np.ndarray] = {}
    for ai in layout.single_idx:  # one vectorised EM per attribute (their class sets differ)
        name = layout.attributes[ai]
        n_cls = int(layout.offsets[ai + 1] - layout.offsets[ai])
        lab = result.label[:, ai]
        ok = lab >= 0
        if not ok.any():
            priors[name] = [1.0 / n_cls] * n_cls
            shares[name] = [0.0] * n_cls
            iters[name] = 0
            continue
        y, q = lab[ok], np.clip(calibrated[ok, ai], 1e-6, 1 - 1e-6)
        share = (np.bincount(y, minlength=n_cls) + 1.0) / (len(y) + n_cls)
        prior, it = _soft_vote_em(y, q, n_cls, share)
        ratio[name] = prior / share
        priors[name] = [round(float(p), 6) for p in prior]
        shares[name] = [round(float(p), 6) for p in np.bincount(y, minlength=n_cls) / len(y)]
        iters[name] = it
    return Priors(priors, shares, iters, ratio)


def shift_labels(layout: Layout, result: VoteResult, est: Priors,
                 enabled: bool = True) -> tuple[np.ndarray, dict[str, int]]:
    """Re-decide the single-label votes of `result` (any users) under priors estimated on some users."""
    label = result.label.copy()
    changed: dict[str, int] = {}
    for ai in layout.single_idx:
        name = layout.attributes[ai]
        lab = result.label[:, ai]
        ok = lab >= 0
        if not (enabled and name in est.ratio and ok.any()):
            changed[name] = 0
            continue
        s = result.scores[ok, layout.offsets[ai]:layout.offsets[ai + 1]]
        adj = np.where(s > 0, s * est.ratio[name][None, :], -1.0)
        new = lab.copy()
        new[ok] = np.argmax(adj, axis=1)
        label[:, ai] = new
        changed[name] = int((new != lab).sum())
    return label, changed


def _soft_vote_em(y: np.ndarray, q: np.ndarray, n_cls: int, init: np.ndarray, tol: float = 1e-8,
                  max_iter: int = 500) -> tuple[np.ndarray, int]:
    """Prior of a population whose soft votes are q at y and (1 - q) spread over the other classes by prior."""
    prior = init.copy()
    base = np.bincount(y, weights=q, minlength=n_cls)  # mass that stays on the voted class
    for it in range(1, max_iter + 1):
        rest = (1.0 - q) / np.clip(1.0 - prior[y], 1e-12, None)  # per user, spread over the others by prior
        spread = prior * rest.sum() - np.bincount(y, weights=rest, minlength=n_cls) * prior
        new = (base + spread) / len(y)
        new /= new.sum()
        if np.abs(new - prior).max() < tol:
            return new, it
        prior = new
    return prior, max_iter


# ---- (c) caps --------------------------------------------------------------------------------------------
def class_caps(layout: Layout, label: np.ndarray, confidence: np.ndarray, priors: dict[str, list[float]],
               factor: float, eligible: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Users to keep in the distillation set. Per single-label attribute and class v, at most
    ceil(factor * prior(v) * n_known) eligible users may carry v (n_known: eligible users not unknown for
    that attribute); the lowest-confidence users over the cap are dropped. Caps are computed on the eligible
    set once and the drops of all attributes are united. Returns (keep mask, dropped users per attribute)."""
    keep = eligible.copy()
    dropped: dict[str, int] = {}
    for ai in layout.single_idx:
        name = layout.attributes[ai]
        lab = label[:, ai]
        sel = eligible & (lab >= 0)
        n_cls = len(priors[name])
        counts = np.bincount(lab[sel], minlength=n_cls)
        cap = np.ceil(factor * np.asarray(priors[name]) * sel.sum()).astype(np.int64)
        excess = np.maximum(counts - cap, 0)
        if not excess.any():
            dropped[name] = 0
            continue
        idx = np.flatnonzero(sel)
        order = idx[np.lexsort((confidence[idx, ai], lab[idx]))]  # by class, then confidence ascending
        cls = lab[order]
        start = np.searchsorted(cls, np.arange(n_cls))
        rank = np.arange(len(order)) - start[cls]  # 0 = least confident user of its class
        drop = order[rank < excess[cls]]
        dropped[name] = len(drop)
        keep[drop] = False
    return keep, dropped
