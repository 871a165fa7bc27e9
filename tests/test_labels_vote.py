"""Encoding and voting on hand-made teacher answers; every expectation is computed by hand in a comment."""

from __future__ import annotations

import numpy as np
import pytest

from conf_profile.config.teachers import teacher_spec
from conf_profile.labels.ballots import encode
from conf_profile.labels.vote import vote
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing.teacher_answers import teacher_table

TAX = load_taxonomy()


def _at(b, result, user: str, attr: str):
    u = b.users.to_pylist().index(user)
    a = b.layout.attributes.index(attr)
    return result.label[u, a], result.confidence[u, a], result.n_voters[u, a]


def _cls(attr: str, name: str) -> int:
    return TAX.attribute(attr).classes.index(name)


def test_weighted_vote_argmax_and_confidence():
    b = encode(teacher_table([
        ("u1", "a", "gender", "male", 0.9),
        ("u1", "b", "gender", "female", 0.3),
        ("u1", "c", "gender", "female", 0.3),
    ]), TAX)
    lab, conf, n = _at(b, vote(b), "u1", "gender")
    # male 0.9 beats female 0.3 + 0.3 = 0.6; confidence 0.9 / 1.5
    assert lab == _cls("gender", "male")
    assert conf == pytest.approx(0.6)
    assert n == 3
    # plain majority: female 2 votes vs male 1
    lab_m, conf_m, _ = _at(b, vote(b, "majority"), "u1", "gender")
    assert lab_m == _cls("gender", "female")
    assert conf_m == pytest.approx(2 / 3)


def test_teacher_weights_change_the_winner():
    rows = [("u1", "a", "gender", "male", 0.5), ("u1", "b", "gender", "female", 0.7)]
    assert _at(b := encode(teacher_table(rows), TAX), vote(b), "u1", "gender")[0] == _cls("gender", "female")
    # weight 2 for teacher a: male 1.0 vs female 0.7 -> male, confidence 1.0 / 1.7
    b = encode(teacher_table(rows), TAX, teachers=[teacher_spec(name="a", weight=2.0), teacher_spec(name="b")])
    lab, conf, _ = _at(b, vote(b), "u1", "gender")
    assert lab == _cls("gender", "male")
    assert conf == pytest.approx(1.0 / 1.7)


def test_ties_go_to_higher_max_confidence_then_unknown():
    b = encode(teacher_table([
        # u1: male 0.5 + 0.3 = 0.8 vs female 0.8 alone: tie on score, female has the higher max confidence
        ("u1", "a", "gender", "male", 0.5), ("u1", "b", "gender", "male", 0.3), ("u1", "c", "gender", "female", 0.8),
        # u2: 0.5 vs 0.5, same max confidence -> unknown
        ("u2", "a", "gender", "male", 0.5), ("u2", "b", "gender", "female", 0.5),
        # u3: float noise (0.1 + 0.2 vs 0.3) must still count as a tie: max conf 0.3 > 0.2 -> female
        ("u3", "a", "gender", "male", 0.1), ("u3", "b", "gender", "male", 0.2), ("u3", "c", "gender", "female", 0.3),
    ]), TAX)
    r = vote(b)
    assert _at(b, r, "u1", "gender")[0] == _cls("gender", "female")
    assert _at(b, r, "u1", "gender")[1] == pytest.approx(0.8 / 1.6)
    lab, conf, _ = _at(b, r, "u2", "gender")
    assert lab == -1 and conf == 0.0
    assert _at(b, r, "u3", "gender")[0] == _cls("gender", "female")
    # majority ignores confidences: 2 vs 1 for u1 -> male; 1 vs 1 for u2 -> unknown
    m = vote(b, "majority")
    assert _at(b, m, "u1", "gender")[0] == _cls("gender", "male")
    assert _at(b, m, "u2", "gender")[0] == -1


def test_unknown_answers_and_all_unknown():
    b = encode(teacher_table([
        ("u1", "a", "age_group", "unknown", 0.1), ("u1", "b", "age_group", "unknown", 0.3),
        ("u2", "a", "age_group", "unknown", 0.5), ("u2", "b", "age_group", "25_34", 0.5),
    ]), TAX)
    r = vote(b)
    assert _at(b, r, "u1", "age_group") == (-1, 0.0, 0)
    lab, conf, n = _at(b, r, "u2", "age_group")
    # the abstainer counts in the denominator (unknown_weight=1): 0.5 / (0.5 + 0.5)
    assert lab == _cls("age_group", "25_34") and conf == pytest.approx(0.5) and n == 1
    r0 = vote(b, unknown_weight=0.0)
    assert _at(b, r0, "u2", "age_group")[1] == pytest.approx(1.0)
    # attributes nobody answered are unknown too
    assert _at(b, r, "u1", "gender") == (-1, 0.0, 0)


