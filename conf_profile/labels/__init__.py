"""Stage 1 aggregation: teacher answers -> votes, calibration map, distillation set, RL prompts.

`aggregate_interval` reads runs/<key>/teachers/*/shard-*/ and runs/<key>/documents/ one user shard at a time
(`labels.sharded`; gold-dev calibration reads the whole week: `aggregate_whole_week`), and writes (each
committed with one manifest) runs/<key>/labels/votes/, labels/calibration.json, labels/distill/ and
labels/rl_prompts/. Students never train on evaluation users: both training sets leave them out.
Formulas and choices: docs/labels.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.budget import Budget
from conf_profile.config import Settings
from conf_profile.intervals import Interval
from conf_profile.labels.aggregate import Aggregate, aggregate_ballots
from conf_profile.labels.ballots import Ballots, encode, encode_labels
from conf_profile.labels.calibrate import class_caps, decided
from conf_profile.labels.io import read_documents, read_teacher_outputs
from conf_profile.labels.predictions import teacher_predictions
from conf_profile.labels.records import label_lists, merged_rationale, profile_json, teacher_answers_json
from conf_profile.layout import RunLayout
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy

__all__ = ["aggregate_interval", "aggregate_whole_week", "votes_table"]

VOTES_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("attribute", pa.string()),
    ("method", pa.string()),  # majority | weighted | calibrated
    ("label", pa.list_(pa.string())),
    ("confidence", pa.float64()),
    ("n_voters", pa.int64()),
])


def aggregate_interval(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """Streamed over the user shards (`labels.sharded`: peak memory bounded by one shard plus the calibration
    sample); gold-dev calibration (`labels.gold_dev_users` > 0) needs the whole week's dev users and gold, so
    it runs on the whole-week path."""
    if settings.labels.gold_dev_users > 0:
        return aggregate_whole_week(lake, interval, settings)
    from conf_profile.labels.sharded import aggregate_sharded

    return aggregate_sharded(lake, interval, settings)


def aggregate_whole_week(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """Every teacher answer and document of the week in one process (memory grows with the users)."""
    taxonomy = load_taxonomy(settings.taxonomy_path)
    ls = settings.labels
    answers, info = read_teacher_outputs(lake, interval, ls.shards, teachers=[t.name for t in ls.teachers])
    docs = read_documents(lake, interval)
    split, budget = Split.of(settings), Budget.of(settings)
    all_users = docs["user_id"].combine_chunks()
    labelled = budget.mask(all_users, split)  # all True without a budget; eval users always labelled
    b = encode(answers, taxonomy, ls.teachers, users=all_users.filter(pa.array(labelled)),
               keep_rationale=ls.include_rationale)
    is_eval = split.mask(b.users)  # the configured split (evaluation.share, evaluation.salt)

    gold = None
    n_dev = 0
    if ls.gold_dev_users > 0:
        gold, n_dev = _gold_dev(lake, b, is_eval, ls.gold_dev_users)
    agg = aggregate_ballots(b, ls, gold)

    order = taxonomy.names
    doc_text = _documents_for(docs, b.users)
    train = ~is_eval
    keep, dropped = class_caps(b.layout, agg.label, agg.confidence, agg.shift.priors, ls.class_cap_factor, train)

    lay = RunLayout(interval)
    paths = {"votes": lay.votes, "teacher_predictions": lay.teacher_predictions, "calibration": lay.calibration,
             "distill": lay.distill, "rl_prompts": lay.rl_prompts}
    votes = votes_table(b, agg, order)
    lake.write_committed_table(paths["votes"], votes, meta={"interval": str(interval), "users": b.n_users})
    lake.write_committed_table(paths["teacher_predictions"], teacher_predictions(b, ls.multilabel_threshold),
                               meta={"interval": str(interval), "teachers": b.teachers})
    calibration = calibration_json(agg, b.teachers, order, n_dev, interval)
    lake.write_json(paths["calibration"], calibration)

    rationale = merged_rationale(b, agg.label, order) if ls.include_rationale else None
    target = profile_json(b.layout, order, agg.label, agg.confidence, rationale)
    mean_conf = _mean_conf(agg.confidence)
    distill = pa.table({
        "user_id": b.users, "document": doc_text, "target": target, "mean_confidence": mean_conf,
    }).filter(pa.array(keep))
    lake.write_committed_table(paths["distill"], distill, meta={
        "interval": str(interval), "records": distill.num_rows, "capped_out": int((train & ~keep).sum()),
        "calibration": agg.source, "include_rationale": ls.include_rationale})

    stage1 = profile_json(b.layout, order, agg.label, agg.confidence)
    rl = pa.table({
        "user_id": b.users, "document": doc_text, "stage1": stage1, "stage1_confidence": mean_conf,
        "teacher_answers": teacher_answers_json(replace(b, weight=agg.weight), order),
    }).filter(pa.array(train))
    if budget.active:  # GRPO gets what SFT did not see: the week's users without teacher labels
        rl = unlabelled_prompts(docs, ~labelled & ~split.mask(all_users), rl.schema)
    lake.write_committed_table(paths["rl_prompts"], rl, meta={
        "interval": str(interval), "records": rl.num_rows, "teacher_budget": budget.describe() if budget.active else None,
        "with_stage1": int(rl.num_rows - rl.column("stage1").null_count)})

    return {
        "interval": str(interval),
        "users": b.n_users,
        "eval_users": int(is_eval.sum()),
        "teachers": b.teachers,
        "answers": int(len(b.u)),
        "excluded_error_rows": b.excluded_error,
        "excluded_invalid_rows": b.excluded_invalid,
        "excluded_no_document_rows": b.excluded_unknown_user,
        "distill_records": distill.num_rows,
        "capped_out": int((train & ~keep).sum()),
        "capped_out_by_attribute": dropped,
        "rl_prompts": rl.num_rows,
        "teacher_budget": {**budget.describe(), "labelled_users": int((labelled & ~split.mask(all_users)).sum()),
                           "unlabelled_users": int((~labelled).sum())} if budget.active else None,
        "calibration": agg.source,
        "calibration_points": agg.n_points,
        "calibration_sample_users": int(min(b.n_users, ls.calibration_sample_users)),
        "aggregated_shards": 1,
        "gold_dev_users": n_dev,
        "prior_shift_changed": agg.shift.changed,
        "coverage": _coverage(agg, b),
        "paths": {k: lake.uri_of(v) for k, v in paths.items()},
        "shards": info["shards"],
        "missing_teachers": [t.name for t in ls.teachers if t.name not in info["shards"]],
    }


def votes_table(b: Ballots, agg: Aggregate, order: list[str]) -> pa.Table:
    """Long form: one row per (user, attribute, method), attributes in taxonomy order."""
    lay = b.layout
    cols = np.array([lay.attributes.index(a) for a in order], dtype=np.int64)
    n = b.n_users * len(cols)
    users = b.users.take(pa.array(np.repeat(np.arange(b.n_users), len(cols))))
    attr_names = pa.array(order).take(pa.array(np.tile(np.arange(len(cols)), b.n_users)))
    attr_idx = np.tile(cols, b.n_users)
    parts = []
    for method, label, conf in (("majority", agg.majority.label, agg.majority.confidence),
                                ("weighted", agg.weighted.label, agg.weighted.confidence),
                                ("calibrated", agg.label, agg.confidence)):
        parts.append(pa.table({
            "user_id": users, "attribute": attr_names, "method": pa.array([method] * n, pa.string()),
            "label": label_lists(lay, label[:, cols].reshape(-1), attr_idx),
            "confidence": pa.array(conf[:, cols].reshape(-1)),
            "n_voters": pa.array(agg.weighted.n_voters[:, cols].reshape(-1).astype(np.int64)),
        }, schema=VOTES_SCHEMA))
    return pa.concat_tables(parts)


def calibration_json(agg: Aggregate, teachers: list[str], order: list[str], n_dev: int, interval: Interval) -> dict:
    """The calibration map: per attribute the isotonic breakpoints, the estimated priors, and each
    teacher's leave-one-out agreement rate (its reliability weight) and whether it was redundant."""
    lay = agg.layout
    per: dict[str, dict] = {}
    for name in order:
        ai = lay.attributes.index(name)
        rates = {t: (None if np.isnan(agg.agreement[k, ai]) else round(float(agg.agreement[k, ai]), 4))
                 for k, t in enumerate(teachers)}
        entry: dict = {"classes": lay.classes(ai), "isotonic": agg.calibrator.maps[name].to_json(),
                       "teacher_agreement": rates,
                       "redundant_teachers": [t for k, t in enumerate(teachers) if agg.redundant[k, ai]]}
        if name in agg.shift.priors:
            entry.update(priors=agg.shift.priors[name], vote_shares=agg.shift.vote_shares[name],
                         prior_shift_changed=agg.shift.changed[name], em_iterations=agg.shift.iterations[name])
        per[name] = entry
    return {"interval": str(interval), "source": agg.source, "gold_dev_users": n_dev,
            "points": agg.n_points, "attributes": per}


