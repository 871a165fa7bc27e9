"""The aggregate stage streamed over user shards, so its peak memory does not grow with the number of users.

Shard i is shard-i of every teacher plus the users of document shard i (documents and labels split users
with the one `shards.shard_of`). Two passes over the shards, one shard's answers in memory at a time:
1. the calibration sample (`stream.collect_sample`): the `labels.calibration_sample_users` users with the
   smallest id hash among the users that vote; the confidence map, reliability rates and EM priors are fitted
   on it (`aggregate.fit_calibration`);
2. per shard: encode, the three votes, the calibrated vote (`aggregate.apply_calibration`), and that shard's
   rows of votes, teacher_predictions, distill and rl_prompts are written out as one part file each and
   dropped. Each output is committed once, after the last shard (`Lake.commit` over its parts: one
   manifest per dataset; the previous manifest is removed before the first part is written).

What needs every user is kept small: the class caps of the distillation set (docs/labels.md) rank all
training users per class, so per training user its single-label classes and confidences (and id) are kept
(~(9 x single-label attributes + id length) bytes, vs ~20 KB of answers), the caps are applied once at the
end and the distill parts with capped-out users rewritten; with a teacher budget the budget ranks every
user id (as the label stage does). Counters are summed over shards.

Memory bound: O(answers of the largest shard + answers of the K sampled users) + the per-user caps arrays.
When the sample covers every user (K >= users) the outputs equal the whole-week path row for row.
Gold-dev calibration (`labels.gold_dev_users` > 0) needs the gold labels of the dev users of the whole week:
it stays on the whole-week path (`labels.aggregate_whole_week`).
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.budget import Budget
from conf_profile.config import Settings
from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.labels import records
from conf_profile.labels.aggregate import Aggregate, _rows_for, apply_calibration, fit_calibration
from conf_profile.labels.ballots import encode
from conf_profile.labels.calibrate import class_caps, decided
from conf_profile.labels.io import no_teacher_outputs, read_teacher_shard, teacher_shards
from conf_profile.labels.predictions import teacher_predictions
from conf_profile.labels.stream import collect_sample
from conf_profile.layout import RunLayout
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.shards import shard_of
from conf_profile.splits import Split
from conf_profile.storage import MANIFEST, Lake
from conf_profile.taxonomy import load_taxonomy

__all__ = ["DocumentShards", "aggregate_sharded"]


class DocumentShards:
    """The week's documents one user shard at a time: document shard i's own part when the documents were
    built with the same shard count (the pipeline's case), else the one table split by `shard_of` (an
    unsharded or differently sharded build: the documents, not the answers, are then held whole)."""

    def __init__(self, lake: Lake, interval: Interval, shards: int):
        lay = RunLayout(interval)
        rel = lay.documents
        if not lake.is_committed(rel):
            raise LakeError(f"No committed documents at {lake.uri_of(rel)}.",
                            f"Run `conf-profile documents --interval {interval}` first.")
        self.lake, self.lay, self.shards = lake, lay, shards
        files = [f for f in lake.manifest(rel)["files"] if f.endswith(".parquet")]
        own = {f"shard-{i}" for i in range(shards)}
        self.whole: pa.Table | None = None
        if not (files and all(f.split("/", 1)[0] in own for f in files) and all(
                _built_with(lake, lay.documents_shard(i), shards) for i in range(shards))):
            self.whole = lake.read_committed(rel, columns=["user_id", "document"]).combine_chunks()
            self.of = shard_of(self.whole["user_id"], shards)

    def shard(self, i: int) -> pa.Table:
        if self.whole is not None:
            return self.whole.filter(pa.array(self.of == i))
        return self.lake.read_committed(self.lay.documents_shard(i), columns=["user_id", "document"]).combine_chunks()

    def user_ids(self) -> pa.Array:
        """Every user id of the week (the teacher budget ranks them all)."""
        if self.whole is not None:
            return self.whole["user_id"]
        return self.lake.read_committed(self.lay.documents, columns=["user_id"])["user_id"].combine_chunks()


def _built_with(lake: Lake, shard_rel: str, shards: int) -> bool:
    try:
        return lake.is_committed(shard_rel) and (lake.manifest(shard_rel).get("meta") or {}).get("shards") == shards
    except (ValueError, KeyError, TypeError, OSError, LakeError):
        return False


class Parts:
    """One dataset written as a part file per shard and committed once (one manifest) by `commit`. The previous
    manifest is removed first, so a run that stops half-way leaves the dataset uncommitted (readers fail and
    name it) rather than an old manifest over new parts. Part names are fixed (`part-<shard>.parquet`): the
    same content commits to the same fingerprint, so a rerun of the same week changes nothing downstream."""

    def __init__(self, lake: Lake, rel: str):
        self.lake, self.rel = lake, rel
        self.files: list[str] = []
        self.schema: pa.Schema | None = None
        if lake.is_committed(rel):
            lake.delete(posixpath.join(rel, MANIFEST))

    def name(self, shard: int) -> str:
        return f"part-{shard:05d}.parquet"

    def write(self, shard: int, table: pa.Table) -> None:
        self.schema = self.schema or table.schema
        self.lake.write_table(posixpath.join(self.rel, self.name(shard)), table.cast(self.schema))
        self.files.append(self.name(shard))

    def commit(self, meta: dict) -> None:
        self.lake.commit(self.rel, self.files, meta)


VOTE_COLUMNS = ["user_id", "teacher_id", "sample_idx", "attribute", "label", "confidence", "error"]


def _answers(lake: Lake, plan: dict[str, list[str]], i: int, rationale: bool = False) -> pa.Table:
    """Shard i of every teacher, in teacher order (so a user's rows keep the whole week's order); only the
    columns the vote reads (and the rationale when asked for)."""
    cols = VOTE_COLUMNS + (["rationale"] if rationale else [])
    tables = [t for rels in plan.values()
              if i < len(rels) and (t := read_teacher_shard(lake, rels[i], cols)).num_rows]
    if tables:
        return pa.concat_tables(tables)
    return pa.schema([f for f in TEACHER_OUTPUT_SCHEMA if f.name in cols]).empty_table()


def _add(acc: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        acc[k] = acc.get(k, 0) + int(v)


def aggregate_sharded(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """`labels.aggregate_interval` shard by shard (module docstring): same outputs and summary."""
    from conf_profile.labels import (
        _documents_for,
        _mean_conf,
        calibration_json,
        unlabelled_prompts,
        votes_table,
    )

    taxonomy, ls = load_taxonomy(settings.taxonomy_path), settings.labels
    n, order = int(ls.shards), taxonomy.names
    plan, info = teacher_shards(lake, interval, n, teachers=[t.name for t in ls.teachers])
    docs = DocumentShards(lake, interval, n)
    split, budget = Split.of(settings), Budget.of(settings)
    labelled_ids = None
    if budget.active:  # the budget ranks every user id of the week (as the label stage does)
        ids = docs.user_ids()
        labelled_ids = ids.filter(pa.array(budget.mask(ids, split)))

    def shard_users(i: int) -> tuple[pa.Table, pa.Array, np.ndarray]:
        d = docs.shard(i)
        ids = d["user_id"].combine_chunks() if isinstance(d["user_id"], pa.ChunkedArray) else d["user_id"]
        labelled = (np.ones(len(ids), dtype=bool) if labelled_ids is None
                    else pc.is_in(ids, value_set=labelled_ids).to_numpy(zero_copy_only=False))
        return d, ids, labelled

    def voting_answers():  # pass 1: only the rows that vote (users with a document, within the budget)
        for i in range(n):
            _, ids, labelled = shard_users(i)
            table = _answers(lake, plan, i)
            yield table.filter(pc.is_in(table["user_id"], value_set=ids.filter(pa.array(labelled))))

    sample = collect_sample(voting_answers(), ls.calibration_sample_users)
    if sample.table is None and not any(_answers(lake, plan, i).num_rows for i in range(n)):
        raise no_teacher_outputs(lake, interval)
    sb = encode(sample.table if sample.table is not None else _answers(lake, {}, 0), taxonomy, ls.teachers)
    n_sampled = sb.n_users
    del sample
    cal, _ = fit_calibration(sb, ls)
    del sb

    lay = RunLayout(interval)
    paths = {"votes": lay.votes, "teacher_predictions": lay.teacher_predictions, "calibration": lay.calibration,
             "distill": lay.distill, "rl_prompts": lay.rl_prompts}
    out = {k: Parts(lake, paths[k]) for k in ("votes", "teacher_predictions", "distill", "rl_prompts")}
    tot = dict.fromkeys(("users", "eval_users", "answers", "rl", "with_stage1", "labelled", "unlabelled"), 0)
    excluded: dict[str, dict[str, int]] = {"error": {}, "invalid": {}, "unknown_user": {}}
    changed: dict[str, int] = {}
    teachers = [t.name for t in ls.teachers]
    decided_n: np.ndarray | None = None
    caps: list[tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]] = []  # train users: ids, labels, conf, shard
    template: Aggregate | None = None
    for i in range(n):  # pass 2: one shard at a time, written out and dropped
        d, ids, labelled = shard_users(i)
        b = encode(_answers(lake, plan, i, ls.include_rationale), taxonomy, ls.teachers, users=ids.filter(pa.array(labelled)),
                   keep_rationale=ls.include_rationale)
        agg = apply_calibration(b, cal, ls)
        is_eval = split.mask(b.users)
        train = ~is_eval
        teachers += [t for t in b.teachers if t not in teachers]
        out["votes"].write(i, votes_table(b, agg, order))
        out["teacher_predictions"].write(i, teacher_predictions(b, ls.multilabel_threshold))
        doc_text = _documents_for(d, b.users)
        rationale = records.merged_rationale(b, agg.label, order) if ls.include_rationale else None
        mean_conf = _mean_conf(agg.confidence)
        distill = pa.table({
            "user_id": b.users, "document": doc_text,
            "target": records.profile_json(b.layout, order, agg.label, agg.confidence, rationale),
            "mean_confidence": mean_conf,
        }).filter(pa.array(train))  # the class caps are applied once every shard is known
        out["distill"].write(i, distill)
        single = b.layout.single_idx
        caps.append((b.users.filter(pa.array(train)), agg.label[train][:, single].astype(np.int16),
                     agg.confidence[train][:, single], np.full(int(train.sum()), i, dtype=np.int32)))
        rl = pa.table({
            "user_id": b.users, "document": doc_text,
            "stage1": records.profile_json(b.layout, order, agg.label, agg.confidence),
            "stage1_confidence": mean_conf,
            "teacher_answers": records.teacher_answers_json(replace(b, weight=agg.weight), order),
        }).filter(pa.array(train))
        if budget.active:  # GRPO gets what SFT did not see: the week's users without teacher labels
            rl = unlabelled_prompts(d, ~labelled & ~split.mask(ids), rl.schema)
        out["rl_prompts"].write(i, rl)

        tot["users"] += b.n_users
        tot["eval_users"] += int(is_eval.sum())
        tot["answers"] += int(len(b.u))
        tot["rl"] += rl.num_rows
        tot["with_stage1"] += rl.num_rows - rl.column("stage1").null_count
        tot["labelled"] += int((labelled & ~split.mask(ids)).sum())
        tot["unlabelled"] += int((~labelled).sum())
        _add(excluded["error"], b.excluded_error)
        _add(excluded["invalid"], b.excluded_invalid)
        _add(excluded["unknown_user"], b.excluded_unknown_user)
        _add(changed, agg.shift.changed)
        dn = decided(agg.layout, agg.label).sum(axis=0)
        decided_n = dn if decided_n is None else decided_n + dn
        if template is None:  # what calibration_json reads, without this shard's (U, A) arrays
            template = replace(agg, majority=None, weighted=None, calibrated_vote=None, label=None,
                               confidence=None, weight=None)
        del b, agg, d, distill, rl, doc_text, rationale

    keep_n, capped, dropped = _apply_caps(lake, out["distill"], caps, cal.priors.priors, ls.class_cap_factor,
                                          template.layout)
    del caps
    template = replace(template, agreement=cal.rates_for(teachers), redundant=_rows_for(cal, teachers),
                       shift=replace(template.shift, changed=changed))
    out["votes"].commit({"interval": str(interval), "users": tot["users"]})
    out["teacher_predictions"].commit({"interval": str(interval), "teachers": teachers})
    lake.write_json(paths["calibration"], calibration_json(template, teachers, order, 0, interval))
    out["distill"].commit({"interval": str(interval), "records": keep_n, "capped_out": capped,
                           "calibration": cal.source, "include_rationale": ls.include_rationale})
    out["rl_prompts"].commit({
        "interval": str(interval), "records": tot["rl"],
        "teacher_budget": budget.describe() if budget.active else None,
        "with_stage1": tot["with_stage1"]})
    coverage = {a: round(float(decided_n[k] / tot["users"]), 4) if tot["users"] else 0.0
                for k, a in enumerate(template.layout.attributes)}
    return {
        "interval": str(interval),
        "users": tot["users"],
        "eval_users": tot["eval_users"],
        "teachers": teachers,
        "answers": tot["answers"],
        "excluded_error_rows": excluded["error"],
        "excluded_invalid_rows": excluded["invalid"],
        "excluded_no_document_rows": excluded["unknown_user"],
        "distill_records": keep_n,
        "capped_out": capped,
        "capped_out_by_attribute": dropped,
        "rl_prompts": tot["rl"],
        "teacher_budget": {**budget.describe(), "labelled_users": tot["labelled"],
                           "unlabelled_users": tot["unlabelled"]} if budget.active else None,
        "calibration": cal.source,
        "calibration_points": cal.n_points,
        "calibration_sample_users": n_sampled,
        "aggregated_shards": n,
        "gold_dev_users": 0,
        "prior_shift_changed": changed,
        "coverage": coverage,
        "paths": {k: lake.uri_of(v) for k, v in paths.items()},
        "shards": info["shards"],
        "missing_teachers": [t.name for t in ls.teachers if t.name not in info["shards"]],
    }


def _apply_caps(lake: Lake, parts: Parts, caps: list, priors: dict[str, list[float]], factor: float,
                layout) -> tuple[int, int, dict[str, int]]:
    """`class_caps` over every training user at once (users in id order, as on the whole week), then the
    distill parts that hold capped-out users are rewritten without them. Returns (records, capped, by attr)."""
    ids = pa.concat_arrays([c[0] for c in caps]) if caps else pa.array([], pa.string())
    o = pc.sort_indices(ids).to_numpy(zero_copy_only=False)
    n_users, single = len(ids), layout.single_idx
    label = np.full((n_users, layout.n_attrs), -1, dtype=np.int64)
    conf = np.zeros((n_users, layout.n_attrs))
    if n_users:
        label[:, single] = np.concatenate([c[1] for c in caps])[o]
        conf[:, single] = np.concatenate([c[2] for c in caps])[o]
    shard = np.concatenate([c[3] for c in caps])[o] if caps else np.zeros(0, np.int32)
    keep, dropped = class_caps(layout, label, conf, priors, factor, np.ones(n_users, dtype=bool))
    del label, conf
    gone = ids.take(pa.array(o[~keep])) if n_users else ids
    for i in np.unique(shard[~keep]):
        rel = posixpath.join(parts.rel, parts.name(int(i)))
        table = lake.read_table(rel)
        lake.write_table(rel, table.filter(pc.invert(pc.is_in(table["user_id"], value_set=gone))))
    return int(keep.sum()), int((~keep).sum()), dropped
