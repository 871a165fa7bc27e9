"""The shared metric on hand-made predictions: macro-F1 with abstentions, coverage, ECE, eval-split scoping."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conf_profile.evaluate.metrics import ece, macro_f1, reliability, score
from conf_profile.splits import is_eval_user
from conf_profile.taxonomy import Attribute, Taxonomy
from conf_profile.testing.teacher_answers import gold_table

TAX = Taxonomy(attributes=[
    Attribute(name="gender", classes=["male", "female"]),
    Attribute(name="tier", classes=["t1", "t2", "t3"]),
    Attribute(name="interests", kind="multi", classes=["gaming", "music", "travel"]),
])
EVAL = [u for u in (f"user{i}" for i in range(500)) if is_eval_user(u)][:12]
TRAIN = [u for u in (f"user{i}" for i in range(500)) if not is_eval_user(u)][:3]


def pred_table(rows) -> pa.Table:
    return pa.table({
        "user_id": [r[0] for r in rows], "attribute": [r[1] for r in rows],
        "label": [[r[2]] if isinstance(r[2], str) else r[2] for r in rows],
        "confidence": [r[3] for r in rows],
    }, schema=pa.schema([("user_id", pa.string()), ("attribute", pa.string()),
                         ("label", pa.list_(pa.string())), ("confidence", pa.float64())]))


def test_macro_f1_counts_unknown_as_abstention():
    e = EVAL
    gold = gold_table([(e[0], "gender", "male"), (e[1], "gender", "male"), (e[2], "gender", "female"),
                       (e[3], "gender", "female"), (e[4], "gender", "female")])
    pred = pred_table([(e[0], "gender", "male", 0.9), (e[1], "gender", "unknown", 0.2),
                       (e[2], "gender", "female", 0.8), (e[3], "gender", "male", 0.6)])  # e[4]: no row
    row = score(pred, gold, TAX, name="x")
    g = row["per_attribute"]["gender"]
    # male: tp 1, fp 1, fn 1 -> 2/4; female: tp 1, fp 0, fn 2 -> 2/4; unknown and the missing row add no fp
    assert g["f1"] == pytest.approx(50.0)
    assert g["coverage"] == pytest.approx(3 / 5, abs=1e-4)
    # attributes without gold are undefined, not zero: the headline is gender's F1 alone
    assert row["per_attribute"]["tier"]["f1"] is None
    assert row["f1"] == pytest.approx(50.0)
    assert set(row) == {"name", "f1", "coverage", "ece", "per_attribute"}


def test_abstaining_beats_a_wrong_guess_on_precision():
    e = EVAL
    gold = gold_table([(e[i], "tier", "t1") for i in range(4)] + [(e[4], "tier", "t2")])
    guess = pred_table([(e[i], "tier", "t1", 0.9) for i in range(4)] + [(e[4], "tier", "t1", 0.5)])
    abstain = pred_table([(e[i], "tier", "t1", 0.9) for i in range(4)] + [(e[4], "tier", "unknown", 0.5)])
    # guess: t1 tp4 fp1 -> 8/9; t2 tp0 fn1 -> 0; macro 4/9.  abstain: t1 tp4 -> 1; t2 fn1 -> 0; macro 1/2
    assert score(guess, gold, TAX)["per_attribute"]["tier"]["f1"] == pytest.approx(100 * 4 / 9, abs=0.01)
    assert score(abstain, gold, TAX)["per_attribute"]["tier"]["f1"] == pytest.approx(50.0)


def test_multilabel_macro_f1_and_exact_set_correctness():
    e = EVAL
    gold = gold_table([(e[0], "interests", ["gaming", "music"]), (e[1], "interests", ["travel"]),
                       (e[2], "interests", ["music"])])
    pred = pred_table([(e[0], "interests", ["gaming"], 0.8), (e[1], "interests", ["travel"], 0.8),
                       (e[2], "interests", [], 0.3)])
    row = score(pred, gold, TAX)
    i = row["per_attribute"]["interests"]
    # gaming tp1 -> 1; music fn2 -> 0; travel tp1 -> 1: macro 2/3
    assert i["f1"] == pytest.approx(100 * 2 / 3, abs=0.01)
    assert i["coverage"] == pytest.approx(2 / 3, abs=1e-4)  # the empty set is an abstention
    # ECE over the two answered: both at .8 (bin 8), exact-set correct: e0 no, e1 yes -> |.5 - .8| = .3
    assert i["ece"] == pytest.approx(0.3)


def test_ece_on_a_constructed_case():
    conf = np.r_[np.full(10, 0.85), np.full(10, 0.35)]
    correct = np.r_[np.ones(8), np.zeros(2), np.ones(5), np.zeros(5)]
    # bin 8: |0.8 - 0.85| = .05, bin 3: |0.5 - 0.35| = .15 -> (10 * .05 + 10 * .15) / 20
    assert ece(conf, correct) == pytest.approx(0.10)
    rel = reliability(np.array([1.0, 0.0]), np.array([1.0, 0.0]))
    assert rel.count[9] == 1 and rel.count[0] == 1  # 1.0 falls in the last bin
    assert ece(np.array([]), np.array([])) is None


def test_only_eval_users_with_gold_are_scored_and_pooled_ece():
    e, t = EVAL, TRAIN
    gold = gold_table([(e[0], "gender", "male"), (e[1], "tier", "t2"), (t[0], "gender", "female")])
    pred = pred_table([(e[0], "gender", "male", 0.9), (e[1], "tier", "t1", 0.9),
                       (t[0], "gender", "male", 0.9),  # training user: ignored
                       (e[5], "gender", "male", 0.9)])  # no gold: ignored
    row = score(pred, gold, TAX, name="vote:weighted", valid_rate=0.875)
    assert row["per_attribute"]["gender"]["f1"] == pytest.approx(100.0)
    assert row["per_attribute"]["tier"]["f1"] == pytest.approx(0.0)  # t1 fp, t2 fn
    assert row["f1"] == pytest.approx(50.0)
    # pooled ECE: two answers at .9, one right -> |.5 - .9|
    assert row["ece"] == pytest.approx(0.4)
    assert row["valid_rate"] == pytest.approx(0.875)
    assert row["coverage"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="more than one row"):
        score(pred_table([(e[0], "gender", "male", 0.9), (e[0], "gender", "female", 0.9)]), gold, TAX)


def test_macro_f1_helper():
    p = np.array([[1, 0], [0, 1], [0, 0]], dtype=bool)
    g = np.array([[1, 0], [1, 0], [0, 0]], dtype=bool)
    # class 0: tp1 fn1 -> 2/3; class 1: fp1 -> 0
    assert macro_f1(p, g) == pytest.approx(1 / 3)
    assert macro_f1(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) is None
