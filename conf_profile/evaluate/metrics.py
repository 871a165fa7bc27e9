"""The shared metric (method.md "Metric"): macro-F1 with abstentions, coverage, ECE. Teachers, votes and
students are all scored by `score`, so their report-card rows are comparable.

Definitions (docs/labels.md has the reasoning):
- Scored users: evaluation-split users (`splits.Split`, as configured) with a reference label for the attribute
  (and, when `users` is given, in that set). A missing prediction is an abstention. The reference is gold, or
  without gold the quasi-labels (`gold.read_reference`); the code is the same.
- Single-label: `unknown`, a missing row, or a label outside the taxonomy is an abstention (no positive
  prediction: it costs recall, not precision). Macro-F1 averages per-class F1 over the classes that occur in
  the gold labels or the predictions (a class nobody has and nobody predicts is undefined, not 0).
- Multi-label: each label is a binary decision; macro-F1 over labels (same rule). An empty set is an
  abstention for coverage and ECE; "correct" for ECE = the predicted set equals the gold set exactly,
  because the one confidence per attribute claims the whole answer.
- Headline F1 = unweighted mean of the attributes' F1, in points (0-100); per-attribute F1 also in points.
  Coverage = mean over attributes of the share of scored users with a non-abstained prediction.
  Attributes without any gold label are left out of both means (their F1 is null).
- ECE: 10 equal-width bins over [0, 1] (the last one closed) of (confidence, correct) pairs of non-abstained
  predictions with a confidence; per attribute and pooled over attributes (the row's "ece").
- Label-free (`label_free`, no reference needed): coverage = share of (user, attribute) predictions that are
  not abstentions, per attribute and overall; the confidence histogram of those answers (same 10 bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.splits import Split
from conf_profile.taxonomy import Taxonomy

N_BINS = 10


@dataclass
class Reliability:
    """Per-bin count, mean confidence and accuracy (NaN for empty bins)."""

    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float | None:
        n = self.count.sum()
        if n == 0:
            return None
        ok = self.count > 0
        return float((self.count[ok] * np.abs(self.accuracy[ok] - self.confidence[ok])).sum() / n)


def reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    conf = np.clip(np.asarray(conf, dtype=np.float64), 0.0, 1.0)
    correct = np.asarray(correct, dtype=np.float64)
    b = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mc = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    return Reliability(count, mc, acc)


def ece(conf: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float | None:
    return reliability(conf, correct, n_bins).ece


def macro_f1(pred: np.ndarray, gold: np.ndarray) -> float | None:
    """Boolean (n, C) matrices -> macro-F1 in [0, 1] over classes present in gold or predictions."""
    tp = (pred & gold).sum(axis=0)
    fp = (pred & ~gold).sum(axis=0)
    fn = (~pred & gold).sum(axis=0)
    den = 2 * tp + fp + fn
    ok = den > 0
    if not ok.any():
        return None
    return float((2 * tp[ok] / den[ok]).mean())


@dataclass
class AttributeScore:
    f1: float | None
    coverage: float
    reliability: Reliability
    n_users: int


def _matrix(table: pa.Table, users: pa.Array, classes: list[str], single: bool) -> tuple[np.ndarray, ...]:
    """(row user index, membership (n_rows, C), answered) for one attribute's rows."""
    u = pc.index_in(pc.cast(table["user_id"], pa.string()), value_set=users).to_numpy(zero_copy_only=False)
    labels = table["label"].combine_chunks() if table.num_rows else pa.array([], pa.list_(pa.string()))
    parent = pc.list_parent_indices(labels).to_numpy(zero_copy_only=False).astype(np.int64)
    cls = pc.index_in(pc.list_flatten(labels), value_set=pa.array(classes)).to_numpy(zero_copy_only=False)
    cls = cls.astype(float)
    ok = ~np.isnan(cls)
    member = np.zeros((table.num_rows, len(classes)), dtype=bool)
    member[parent[ok], cls[ok].astype(np.int64)] = True
    if single:  # a single-label answer with several labels is malformed: no positive prediction
        member[member.sum(axis=1) > 1] = False
    return u.astype(float), member


def score_attribute(pred: pa.Table, gold: pa.Table, users: pa.Array, classes: list[str],
                    single: bool) -> AttributeScore:
    """`pred` and `gold` hold one attribute's rows; `users` are the scored users."""
    n = len(users)
    gu, gm = _matrix(gold, users, classes, single)
    keep = ~np.isnan(gu)
    has_gold = np.zeros(n, dtype=bool)
    g = np.zeros((n, len(classes)), dtype=bool)
    has_gold[gu[keep].astype(np.int64)] = True
    g[gu[keep].astype(np.int64)] = gm[keep]

    pu, pm = _matrix(pred, users, classes, single)
    pkeep = ~np.isnan(pu)
    rows = pu[pkeep].astype(np.int64)
    if len(np.unique(rows)) != len(rows):
        raise ValueError("predictions hold more than one row for some (user, attribute)")
    p = np.zeros((n, len(classes)), dtype=bool)
    p[rows] = pm[pkeep]
    conf = np.full(n, np.nan)
    conf[rows] = pc.fill_null(pc.cast(pred["confidence"], pa.float64()), np.nan).to_numpy(
        zero_copy_only=False)[pkeep] if pred.num_rows else np.zeros(0)

    p, g, conf = p[has_gold], g[has_gold], conf[has_gold]
    answered = p.any(axis=1)
    correct = (p == g).all(axis=1)
    with_conf = answered & ~np.isnan(conf)
    f1 = macro_f1(p, g)
    return AttributeScore(
        f1=None if f1 is None else 100.0 * f1,
        coverage=float(answered.mean()) if len(answered) else 0.0,
        reliability=reliability(conf[with_conf], correct[with_conf]),
        n_users=int(has_gold.sum()),
    )


