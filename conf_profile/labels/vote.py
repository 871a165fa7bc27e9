"""Confidence-weighted voting (method.md, Stage 1 step 3), vectorised over users, attributes and classes.

score(v) = sum_k w_k c_k 1[y_k = v]; y = argmax; ties -> the class with the higher max confidence, then
unknown. Aggregated confidence c = score(y) / (sum over voters of w_k c_k + lambda * sum over abstainers of
w_k c_k), lambda = `unknown_weight` (default 1: the formula read literally, every answer counts; see
docs/labels.md for why). All-unknown -> unknown with confidence 0.
Multi-label: each label is present when its weighted share (same denominator) >= threshold; the
confidence is the weighted share of answers whose whole set equals the voted set.
`majority` is the same vote with every teacher counting 1 (samples of a teacher share it), no confidences,
and ties -> unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from conf_profile.labels.ballots import Ballots

Method = Literal["majority", "weighted"]
_TIE_EPS = 1e-7


@dataclass
class VoteResult:
    """Per (user, attribute) decisions, attributes in `Layout.attributes` order."""

    label: np.ndarray  # (U, A) int64: single -> class index within the attribute, -1 = unknown; multi -> bitmask
    confidence: np.ndarray  # (U, A) float64; 0 where the answer is unknown
    n_voters: np.ndarray  # (U, A) int64 answers that were not unknown
    scores: np.ndarray | None  # (U, n_cols) sum of w*c per class column (None once no longer needed)
    denom: np.ndarray  # (U, A) the confidence denominator


def answer_weights(b: Ballots, method: Method) -> tuple[np.ndarray, np.ndarray]:
    """(vote weight, tie-break confidence) per answer row."""
    if method == "majority":  # no confidences: a tie is unknown, so the tie-break array is never read
        return b.share, np.broadcast_to(np.float64(0.0), b.conf.shape)
    if method == "weighted":
        return b.weight * b.conf, b.conf
    raise ValueError(f"unknown vote method {method!r}")


def vote(b: Ballots, method: Method = "weighted", threshold: float = 0.5, unknown_weight: float = 1.0,
         rows: np.ndarray | None = None, count_voters: bool = True) -> VoteResult:
    """Vote over the answer rows selected by `rows` (a boolean mask; default all), e.g. all teachers but one.
    Deselected rows get weight 0 instead of being copied out, so LOTO's votes reuse the cached bin indices.
    `count_voters` False leaves `n_voters` None (LOTO does not need it)."""
    lay = b.layout
    n_users, n_attrs, n_cols, ns = b.n_users, lay.n_attrs, lay.n_cols, lay.n_single_cols
    wc, tie_conf = answer_weights(b, method)
    voter = ~b.abstain if rows is None else rows & ~b.abstain
    group = b.index("group")
    if method == "majority" and rows is None and bool((b.share == 1).all()):
        scores_t, denom, n_voters = _unit_tallies(b, voter, unknown_weight)
    else:
        scores_t, denom, n_voters = _weighted_tallies(b, wc, voter, rows, unknown_weight, count_voters)
    scores = scores_t.T
    label = np.zeros((n_users, n_attrs), dtype=np.int64)
    conf = np.zeros((n_users, n_attrs), dtype=np.float64)
    si, mi = lay.single_idx, lay.multi_idx
    if len(si):
        def maxc_for(tied: np.ndarray) -> np.ndarray:
            """Max confidence per (user, column) for the tie rule, only in the tied (user, attribute) cells
            of `tied` (U, A); -1 marks cells nobody voted for (or not computed)."""
            users = np.flatnonzero(tied.any(axis=1))
            pos = np.full(n_users, -1, dtype=np.int64)
            pos[users] = np.arange(len(users))
            sel = np.flatnonzero(tied.reshape(-1)[group] & voter & (b.col >= 0))
            maxc = np.full(len(users) * n_cols, -1.0)
            np.maximum.at(maxc, pos[b.u[sel]] * n_cols + b.col[sel], tie_conf[sel])
            return maxc.reshape(len(users), n_cols)[:, :ns]

        # plain majority has no confidences: a tie on votes is a tie, unknown
        ls, cs = _decide_single(scores_t[:ns], lay.offsets[si], denom[:, si],
                                None if method == "majority" else maxc_for, n_attrs, si)
        label[:, si], conf[:, si] = ls, cs
    if len(mi):
        lm = _decide_multi(scores[:, ns:], denom, lay.col_attr[ns:], lay.col_class[ns:],
                           lay.offsets[mi] - ns, threshold)
        label[:, mi] = lm
        agree = voter & lay.is_multi[b.a] & (b.mask == label[b.u, b.a])
        agree_w = np.bincount(group, weights=np.where(agree, wc, 0.0), minlength=n_users * n_attrs)
        agree_w = agree_w.reshape(n_users, n_attrs)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf[:, mi] = np.where(denom[:, mi] > 0, agree_w[:, mi] / denom[:, mi], 0.0)
    return VoteResult(label=label, confidence=conf, n_voters=n_voters, scores=scores, denom=denom)


def _weighted_tallies(b: Ballots, wc: np.ndarray, voter: np.ndarray, rows: np.ndarray | None,
                      unknown_weight: float, count_voters: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(scores (n_cols, U) column-major, denominators (U, A), voters (U, A) or None) of a weighted tally."""
    lay = b.layout
    n_users, n_attrs, n_cols = b.n_users, lay.n_attrs, lay.n_cols
    w_vote = np.where(voter, wc, 0.0)
    # Scores of every (class column, user), column-major: single-label answers, then each label of
    # multi-label answers.
    cell = b.index("cell")  # abstainers and multi-label rows fall into the spare last bin
    scores_t = np.bincount(cell, weights=w_vote, minlength=n_users * n_cols + 1)[:-1]
    if len(b.pair_row):
        scores_t += np.bincount(b.index("pair_cell"), weights=w_vote[b.pair_row], minlength=n_users * n_cols)
    scores_t = scores_t.reshape(n_cols, n_users)
    del w_vote
    # Denominators sum voters and abstainers over their own rows only (cached): the rows left out would add
    # exact zeros, so the sums equal a pass over every answer.
    n = n_users * n_attrs
    v_rows, v_group, a_rows, a_group = _split_rows(b)
    wv = wc[v_rows] if rows is None else np.where(rows[v_rows], wc[v_rows], 0.0)
    denom = np.bincount(v_group, weights=wv, minlength=n)
    del wv
    if unknown_weight:
        wa = wc[a_rows] if rows is None else np.where(rows[a_rows], wc[a_rows], 0.0)
        denom = denom + unknown_weight * np.bincount(a_group, weights=wa, minlength=n)
        del wa
    denom = denom.reshape(n_users, n_attrs)
    n_voters = None
    if count_voters:
        g = v_group if rows is None else v_group[rows[v_rows]]
        n_voters = np.bincount(g, minlength=n).reshape(n_users, n_attrs).astype(np.int64)
    return scores_t, denom, n_voters


