"""Isotonic confidence maps (method.md Stage 1 step 4a), stored as breakpoints so they travel as JSON.

Why breakpoints: `IsotonicRegression.predict` with out_of_bounds="clip" is linear interpolation between
`X_thresholds_` and `y_thresholds_`, clipped at the ends; `np.interp` does exactly that, so the map can be
saved to calibration.json and re-applied (by the RL stage, by a later week) without pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass
class IsoMap:
    x: list[float]
    y: list[float]
    n_points: int
    scope: str  # "attribute" | "pooled" | "identity"

    def __call__(self, conf: np.ndarray) -> np.ndarray:
        if not self.x:
            return np.asarray(conf, dtype=np.float64)
        return np.interp(conf, self.x, self.y)

    def to_json(self) -> dict:
        return {"x": self.x, "y": self.y, "n_points": self.n_points, "scope": self.scope}


def fit_isotonic(x: np.ndarray, y: np.ndarray, scope: str, sample_weight: np.ndarray | None = None) -> IsoMap:
    """Monotone map confidence -> P(correct); identity when there is nothing to fit.
    Points are first pooled per distinct confidence (mean y, summed weight): the same fit, because
    isotonic regression pools ties anyway, but millions of points become a few thousand."""
    if len(x) < 2 or np.ptp(x) == 0:
        return IsoMap([], [], int(len(x)), "identity")
    w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ux, inv = _distinct(np.asarray(x, dtype=np.float64))
    wsum = np.bincount(inv, weights=w, minlength=len(ux))
    ok = wsum > 0
    ymean = np.bincount(inv, weights=w * np.asarray(y, dtype=np.float64), minlength=len(ux))[ok] / wsum[ok]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    iso.fit(ux[ok], ymean, sample_weight=wsum[ok])
    return IsoMap([round(float(v), 6) for v in iso.X_thresholds_], [round(float(v), 6) for v in iso.y_thresholds_],
                  int(len(x)), scope)


_GRID = 10**6  # confidences are pooled at 6 decimals


def _distinct(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(np.round(x, 6), return_inverse=True)` without sorting millions of points: values in
    [0, 1] (vote confidences) are binned on the 1e-6 grid (the same rounding: rint(x * 1e6) / 1e6)."""
    q = np.rint(x * _GRID)
    if len(q) == 0 or q.min() < 0 or q.max() > _GRID:
        return np.unique(np.round(x, 6), return_inverse=True)
    qi = q.astype(np.int64)
    present = np.flatnonzero(np.bincount(qi, minlength=_GRID + 1))
    pos = np.zeros(_GRID + 1, dtype=np.int64)
    pos[present] = np.arange(len(present))
    return present.astype(np.float64) / _GRID, pos[qi]


@dataclass
class Calibrator:
    """One map per attribute; attributes with fewer than `min_points` points share the pooled map."""

    maps: dict[str, IsoMap] = field(default_factory=dict)

    @classmethod
    def fit(cls, attrs: list[str], attr_idx: np.ndarray, x: np.ndarray, y: np.ndarray, min_points: int,
            per_attribute: bool = True) -> Calibrator:
        pooled = fit_isotonic(x, y, "pooled")
        maps: dict[str, IsoMap] = {}
        counts = np.bincount(attr_idx, minlength=len(attrs))
        rows = by_attribute(attr_idx, len(attrs))
        for i, name in enumerate(attrs):
            if per_attribute and counts[i] >= min_points:
                maps[name] = fit_isotonic(x[rows[i]], y[rows[i]], "attribute")
            else:
                maps[name] = IsoMap(pooled.x, pooled.y, int(counts[i]), pooled.scope)
        return cls(maps)

    def apply(self, attrs: list[str], conf: np.ndarray) -> np.ndarray:
        """`conf` is (n_users, A) in `attrs` order."""
        out = np.empty_like(conf, dtype=np.float64)
        for i, name in enumerate(attrs):  # one np.interp per attribute, vectorised over users
            out[:, i] = self.maps[name](conf[:, i])
        return out


def by_attribute(attr_idx: np.ndarray, n_attrs: int) -> list[np.ndarray]:
    """The point indices of each attribute, in point order (what `np.flatnonzero(attr_idx == i)` gives),
    from one stable sort instead of a full pass over the points per attribute."""
    attr_idx = np.asarray(attr_idx)
    order = np.argsort(attr_idx, kind="stable")
    ends = np.cumsum(np.bincount(attr_idx, minlength=n_attrs))
    return [order[e - c:e] for e, c in zip(ends.tolist(), np.diff(np.append(0, ends)).tolist(), strict=True)]