def eval_users(gold: pa.Table, users: pa.Array | list[str] | None = None, split: Split | None = None) -> pa.Array:
    """Sorted evaluation-split users that have gold labels (and are in `users`, when given)."""
    uniq = pc.unique(pc.cast(gold["user_id"], pa.string()).combine_chunks())
    if users is not None:
        allowed = pa.array(users, pa.string()) if not isinstance(users, pa.Array) else users
        uniq = uniq.filter(pc.is_in(uniq, value_set=allowed))
    uniq = uniq.filter(pa.array((split or Split()).mask(uniq)))
    return uniq.take(pc.sort_indices(uniq))


def label_free(pred: pa.Table, taxonomy: Taxonomy, users: pa.Array | list[str],
               n_bins: int = N_BINS) -> dict:
    """Metrics that need no reference: coverage of `users` x attributes (a missing row is an abstention) and
    the confidence histogram of the answers (`n_bins` equal-width bins over [0, 1], the last one closed)."""
    allowed = pa.array(users, pa.string()) if not isinstance(users, pa.Array) else pc.cast(users, pa.string())
    n = len(allowed)
    per: dict[str, float | None] = {}
    confs = []
    p_attr = pc.cast(pred["attribute"], pa.string()) if pred.num_rows else pa.array([], pa.string())
    for attr in taxonomy.attributes:
        t = pred.filter(pc.equal(p_attr, attr.name))
        t = t.filter(pc.is_in(pc.cast(t["user_id"], pa.string()), value_set=allowed))
        u, member = _matrix(t, allowed, attr.classes, not attr.is_multi)
        answered = member.any(axis=1)
        users_answered = np.unique(u[answered]) if len(u) else np.zeros(0)
        per[attr.name] = _r(len(users_answered) / n, 4) if n else None
        c = pc.fill_null(pc.cast(t["confidence"], pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        c = c[answered] if len(c) else c
        confs.append(c[~np.isnan(c)])
    conf = np.clip(np.concatenate(confs) if confs else np.zeros(0), 0.0, 1.0)
    hist = np.bincount(np.minimum((conf * n_bins).astype(np.int64), n_bins - 1), minlength=n_bins)
    covs = [v for v in per.values() if v is not None]
    return {"users": n, "coverage": _r(float(np.mean(covs)), 4) if covs else None, "per_attribute": per,
            "confidence_histogram": [int(x) for x in hist], "mean_confidence": _r(float(conf.mean()), 4)
            if len(conf) else None}


def score_detailed(pred: pa.Table, gold: pa.Table, taxonomy: Taxonomy, name: str = "",
                   valid_rate: float | None = None, users: pa.Array | list[str] | None = None,
                   split: Split | None = None) -> tuple[dict, dict[str, Reliability]]:
    """The report-card row and the reliability bins (per attribute and "overall"); `gold` is the reference
    (gold labels or quasi-labels) and `split` the configured evaluation split (default: the default split)."""
    scored = eval_users(gold, users, split)
    per: dict[str, dict] = {}
    rel: dict[str, Reliability] = {}
    f1s, covs = [], []
    pairs_n, pairs_c, pairs_a = [], [], []
    p_attr = pc.cast(pred["attribute"], pa.string()) if pred.num_rows else pa.array([], pa.string())
    g_attr = pc.cast(gold["attribute"], pa.string())
    for attr in taxonomy.attributes:  # vectorised over users within each attribute
        s = score_attribute(pred.filter(pc.equal(p_attr, attr.name)), gold.filter(pc.equal(g_attr, attr.name)),
                            scored, attr.classes, not attr.is_multi)
        r = s.reliability
        per[attr.name] = {"f1": _r(s.f1, 2), "coverage": _r(s.coverage, 4), "ece": _r(r.ece, 4)}
        rel[attr.name] = r
        if s.f1 is not None:
            f1s.append(s.f1)
        if s.n_users:
            covs.append(s.coverage)
        pairs_n.append(r.count)
        pairs_c.append(np.nan_to_num(r.confidence) * r.count)
        pairs_a.append(np.nan_to_num(r.accuracy) * r.count)
    count = np.sum(pairs_n, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = Reliability(count, np.sum(pairs_c, axis=0) / count, np.sum(pairs_a, axis=0) / count)
    rel["overall"] = overall
    row: dict = {
        "name": name,
        "f1": _r(float(np.mean(f1s)) if f1s else 0.0, 2),
        "coverage": _r(float(np.mean(covs)) if covs else 0.0, 4),
        "ece": _r(overall.ece, 4),
    }
    if valid_rate is not None:
        row["valid_rate"] = _r(valid_rate, 4)
    row["per_attribute"] = per
    return row, rel


def score(pred: pa.Table, gold: pa.Table, taxonomy: Taxonomy, name: str = "", valid_rate: float | None = None,
          users: pa.Array | list[str] | None = None, split: Split | None = None) -> dict:
    """Report-card row {"name", "f1", "coverage", "ece"[, "valid_rate"], "per_attribute"} for long-form
    predictions (user_id, attribute, label list<string>, confidence) against GOLD_SCHEMA labels."""
    return score_detailed(pred, gold, taxonomy, name, valid_rate, users, split)[0]


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), nd)