def test_multilabel_threshold_and_set_confidence():
    rows = [
        ("u1", "a", "interests", ["gaming", "music"], 0.9),
        ("u1", "b", "interests", ["gaming"], 0.5),
        ("u1", "c", "interests", ["music", "travel"], 0.4),
        ("u1", "d", "interests", ["unknown"], 0.2),
    ]
    b = encode(teacher_table(rows), TAX)
    classes = TAX.attribute("interests").classes
    bit = {c: 1 << i for i, c in enumerate(classes)}
    # denominator 0.9 + 0.5 + 0.4 + 0.2 (abstainer) = 2.0; gaming 1.4/2 = 0.7, music 1.3/2 = 0.65, travel 0.2
    lab, conf, n = _at(b, vote(b, threshold=0.5), "u1", "interests")
    assert lab == bit["gaming"] | bit["music"]
    assert conf == pytest.approx(0.9 / 2.0)  # only teacher a said exactly {gaming, music}
    assert n == 3
    lab, _, _ = _at(b, vote(b, threshold=0.68), "u1", "interests")
    assert lab == bit["gaming"]  # music 0.65 < 0.68
    lab, _, _ = _at(b, vote(b, threshold=0.2), "u1", "interests")
    assert lab == bit["gaming"] | bit["music"] | bit["travel"]  # travel 0.2 >= 0.2 (boundary included)
    # majority: shares over 4 answers: gaming 2/4, music 2/4, travel 1/4
    lab, conf, _ = _at(b, vote(b, "majority", threshold=0.5), "u1", "interests")
    assert lab == bit["gaming"] | bit["music"] and conf == pytest.approx(1 / 4)


def test_error_and_malformed_rows_are_excluded_and_counted():
    b = encode(teacher_table([
        ("u1", "a", "gender", "male", 0.9, "timeout"),  # error row: excluded, counted for a
        ("u1", "a", "gender", "female", 0.3, "bad json"),
        ("u1", "b", "gender", "female", 0.3),
        ("u1", "b", "gender", "robot", 0.9),  # outside the taxonomy
        ("u1", "b", "shoe_size", "42", 0.9),  # unknown attribute
        ("u1", "c", "gender", ["male", "female"], 0.9),  # two labels for a single-label attribute
        ("u1", "c", "interests", ["gaming", "unknown"], 0.9),  # unknown mixed with classes
        ("u1", "c", "age_group", "25_34", None),  # no confidence
    ]), TAX)
    assert b.excluded_error == {"a": 2}
    assert b.excluded_invalid == {"b": 2, "c": 3}
    assert len(b.u) == 1
    assert _at(b, vote(b), "u1", "gender")[0] == _cls("gender", "female")


def test_samples_of_one_teacher_share_its_weight():
    b = encode(teacher_table([
        ("u1", "a", "gender", "male", 0.5, None, 0), ("u1", "a", "gender", "male", 0.5, None, 1),
        ("u1", "a", "gender", "male", 0.5, None, 2),
        ("u1", "b", "gender", "female", 0.6, None, 0),
    ]), TAX)
    # a's three samples weigh 1/3 each: male 0.5 vs female 0.6 -> female
    lab, conf, n = _at(b, vote(b), "u1", "gender")
    assert lab == _cls("gender", "female")
    assert conf == pytest.approx(0.6 / 1.1)
    assert n == 4


def test_rows_mask_and_user_index():
    t = teacher_table([("u1", "a", "gender", "male", 0.9), ("u1", "b", "gender", "female", 0.5),
                       ("zz", "a", "gender", "male", 0.9)])
    b = encode(t, TAX, users=["u1", "u0"])
    assert b.users.to_pylist() == ["u0", "u1"]
    assert b.excluded_unknown_user == {"a": 1}
    without_a = vote(b, rows=b.teacher != b.teachers.index("a"))
    assert _at(b, without_a, "u1", "gender")[0] == _cls("gender", "female")
    assert _at(b, without_a, "u0", "gender")[0] == -1


def test_vote_is_vectorised_over_many_users():
    rng = np.random.default_rng(0)
    n = 2000
    rows = [(f"u{i}", t, "consumption_level", ["low", "medium", "high"][rng.integers(3)], 0.5) for i in range(n)
            for t in ("a", "b", "c")]
    b = encode(teacher_table(rows), TAX)
    r = vote(b, "majority")
    a = b.layout.attributes.index("consumption_level")
    # check against a direct count for every user: the unique 2- or 3-vote winner, else unknown
    labels = np.array([r[3] for r in rows]).reshape(n, 3)
    order = np.argsort([f"u{i}" for i in range(n)])
    classes = TAX.attribute("consumption_level").classes
    for k, i in enumerate(order[:300]):
        vals, counts = np.unique(labels[i], return_counts=True)
        expect = classes.index(vals[counts.argmax()]) if counts.max() >= 2 else -1
        assert r.label[k, a] == expect


def test_zero_confidence_answers_carry_no_weight():
    b = encode(teacher_table([("u1", "a", "gender", "male", 0.0), ("u2", "a", "gender", "male", 0.0),
                              ("u2", "b", "gender", "female", 0.1)]), TAX)
    r = vote(b)
    assert _at(b, r, "u1", "gender")[0] == -1  # a class needs a positive score
    assert _at(b, r, "u2", "gender")[0] == _cls("gender", "female")
    assert _at(b, vote(b, "majority"), "u1", "gender")[0] == _cls("gender", "male")  # majority counts it
