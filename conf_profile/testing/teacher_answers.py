"""Synthetic teacher outputs with known truth, for tests and `bench/bench_voting.py`.

Why here and not in tests: the benchmark and the unit tests need the same generator, and it is small.
The generator mimics what real teachers get wrong: abstentions when evidence is missing, confidence that
rises with correctness but is over-stated, and a pull toward each attribute's majority class when guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from conf_profile.schema import GOLD_SCHEMA, TEACHER_OUTPUT_SCHEMA
from conf_profile.taxonomy import Attribute, Taxonomy


def teacher_table(rows: Iterable[Sequence]) -> pa.Table:
    """Rows (user_id, teacher_id, attribute, label, confidence[, error[, sample_idx[, rationale]]]) ->
    TEACHER_OUTPUT_SCHEMA table; a str label becomes a one-element list."""
    cols: dict[str, list] = {f.name: [] for f in TEACHER_OUTPUT_SCHEMA}
    for r in rows:
        uid, tid, attr, label, conf, *rest = r
        err = rest[0] if len(rest) > 0 else None
        cols["user_id"].append(uid)
        cols["teacher_id"].append(tid)
        cols["sample_idx"].append(rest[1] if len(rest) > 1 else 0)
        cols["attribute"].append(attr)
        cols["label"].append([label] if isinstance(label, str) else label)
        cols["confidence"].append(conf)
        cols["rationale"].append(rest[2] if len(rest) > 2 else "")
        cols["raw_output"].append("")
        cols["error"].append(err)
    return pa.table(cols, schema=TEACHER_OUTPUT_SCHEMA)


def gold_table(rows: Iterable[Sequence]) -> pa.Table:
    """Rows (user_id, attribute, label) -> GOLD_SCHEMA table."""
    cols: dict[str, list] = {"user_id": [], "attribute": [], "label": []}
    for uid, attr, label in rows:
        cols["user_id"].append(uid)
        cols["attribute"].append(attr)
        cols["label"].append([label] if isinstance(label, str) else list(label))
    return pa.table(cols, schema=GOLD_SCHEMA)


def bench_taxonomy(n_attrs: int = 8) -> Taxonomy:
    """Single-label attributes with 2..10 classes (what crowd-kit's classification aggregators handle)."""
    sizes = [2, 6, 10, 6, 4, 3, 4, 5]
    attrs = [Attribute(name=f"attr{i}", classes=[f"c{j}" for j in range(sizes[i % len(sizes)])])
             for i in range(n_attrs)]
    return Taxonomy(name="bench", attributes=attrs)


def simulate_answers(n_users: int, taxonomy: Taxonomy, n_teachers: int = 5, seed: int = 0,
                     accuracy: Sequence[float] = (0.85, 0.75, 0.65, 0.6, 0.55),
                     coverage: Sequence[float] = (0.35, 0.6, 0.5, 0.4, 0.9)) -> tuple[dict, dict]:
    """Numpy columns of teacher answers and of the truth, single-label attributes only.

    Returns (answers, truth): answers has user (int), teacher (int), attribute (int), label (int, -1 =
    unknown), confidence (float); truth maps attribute index -> (n_users,) true class. Class priors are
    skewed (Zipf-like); a wrong guess is the majority class half of the time; stated confidences are
    (level - 0.5) / 5 with levels higher when the answer is right, so confidence ranks answers but is
    not calibrated."""
    rng = np.random.default_rng(seed)
    attrs = taxonomy.single
    truth: dict[int, np.ndarray] = {}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "teacher", "attribute", "label", "confidence")}
    users = np.arange(n_users, dtype=np.int64)
    for ai, attr in enumerate(attrs):
        n_cls = len(attr.classes)
        prior = 1.0 / np.arange(1, n_cls + 1) ** 1.1
        prior /= prior.sum()
        y = rng.choice(n_cls, size=n_users, p=prior)
        truth[ai] = y
        for t in range(n_teachers):
            acc, cov = accuracy[t % len(accuracy)], coverage[t % len(coverage)]
            answered = rng.random(n_users) < cov
            right = rng.random(n_users) < acc
            wrong = np.where(rng.random(n_users) < 0.5, 0, rng.integers(0, n_cls, n_users))
            wrong = np.where(wrong == y, (y + 1 + rng.integers(0, max(n_cls - 1, 1), n_users)) % n_cls, wrong)
            lab = np.where(right, y, wrong)
            level = np.clip(np.where(right, rng.integers(2, 6, n_users), rng.integers(1, 5, n_users)), 1, 5)
            lab = np.where(answered, lab, -1)
            level = np.where(answered, level, 1)
            parts["user"].append(users)
            parts["teacher"].append(np.full(n_users, t, dtype=np.int64))
            parts["attribute"].append(np.full(n_users, ai, dtype=np.int64))
            parts["label"].append(lab.astype(np.int64))
            parts["confidence"].append((level - 0.5) / 5.0)
    answers = {k: np.concatenate(v) for k, v in parts.items()}
    return answers, truth