def _split_rows(b: Ballots) -> tuple[np.ndarray, ...]:
    """(voter rows, their user x attribute, abstainer rows, theirs), in row order; cached per Ballots."""
    hit = b.cache.get("_split")
    if hit is None:
        group = b.index("group")
        v_rows, a_rows = np.flatnonzero(~b.abstain), np.flatnonzero(b.abstain)
        hit = b.cache["_split"] = (v_rows, group[v_rows], a_rows, group[a_rows])  # type: ignore[assignment]
    return hit  # type: ignore[return-value]


def _unit_tallies(b: Ballots, voter: np.ndarray, unknown_weight: float) -> tuple[np.ndarray, ...]:
    """The same tally when every answer weighs 1 (plain majority, one sample per teacher): scores are
    counts, so integer `bincount`s without weights give the identical (exact) floats, and a single-label
    attribute's voters are the sum of its class counts (no pass over the answers for them)."""
    lay = b.layout
    n_users, n_attrs, n_cols, ns = b.n_users, lay.n_attrs, lay.n_cols, lay.n_single_cols
    counts = np.bincount(b.index("cell"), minlength=n_users * n_cols + 1)[:-1]
    if len(b.pair_row):
        counts += np.bincount(b.index("pair_cell")[voter[b.pair_row]], minlength=n_users * n_cols)
    counts = counts.reshape(n_cols, n_users)
    group = b.index("group")
    n_all = np.bincount(group, minlength=n_users * n_attrs).reshape(n_users, n_attrs)
    n_voters = np.zeros((n_users, n_attrs), dtype=np.int64)
    si, mi = lay.single_idx, lay.multi_idx
    if len(si):
        n_voters[:, si] = np.add.reduceat(counts[:ns], lay.offsets[si], axis=0).T
    if len(mi):
        multi_voter = voter & lay.is_multi[b.a]
        n_voters[:, mi] = np.bincount(group[multi_voter], minlength=n_users * n_attrs).reshape(n_users, n_attrs)[:, mi]
    denom = n_voters.astype(np.float64)
    if unknown_weight:
        denom = denom + unknown_weight * (n_all - n_voters).astype(np.float64)
    return counts.astype(np.float64), denom, n_voters