def _gold_dev(lake: Lake, b: Ballots, is_eval: np.ndarray, n: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """The first `n` non-evaluation users (user-id order) that have gold labels: a small, explicitly
    configured dev set (method.md 4a). Evaluation users are never used, so the report stays honest."""
    from conf_profile.gold import read_gold

    code, present = encode_labels(read_gold(lake), b.layout, b.users)
    candidates = np.flatnonzero(present.any(axis=1) & ~is_eval)[:n]
    dev = np.zeros(b.n_users, dtype=bool)
    dev[candidates] = True
    return (code, present & dev[:, None]), int(len(candidates))


def unlabelled_prompts(docs: pa.Table, mask: np.ndarray, schema: pa.Schema) -> pa.Table:
    """RL prompts for users the teachers did not label: their documents, no Stage-1 profile, confidence or
    teacher answers (null), so GRPO's quasi-ground truth is the student's own rollouts there."""
    sub = docs.select(["user_id", "document"]).filter(pa.array(mask)).combine_chunks()
    n = sub.num_rows
    cols = {"user_id": sub["user_id"], "document": sub["document"]}
    return pa.table({f.name: cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in schema}, schema=schema)


def _documents_for(docs: pa.Table, users: pa.Array) -> pa.Array:
    idx = pc.index_in(users, value_set=docs["user_id"].combine_chunks())
    return docs["document"].combine_chunks().take(idx)


def _mean_conf(conf: np.ndarray) -> pa.Array:
    """Mean calibrated confidence over attributes (unknown counts as 0): low for users the teachers could
    not profile, which is what difficulty filtering needs."""
    return pa.array(conf.mean(axis=1) if conf.shape[1] else np.zeros(conf.shape[0]))


def _coverage(agg: Aggregate, b: Ballots) -> dict[str, float]:
    d = decided(agg.layout, agg.label)
    return {a: round(float(d[:, i].mean()), 4) if b.n_users else 0.0 for i, a in enumerate(agg.layout.attributes)}