def answers_to_table(answers: dict, taxonomy: Taxonomy) -> pa.Table:
    """Numpy answers (see `simulate_answers`) -> TEACHER_OUTPUT_SCHEMA, built column-wise (no row loop)."""
    attrs = taxonomy.single
    names = np.array([f"u{i:07d}" for i in range(int(answers["user"].max()) + 1)], dtype=object)
    sizes = np.array([len(a.classes) for a in attrs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes + 1)])  # each attribute's classes, then its "unknown"
    vocab = [c for a in attrs for c in [*a.classes, taxonomy.unknown]]
    at = answers["attribute"]
    label_code = offsets[at] + np.where(answers["label"] < 0, sizes[at], answers["label"])
    n = len(answers["user"])
    label_values = pa.DictionaryArray.from_arrays(pa.array(label_code.astype(np.int32)), pa.array(vocab)).cast(pa.string())
    labels = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), label_values)
    user = pa.DictionaryArray.from_arrays(pa.array(answers["user"].astype(np.int32)), pa.array(names)).cast(pa.string())
    teacher = pa.DictionaryArray.from_arrays(pa.array(answers["teacher"].astype(np.int32)),
                                             pa.array([f"t{i}" for i in range(int(answers["teacher"].max()) + 1)]))
    attribute = pa.DictionaryArray.from_arrays(pa.array(answers["attribute"].astype(np.int32)),
                                               pa.array([a.name for a in attrs]))
    return pa.table({
        "user_id": user,
        "teacher_id": teacher.cast(pa.string()),
        "sample_idx": pa.array(np.zeros(n, dtype=np.int32)),
        "attribute": attribute.cast(pa.string()),
        "label": labels,
        "confidence": pa.array(answers["confidence"]),
        "rationale": pa.nulls(n, pa.string()),
        "raw_output": pa.nulls(n, pa.string()),
        "error": pa.nulls(n, pa.string()),
    }, schema=TEACHER_OUTPUT_SCHEMA)


def truth_to_gold(truth: dict, taxonomy: Taxonomy, n_users: int) -> pa.Table:
    attrs = taxonomy.single
    names = np.array([f"u{i:07d}" for i in range(n_users)], dtype=object)
    uid, attr, lab = [], [], []
    for ai, y in truth.items():
        uid.append(names)
        attr.append(np.full(n_users, attrs[ai].name, dtype=object))
        lab.append(np.array(attrs[ai].classes, dtype=object)[y])
    values = pa.array(np.concatenate(lab), pa.string())
    n = len(values)
    return pa.table({"user_id": pa.array(np.concatenate(uid), pa.string()),
                     "attribute": pa.array(np.concatenate(attr), pa.string()),
                     "label": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), values)},
                    schema=GOLD_SCHEMA)