def _decide_single(scores_t: np.ndarray, offs: np.ndarray, denom: np.ndarray,
                   maxc_for: Callable[[np.ndarray], np.ndarray] | None, n_attrs: int,
                   attr_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segmented argmax over the column-major (n_single_cols, U) scores, one contiguous block of rows per
    attribute. A class needs a positive score to win. Most users have a unique maximum; only the cells
    with a near-tie (within 1e-7) go through the exact tie rule, which needs the per-cell max confidence
    (computed for those cells only; `maxc_for` None: a tie is unknown)."""
    width, n_users = scores_t.shape
    ends = np.append(offs[1:], width)
    label = np.empty((n_users, len(offs)), dtype=np.int64)
    win = np.empty((n_users, len(offs)), dtype=np.float64)
    tied = np.zeros((n_users, len(offs)), dtype=bool)
    for j, (o, e) in enumerate(zip(offs.tolist(), ends.tolist(), strict=True)):
        s = scores_t[o:e]
        best = s.max(axis=0)
        near = s >= best - _TIE_EPS
        one = near.sum(axis=0, dtype=np.int32) == 1
        voted = best > 0
        label[:, j] = np.where(voted & one, near.argmax(axis=0), -1)
        win[:, j] = best
        tied[:, j] = voted & ~one
    if tied.any() and maxc_for is not None:
        cells = np.zeros((n_users, n_attrs), dtype=bool)
        cells[:, attr_idx] = tied
        rows = np.flatnonzero(tied.any(axis=1))
        maxc = maxc_for(cells)  # (len(rows), width): per tied user
        pos = np.full(n_users, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        # The rule per attribute, on its tied users and its own columns only (segments are independent).
        for j, (o, e) in enumerate(zip(offs.tolist(), ends.tolist(), strict=True)):
            r = np.flatnonzero(tied[:, j])
            if not len(r):
                continue
            s = scores_t[o:e, r].T
            exact = _tie_rule(s, maxc[pos[r], o:e], np.zeros(1, dtype=np.int64))[:, 0]
            label[r, j] = exact
            won = exact >= 0
            win[r[won], j] = s[np.flatnonzero(won), exact[won]]
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where((label >= 0) & (denom > 0), win / denom, 0.0)
    return label, conf


def _tie_rule(scores: np.ndarray, maxc: np.ndarray, offs: np.ndarray) -> np.ndarray:
    """The full rule on a few rows. One sortable key per cell: the score, then the max confidence (both
    rounded so float noise cannot break a real tie); cells nobody voted for get -1. Still tied -> -1."""
    key = np.rint(scores / _TIE_EPS) * 2048.0 + np.rint(np.maximum(maxc, 0.0) * 1000.0)
    key[maxc < 0] = -1.0
    kmax = np.maximum.reduceat(key, offs, axis=1)
    sizes = np.diff(np.append(offs, key.shape[1]))
    eq = key == np.repeat(kmax, sizes, axis=1)
    n_best = np.add.reduceat(eq, offs, axis=1, dtype=np.int64)
    first = np.minimum.reduceat(np.where(eq, np.arange(key.shape[1]), key.shape[1]), offs, axis=1)
    return np.where((kmax >= 0) & (n_best == 1), first - offs[None, :], -1)


def _decide_multi(scores: np.ndarray, denom: np.ndarray, col_attr: np.ndarray, col_class: np.ndarray,
                  offs: np.ndarray, threshold: float) -> np.ndarray:
    """Each label present when its weighted share reaches the threshold; returned as bitmasks."""
    d = denom[:, col_attr]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(d > 0, scores / d, 0.0)
    present = (d > 0) & (share >= threshold - _TIE_EPS)
    bits = present.astype(np.int64) << col_class.astype(np.int64)[None, :]
    return np.add.reduceat(bits, offs, axis=1)


def decode_mask(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) bitmasks -> (n, n_classes) bool membership."""
    return ((mask[:, None] >> np.arange(n_classes, dtype=np.int64)[None, :]) & 1).astype(bool)
