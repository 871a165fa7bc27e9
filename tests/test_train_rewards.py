"""Confidence-guided GRPO rewards on hand-made rollouts, and the difficulty filter."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from conf_profile.taxonomy import Taxonomy
from conf_profile.train.rewards import (
    ConfidenceRewards,
    Rollout,
    class_priors,
    group_indices,
    group_rewards,
    parse_rollout,
    quasi_ground_truth,
    rollout_rewards,
)
from conf_profile.train.rl import difficulty_filter, stage1_voters

TAX = Taxonomy.model_validate({
    "name": "t",
    "attributes": [
        {"name": "gender", "classes": ["male", "female"]},
        {"name": "age_group", "classes": ["young", "old"]},
        {"name": "interests", "kind": "multi", "max_labels": 2, "classes": ["gaming", "music", "travel"]},
    ],
})


def answer(gender="male", gc=0.9, age="young", ac=0.8, interests=("gaming",), ic=0.7) -> str:
    return json.dumps({"gender": {"label": gender, "confidence": gc}, "age_group": {"label": age, "confidence": ac},
                       "interests": {"label": list(interests), "confidence": ic}})


def test_agreement_follows_the_group_majority():
    texts = [answer(), answer(), answer(gender="female", gc=0.6)]
    out = group_rewards(["p"] * 3, texts, TAX)
    assert out[0]["agreement"] == pytest.approx(1.0)
    # The dissenter agrees on age and interests only; gender is weighted by its vote share s_a.
    q = quasi_ground_truth([parse_rollout(t, TAX) for t in texts], TAX)
    s = {a: q[a].share for a in q}
    assert s["gender"] == pytest.approx(1.8 / 2.4)
    expected = (s["age_group"] + s["interests"]) / sum(s.values())
    assert out[2]["agreement"] == pytest.approx(expected)
    assert out[2]["agreement"] < out[0]["agreement"]


def test_confidence_weights_beat_head_count():
    # Two unsure rollouts say male, one sure rollout says female: the confident one wins the vote.
    texts = [answer(gc=0.2), answer(gc=0.2), answer(gender="female", gc=0.9)]
    q = quasi_ground_truth([parse_rollout(t, TAX) for t in texts], TAX)
    assert q["gender"].label == "female"
    assert q["gender"].share == pytest.approx(0.9 / 1.3)
    out = group_rewards(["p"] * 3, texts, TAX)
    assert out[2]["agreement"] > out[0]["agreement"]


def test_teacher_voters_can_overturn_the_rollouts():
    texts = [answer(), answer(), answer()]
    teachers = json.dumps({"gender": [["female", 0.9, 1.0], ["female", 0.8, 1.0]]})
    rolls = [parse_rollout(t, TAX) for t in texts]
    assert quasi_ground_truth(rolls, TAX, teachers, teacher_weight=0.0)["gender"].label == "male"
    q = quasi_ground_truth(rolls, TAX, teachers, teacher_weight=2.0)
    assert q["gender"].label == "female"  # 2.0 * 1.7 = 3.4 > 2.7
    assert q["gender"].share == pytest.approx(3.4 / 6.1)
    low = group_rewards(["p"] * 3, texts, TAX, [teachers] * 3, teacher_weight=2.0)
    high = group_rewards(["p"] * 3, texts, TAX, [teachers] * 3, teacher_weight=0.0)
    assert low[0]["agreement"] < high[0]["agreement"] == pytest.approx(1.0)


def test_stage1_profile_votes_as_one_voter_including_its_abstentions():
    profile = json.dumps({"gender": {"label": "female", "confidence": 0.8},
                          "age_group": {"label": "unknown", "confidence": 0.0},
                          "interests": {"label": ["music"], "confidence": 0.6}})
    voters = json.loads(stage1_voters(profile))
    assert voters == {"gender": [["female", 1.0, 1.0]], "age_group": [["unknown", 1.0, 1.0]],
                      "interests": [[["music"], 1.0, 1.0]]}  # full weight: the profile is already a vote
    rolls = [parse_rollout(answer(age="old"), TAX) for _ in range(3)]  # 3 x 0.9 for male, 3 x 0.8 for old
    q = quasi_ground_truth(rolls, TAX, json.dumps(voters), teacher_weight=3.0)
    assert q["gender"].label == "female"  # 3.0 > 2.7
    assert q["age_group"].label == "unknown"  # Stage 1 abstained with weight 3 > 2.4: guessing is not rewarded
    assert quasi_ground_truth(rolls, TAX, json.dumps(voters), teacher_weight=2.0)["age_group"].label == "old"
    assert q["interests"].label == ["music"]  # 3.0 on music vs 3 x 0.7 on gaming: music has share 0.59
    assert stage1_voters(None) == "{}"


def test_teacher_answers_outside_the_taxonomy_do_not_vote():
    rolls = [parse_rollout(answer(), TAX)]
    teachers = {"gender": [["robot", 0.9, 5.0]]}
    assert quasi_ground_truth(rolls, TAX, teachers, teacher_weight=10.0)["gender"].label == "male"


def test_format_failures():
    texts = ["not json at all", '{"gender": {"label": "male", "confidence": 0.9}}',
             answer(gender="robot"), answer()]
    out = group_rewards(["p"] * 4, texts, TAX)
    assert out[0]["format"] == 0.0 and out[0]["agreement"] == 0.0
    assert out[1]["format"] == pytest.approx(0.5 * 1 / 3)  # JSON, one valid attribute of three
    assert out[2]["format"] == pytest.approx(0.5 * 2 / 3)  # out-of-taxonomy gender
    assert out[3]["format"] == 1.0
    assert out[0]["calibration"] == pytest.approx(-1.0)  # invalid counts as confident and wrong


def test_calibration_term_penalises_confident_disagreement():
    q = quasi_ground_truth([parse_rollout(answer(), TAX)] * 3, TAX)
    right_sure = rollout_rewards(parse_rollout(answer(gc=1.0, ac=1.0, ic=1.0), TAX), q, TAX)
    assert right_sure["calibration"] == pytest.approx(0.0)
    wrong_sure = rollout_rewards(parse_rollout(answer(gender="female", gc=1.0, ac=1.0, ic=1.0), TAX), q, TAX)
    wrong_unsure = rollout_rewards(parse_rollout(answer(gender="female", gc=0.1, ac=1.0, ic=1.0), TAX), q, TAX)
    assert wrong_sure["calibration"] == pytest.approx(-1.0 / 3)
    assert wrong_unsure["calibration"] == pytest.approx(-(0.1**2) / 3)
    assert wrong_unsure["calibration"] > wrong_sure["calibration"]


def test_multilabel_votes_per_label_and_scores_jaccard():
    texts = [answer(interests=("gaming", "music")), answer(interests=("gaming",)), answer(interests=("gaming", "music"))]
    q = quasi_ground_truth([parse_rollout(t, TAX) for t in texts], TAX)
    assert q["interests"].label == ["gaming", "music"]
    out = rollout_rewards(parse_rollout(texts[1], TAX), q, TAX)
    # gender (0.9 vs 1), age (0.8 vs 1), interests (0.7 vs Jaccard 1/2)
    assert out["calibration"] == pytest.approx(-(0.1**2 + 0.2**2 + 0.2**2) / 3)
    assert out["agreement"] < 1.0


def test_groups_by_prompt_not_by_position():
    prompts = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]] * 2
    assert group_indices(prompts) == [[0, 2], [1, 3]]
    completions = [[{"role": "assistant", "content": t}] for t in
                   [answer(), answer(gender="female"), answer(), answer(gender="female")]]
    fns = ConfidenceRewards(TAX).functions()
    agree = fns[0](prompts=prompts, completions=completions)
    assert agree == pytest.approx([1.0, 1.0, 1.0, 1.0])  # each prompt's pair agrees with itself


def test_random_control_keeps_format_only():
    fns = ConfidenceRewards(TAX, control=True, seed=1).functions()
    completions = [answer(), "garbage"]
    a, f, c = (fn(prompts=["p", "p"], completions=completions) for fn in fns)
    assert f == [1.0, 0.0] and c == [0.0, 0.0]
    assert all(0.0 <= x <= 1.0 for x in a)


def test_rollout_with_zero_confidence_still_votes():
    rolls = [Rollout({"gender": "male"}, {"gender": 0.0}, True), Rollout({"gender": "female"}, {"gender": 0.0}, True),
             Rollout({"gender": "female"}, {"gender": 0.0}, True)]
    q = quasi_ground_truth(rolls, TAX)
    assert q["gender"].label == "female" and q["gender"].share == pytest.approx(2 / 3)


def test_difficulty_filter_bounds_are_inclusive():
    t = pa.table({"user_id": list("abcdef"), "stage1_confidence": [0.1, 0.35, 0.5, 0.9, 0.95, None]})
    kept, stats = difficulty_filter(t, (0.35, 0.9))
    assert kept.column("user_id").to_pylist() == ["b", "c", "d"]
    assert stats == {"band": [0.35, 0.9], "candidates": 6, "kept": 3, "dropped_too_easy": 1, "dropped_too_hard": 1,
                     "dropped_no_confidence": 1}
    with pytest.raises(Exception, match="band"):
        difficulty_filter(t, (0.9, 0.2))


def test_class_priors_are_smoothed_shares_without_abstentions():
    profiles = [{"gender": {"label": "male"}}] * 3 + [json.dumps({"gender": {"label": "unknown"}})]
    pri = class_priors(profiles, TAX)
    assert pri["gender"] == pytest.approx({"male": 4 / 5, "female": 1 / 5})
    assert pri["age_group"] == pytest.approx({"young": 0.5, "old": 0.5})
    assert "interests" not in pri  # multi-label attributes keep the plain per-label vote


def test_balanced_vote_lifts_a_rare_class_but_not_abstention():
    pri = {"gender": {"male": 0.8, "female": 0.2}}
    rolls = [parse_rollout(answer(gc=0.5), TAX)] * 3 + [parse_rollout(answer(gender="female", gc=0.5), TAX)] * 2
    assert quasi_ground_truth(rolls, TAX)["gender"].label == "male"  # plain plurality: 1.5 vs 1.0
    q = quasi_ground_truth(rolls, TAX, priors=pri, prior_power=1.0)
    assert q["gender"].label == "female"  # 1.0 / 0.2 > 1.5 / 0.8
    assert q["gender"].share == pytest.approx(1.0 / 2.5)  # the share stays the raw vote share
    assert quasi_ground_truth(rolls, TAX, priors=pri, prior_power=0.2)["gender"].label == "male"  # weak correction
    abstain = [parse_rollout(answer(gender="unknown", gc=0.9), TAX)] * 3 + rolls[3:]
    assert quasi_ground_truth(abstain, TAX, priors=pri, prior_power=1.0)["gender"].label == "unknown"
