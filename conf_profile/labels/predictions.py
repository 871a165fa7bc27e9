"""Each teacher's own prediction per user and attribute, as a table: what the report card scores for the
`teacher:<id>` rows, written by aggregation so that evaluation only scores tables (it never re-runs a vote)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from conf_profile.labels.ballots import Ballots
from conf_profile.labels.records import label_lists
from conf_profile.labels.vote import vote

PREDICTIONS_SCHEMA = pa.schema([
    ("teacher_id", pa.string()), ("user_id", pa.string()), ("attribute", pa.string()),
    ("label", pa.list_(pa.string())), ("confidence", pa.float64()),
])


def teacher_predictions(b: Ballots, threshold: float) -> pa.Table:
    """One long-form table over all teachers: each teacher's answer (the vote of its own samples when it was
    sampled several times) with its stated confidence (for several samples: the weighted mean stated
    confidence, samples that disagree with the answer counting 0)."""
    lay = b.layout
    parts = []
    for t in np.unique(b.teacher):
        mine = b.teacher == t
        r = vote(b, "weighted", threshold, unknown_weight=1.0, rows=mine)
        g = b.u[mine] * lay.n_attrs + b.a[mine]
        wsum = np.bincount(g, weights=b.weight[mine], minlength=b.n_users * lay.n_attrs).reshape(r.label.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(wsum > 0, r.confidence * r.denom / wsum, 0.0)
        long = long_predictions(b, r.label, conf)
        parts.append(long.add_column(0, "teacher_id", pa.repeat(pa.scalar(b.teachers[t]), long.num_rows)))
    return pa.concat_tables(parts).cast(PREDICTIONS_SCHEMA) if parts else PREDICTIONS_SCHEMA.empty_table()


def long_predictions(b: Ballots, label: np.ndarray, conf: np.ndarray) -> pa.Table:
    """(U, A) labels/confidences in layout order -> (user_id, attribute, label, confidence) rows."""
    lay = b.layout
    n_attrs = lay.n_attrs
    attr = np.tile(np.arange(n_attrs), b.n_users)
    return pa.table({
        "user_id": b.users.take(pa.array(np.repeat(np.arange(b.n_users), n_attrs))),
        "attribute": pa.array(lay.attributes).take(pa.array(attr)),
        "label": label_lists(lay, label.reshape(-1), attr),
        "confidence": pa.array(conf.reshape(-1)),
    })
