"""The report card (method.md "Report card format"): every teacher, the three votes and any student rows,
scored on the evaluation users of one interval; written as runs/<key>/report.json plus reliability PNGs.

The reference is gold when the lake has it, else the quasi-labels (`gold.read_reference`: the calibrated vote
on the held-out evaluation users); `report["reference"]` says which. Against quasi-labels the calibrated vote
scores itself: its row is kept (the table stays the same shape) and marked `"is_reference": true`.
"""

from __future__ import annotations

import posixpath

import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import Settings
from conf_profile.errors import LakeError
from conf_profile.evaluate.metrics import Reliability, eval_users, score_detailed
from conf_profile.evaluate.plots import overall_png, reliability_png, slug
from conf_profile.gold import GOLD, QUASI, read_reference
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy

VOTE_METHODS = ("majority", "weighted", "calibrated")
STUDENT_ORDER = ("student:base", "student:sft", "student:rl")


def report_interval(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """Score every row on the interval's evaluation users against the reference (gold, else quasi-labels);
    write report.json and plots/*.png. Rows: each teacher and each vote (tables written by aggregation), then
    the evaluated students. Returns the report object itself (what `report --json` prints)."""
    taxonomy = load_taxonomy(settings.taxonomy_path)
    lay = RunLayout(interval)
    split = Split.of(settings)
    for rel, stage in ((lay.votes, "aggregate"), (lay.teacher_predictions, "aggregate")):
        if not lake.is_committed(rel):
            raise LakeError(f"No committed {posixpath.basename(rel)} at {lake.uri_of(rel)}.",
                            f"Run `conf-profile {stage} --interval {interval}` first.")
    gold, reference = read_reference(lake, interval, taxonomy.unknown)
    votes = lake.read_committed(lay.votes)
    users = pc.unique(votes["user_id"].combine_chunks())
    scored = eval_users(gold, users, split)

    rows: list[dict] = []
    rels: dict[str, dict[str, Reliability]] = {}
    preds = lake.read_committed(lay.teacher_predictions)
    teacher = pc.cast(preds["teacher_id"], pa.string())
    for t in pc.unique(teacher).to_pylist():
        name = f"teacher:{t}"
        row, rel = score_detailed(preds.filter(pc.equal(teacher, t)).drop_columns(["teacher_id"]), gold, taxonomy,
                                  name, users=users, split=split)
        rows.append(row)
        rels[name] = rel
    method = pc.cast(votes["method"], pa.string())
    for m in VOTE_METHODS:
        name = f"vote:{m}"
        row, rel = score_detailed(votes.filter(pc.equal(method, m)), gold, taxonomy, name, users=users, split=split)
        if reference == QUASI and m == "calibrated":
            row["is_reference"] = True  # scored against itself: F1 100 by construction, not a result
        rows.append(row)
        rels[name] = rel
    students = student_rows(lake, interval)
    for r in students:
        if r.get("reference", GOLD) != reference:
            raise LakeError(f"Row {r['name']} of {interval} was scored against {r.get('reference', GOLD)}, the "
                            f"report card against {reference} (gold was added or removed since).",
                            f"Rerun the evaluate stage for {interval}.")
    rows += students

    report = {"interval": str(interval), "reference": reference, "eval_users": len(scored), "rows": rows}
    if lake.exists(lay.calibration):  # where the calibrated vote's confidence map came from (fallbacks named)
        cal = lake.read_json(lay.calibration)
        report["calibration"] = {"source": cal.get("source"), "points": cal.get("points")}
    lake.write_json(lay.report, report)
    for name, rel in rels.items():
        lake.write_bytes(lay.plot(f"reliability_{slug(name)}.png"), reliability_png(rel, name))
    lake.write_bytes(lay.plot("reliability_all.png"), overall_png({k: v["overall"] for k, v in rels.items()}))
    return report


def student_rows(lake: Lake, interval: Interval) -> list[dict]:
    """Rows the training stage left as runs/<key>/eval/<row-name>.json (each one report-card row)."""
    rows = []
    for rel in lake.list_files(RunLayout(interval).eval, suffix=".json"):
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
    ref = report.get("reference", GOLD)
    title = f"Report card {report['interval']} ({report['eval_users']} eval users; reference: {ref})"
    lines = [title, head, "-" * len(head)]
    if ref != GOLD:
        lines.insert(1, "no gold set: rows are scored against the quasi-labels (the calibrated vote on the "
                        "held-out evaluation users); vote:calibrated is the reference (*)")
    if report.get("calibration"):
        c = report["calibration"]
        head_note = f"calibration of vote:calibrated: {c['source']} ({c['points'] or 0:,} points)"
        lines.insert(1, head_note)
    for r in report["rows"]:
        ece = "-" if r.get("ece") is None else f"{r['ece']:.3f}"
        valid = "-" if r.get("valid_rate") is None else f"{100 * r['valid_rate']:.1f}"
        name = f"{r['name']} (*)" if r.get("is_reference") else r["name"]
        line = f"{name:<28} {r['f1']:>6.1f} {r['coverage']:>9.3f} {ece:>6} {valid:>7}"
        lf = r.get("label_free")
        if lf:  # label-free: answered share and the confidence histogram (10 bins over [0, 1])
            hist = "/".join(str(c) for c in lf["confidence_histogram"])
            line += f"  answered {lf.get('coverage') or 0:.3f} conf {hist}"
        lines.append(line)
    return "\n".join(lines)
