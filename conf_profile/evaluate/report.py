"""The report card (method.md "Report card format"): every teacher, the three votes and any student rows,
scored on the gold evaluation users of one interval; written as runs/<key>/report.json plus reliability PNGs.
"""

from __future__ import annotations

import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import Settings
from conf_profile.errors import LakeError
from conf_profile.evaluate.gold import read_gold
from conf_profile.evaluate.metrics import Reliability, eval_users, score_detailed
from conf_profile.evaluate.plots import overall_png, reliability_png, slug
from conf_profile.intervals import Interval
from conf_profile.labels.ballots import Ballots, encode
from conf_profile.labels.io import read_teacher_outputs
from conf_profile.labels.records import label_lists
from conf_profile.labels.vote import vote
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy

VOTE_METHODS = ("majority", "weighted", "calibrated")
STUDENT_ORDER = ("student:base", "student:sft", "student:rl")


def report_interval(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """Score every row on the interval's gold evaluation users; write report.json and plots/*.png.
    Returns the report object itself (what `report --json` prints)."""
    taxonomy = load_taxonomy(settings.taxonomy_path)
    gold = read_gold(lake)
    votes_dir = Lake.run_dir(interval, "labels", "votes")
    if not lake.is_committed(votes_dir):
        raise LakeError(f"No committed votes at {lake.uri_of(votes_dir)}.",
                        f"Run `conf-profile aggregate --interval {interval}` first.")
    votes = lake.read_committed(votes_dir)
    users = pc.unique(votes["user_id"].combine_chunks())
    scored = eval_users(gold, users)

    rows: list[dict] = []
    rels: dict[str, dict[str, Reliability]] = {}
    answers, _ = read_teacher_outputs(lake, interval, settings.labels.shards)
    b = encode(answers, taxonomy, settings.labels.teachers, users=users)
    for name, pred in teacher_predictions(b, settings.labels.multilabel_threshold):
        row, rel = score_detailed(pred, gold, taxonomy, name, users=users)
        rows.append(row)
        rels[name] = rel
    method = pc.cast(votes["method"], pa.string())
    for m in VOTE_METHODS:
        name = f"vote:{m}"
        row, rel = score_detailed(votes.filter(pc.equal(method, m)), gold, taxonomy, name, users=users)
        rows.append(row)
        rels[name] = rel
    rows += student_rows(lake, interval)

    report = {"interval": str(interval), "eval_users": len(scored), "rows": rows}
    lake.write_json(Lake.run_dir(interval, "report.json"), report)
    plots = Lake.run_dir(interval, "plots")
    for name, rel in rels.items():
        lake.write_bytes(posixpath.join(plots, f"reliability_{slug(name)}.png"), reliability_png(rel, name))
    lake.write_bytes(posixpath.join(plots, "reliability_all.png"),
                     overall_png({k: v["overall"] for k, v in rels.items()}))
    return report


def teacher_predictions(b: Ballots, threshold: float) -> list[tuple[str, pa.Table]]:
    """One long-form prediction table per teacher: its answer (the vote of its own samples when it was
    sampled several times) with its stated confidence (for several samples: the weighted mean stated
    confidence, samples that disagree with the answer counting 0)."""
    lay = b.layout
    out = []
    for t in np.unique(b.teacher):
        mine = b.teacher == t
        r = vote(b, "weighted", threshold, unknown_weight=1.0, rows=mine)
        g = b.u[mine] * lay.n_attrs + b.a[mine]
        wsum = np.bincount(g, weights=b.weight[mine], minlength=b.n_users * lay.n_attrs).reshape(r.label.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(wsum > 0, r.confidence * r.denom / wsum, 0.0)
        out.append((f"teacher:{b.teachers[t]}", long_predictions(b, r.label, conf)))
    return out


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


def student_rows(lake: Lake, interval: Interval) -> list[dict]:
    """Rows the training stage left as runs/<key>/eval/<row-name>.json (each one report-card row)."""
    rows = []
    for rel in lake.list_files(Lake.run_dir(interval, "eval"), suffix=".json"):
        if posixpath.basename(rel).startswith((".", "_")):
            continue
        row = lake.read_json(rel)
        if not isinstance(row, dict) or "name" not in row or "f1" not in row:
            raise LakeError(f"{lake.uri_of(rel)} is not a report-card row (needs at least 'name' and 'f1').",
                            "Rerun the evaluation that wrote it, or delete the file.")
        rows.append(row)
    rank = {n: i for i, n in enumerate(STUDENT_ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r["name"], len(rank)), r["name"]))


def format_report(report: dict) -> str:
    """A plain-text table: one row per name; F1 in points, coverage/ECE/valid% as shares or percent."""
    head = f"{'name':<28} {'F1':>6} {'coverage':>9} {'ECE':>6} {'valid%':>7}"
    lines = [f"Report card {report['interval']} ({report['eval_users']} gold eval users)", head, "-" * len(head)]
    for r in report["rows"]:
        ece = "-" if r.get("ece") is None else f"{r['ece']:.3f}"
        valid = "-" if r.get("valid_rate") is None else f"{100 * r['valid_rate']:.1f}"
        lines.append(f"{r['name']:<28} {r['f1']:>6.1f} {r['coverage']:>9.3f} {ece:>6} {valid:>7}")
    return "\n".join(lines)
