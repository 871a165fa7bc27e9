"""The teacher budget: a deterministic labelled/unlabelled split, teachers and distillation on the labelled
users only, GRPO prompts from the unlabelled ones; rewards with and without a Stage-1 voter."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.budget import Budget
from conf_profile.config import Settings
from conf_profile.config import params as run_params
from conf_profile.intervals import Interval
from conf_profile.labels import aggregate_interval
from conf_profile.labels.io import read_teacher_outputs
from conf_profile.schema import DOCUMENT_SCHEMA
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.teachers.labelling import label_interval, label_shard
from conf_profile.testing import commit_stages
from conf_profile.train.rewards import Rollout, group_rewards, quasi_ground_truth, self_agreement
from conf_profile.train.rl import rl_candidates, self_difficulty_filter, stage1_voters

TAX = load_taxonomy()
IV = Interval.parse("2026-11-16..2026-11-23")
USERS = [f"user-{i:04d}" for i in range(400)]
SNIPPETS = ["## watch\n- [gaming] ⟦boss guide⟧ 90%", "## searches\n- ⟦cheap stroller⟧",
            "## comments\n- ⟦I'm a nurse⟧", "## profile\ndeclared_age: 51\ncity: Beijing"]


def test_split_is_deterministic_respects_the_share_and_never_counts_eval_users():
    split = Split()
    is_eval = split.mask(USERS)
    m = Budget(share=0.25).mask(USERS, split)
    assert np.array_equal(m, Budget(share=0.25).mask(list(reversed(USERS)), split)[::-1])  # order-free, rerun-stable
    assert m[is_eval].all()  # evaluation users are always labelled (report card) ...
    assert int((m & ~is_eval).sum()) == int(0.25 * (~is_eval).sum())  # ... and not part of the budget
    assert int((Budget(users=10).mask(USERS, split) & ~is_eval).sum()) == 10
    assert int((Budget(users=10, share=0.5).mask(USERS, split) & ~is_eval).sum()) == 10  # both: the smaller
    half = Budget(share=0.5).mask(USERS, split)
    assert (m <= half).all()  # a larger budget labels a superset (the same hash order)
    assert not np.array_equal(half, Budget(share=0.5, salt="other").mask(USERS, split))
    assert Budget().mask(USERS, split).all() and not Budget().active


def test_teacher_share_is_a_run_parameter():
    s = Settings.load()
    run_params.apply(s, {"teacher_share": 0.3})
    assert s.labels.teacher_budget.share == 0.3
    schema = run_params.json_schema(s, run_params.BY_NAME["teacher_share"])
    assert schema["type"] == ["number", "null"] and schema["maximum"] == 1


@pytest.fixture()
def budget_lake(tmp_path):
    lake = Lake.open(str(tmp_path / "lake"))
    docs = ["\n".join(SNIPPETS[j] for j in range(len(SNIPPETS)) if (i + j) % 3 == 0) or "## watch\n- ⟦x⟧"
            for i in range(len(USERS))]
    lake.write_committed_table(Lake.run_dir(IV, "documents"), pa.table({
        "user_id": USERS, "document": docs, "n_events": [1] * len(USERS), "n_chars": [len(d) for d in docs]},
        schema=DOCUMENT_SCHEMA), meta={"documents": len(USERS)})
    commit_stages(lake, IV, "documents")
    s = Settings.load(lake=lake.uri)
    s.labels.shards = 2
    s.labels.teachers = [t for t in s.labels.teachers if t.name in ("lexicon_watch", "lexicon_all")]
    s.labels.calibration_min_points = 10
    s.labels.teacher_budget.share = 0.3
    return lake, s


def test_teachers_see_only_budgeted_users_and_grpo_reads_only_the_others(budget_lake):
    lake, s = budget_lake
    split = Split.of(s)
    labelled = set(np.array(USERS)[Budget.of(s).mask(USERS, split)])
    is_eval = dict(zip(USERS, split.mask(USERS), strict=True))
    summary = label_interval(lake, IV, s)
    assert summary["unlabelled_by_budget"] == len(USERS) - len(labelled)
    answers, _ = read_teacher_outputs(lake, IV, s.labels.shards)
    assert set(pc.unique(answers["user_id"]).to_pylist()) == labelled
    assert label_shard(lake, IV, s, "lexicon_all", 0)["status"] == "skipped"  # same budget: reused
    changed = s.model_copy(deep=True)
    changed.labels.teacher_budget.share = 0.5
    assert label_shard(lake, IV, changed, "lexicon_all", 0)["status"] == "done"  # another budget: redone
    label_interval(lake, IV, s)
    commit_stages(lake, IV, "label")

    out = aggregate_interval(lake, IV, s)
    train_labelled = {u for u in labelled if not is_eval[u]}
    unlabelled = {u for u in USERS if u not in labelled}
    assert out["teacher_budget"]["labelled_users"] == len(train_labelled)
    distill = lake.read_committed(Lake.run_dir(IV, "labels", "distill"))
    assert set(distill["user_id"].to_pylist()) <= train_labelled
    rl = lake.read_committed(Lake.run_dir(IV, "labels", "rl_prompts"))
    assert set(rl["user_id"].to_pylist()) == unlabelled  # no teacher label, no eval user
    assert rl["stage1"].null_count == rl.num_rows == rl["stage1_confidence"].null_count
    assert rl["document"].null_count == 0

    table, dropped_eval, held = rl_candidates(lake, IV, s)
    assert dropped_eval == 0 and set(table["user_id"].to_pylist()) <= unlabelled
    assert table.num_rows == len(unlabelled) - int(held.sum())
    s.train.rl.presample = 0  # no pre-sampling: every unlabelled prompt is kept, no model needed
    kept, stats = self_difficulty_filter(None, None, table, s, 32)
    assert kept.num_rows == table.num_rows and stats["kept"] == table.num_rows

    nobudget = s.model_copy(deep=True)  # without a budget: today's behaviour, GRPO on the labelled users
    nobudget.labels.teacher_budget.share = None
    label_interval(lake, IV, nobudget)
    aggregate_interval(lake, IV, nobudget)
    rl = lake.read_committed(Lake.run_dir(IV, "labels", "rl_prompts"))
    assert set(rl["user_id"].to_pylist()) == {u for u in USERS if not is_eval[u]} and rl["stage1"].null_count == 0


def _text(labels: dict, conf: float = 0.8) -> str:
    return json.dumps({a: {"label": labels.get(a, "unknown" if not TAX.attribute(a).is_multi else []),
                           "confidence": conf if a in labels else 0.0} for a in TAX.names})


def test_rewards_without_a_stage1_voter_follow_the_rollouts_and_with_one_follow_stage1():
    prompts = ["p"] * 3
    completions = [_text({"gender": "male"}), _text({"gender": "male"}), _text({"gender": "female"})]
    stage1 = stage1_voters(json.dumps({"gender": {"label": "female", "confidence": 0.9}}))
    alone = group_rewards(prompts, completions, TAX, [stage1_voters(None)] * 3, teacher_weight=8.0)
    assert alone[0]["agreement"] > alone[2]["agreement"]  # no Stage-1 label: the rollouts' majority wins
    voted = group_rewards(prompts, completions, TAX, [stage1] * 3, teacher_weight=8.0)
    assert voted[2]["agreement"] > voted[0]["agreement"]  # the Stage-1 voter outweighs two rollouts
    # the vote share weights the agreement: a near-unanimous attribute counts more than a split one
    q = quasi_ground_truth([Rollout({"gender": "male"}, {"gender": 0.8}, True)] * 2
                           + [Rollout({"gender": "female"}, {"gender": 0.8}, True)], TAX)
    assert q["gender"].share == pytest.approx(2 / 3)


def test_rollout_abstentions_vote_only_with_a_weight_and_self_agreement():
    unk = Rollout({"gender": "unknown"}, {"gender": 0.0}, True)
    guess = Rollout({"gender": "male"}, {"gender": 0.3}, True)
    assert quasi_ground_truth([unk, unk, guess], TAX)["gender"].label == "male"  # confidence 0 never wins
    assert quasi_ground_truth([unk, unk, guess], TAX, unknown_weight=0.5)["gender"].label == "unknown"
    same = [Rollout({a: ("male" if a == "gender" else []) for a in ("gender",)}, {"gender": 0.9}, True)] * 4
    assert self_agreement(same, TAX) == pytest.approx(1 / len(TAX.names))  # unanswered attributes count 0
    mixed = same[:2] + [Rollout({"gender": "female"}, {"gender": 0.9}, True)] * 2
    assert self_agreement(mixed, TAX) == pytest.approx(0.5 / len(TAX.names))
