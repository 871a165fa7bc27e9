"""The fast paths of encoding and voting (one-chunk arrays, ranked user dictionary, unit-weight majority
tallies, the tie rule per attribute) against the general paths and a plain-Python reference vote, on a
random table with ties, unknowns, error rows and malformed rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conf_profile.config.teachers import teacher_spec
from conf_profile.labels.ballots import encode
from conf_profile.labels.vote import vote
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing.teacher_answers import teacher_table

TAX = load_taxonomy()
FIELDS = ["u", "a", "col", "mask", "abstain", "conf", "weight", "share", "teacher", "sample", "pair_row", "pair_col"]


def _random_rows(seed: int, n_users: int = 150, dirty: bool = True) -> list[tuple]:
    """Coarse confidences (0.1 .. 0.9) make score ties common; ~25 % unknown; optional error and bad rows."""
    rng = np.random.default_rng(seed)
    rows = []
    singles = [a for a in TAX.single][:4]
    for u in range(n_users):
        for t in "abcde":
            for attr in singles:
                if rng.random() < 0.1:
                    continue
                label = TAX.unknown if rng.random() < 0.25 else str(rng.choice(attr.classes[:3]))
                rows.append((f"user{u:04d}", t, attr.name, label, float(rng.choice([0.1, 0.3, 0.5, 0.7, 0.9]))))
    if dirty:
        rows.append(("user0001", "a", "no_such_attribute", "x", 0.5))  # malformed: excluded, counted
        rows.append(("user0002", "b", singles[0].name, "not_a_class", 0.5))
    return rows


def _table(rows: list[tuple], errors: bool) -> pa.Table:
    t = teacher_table(rows)
    if errors:  # every 50th row failed at the teacher: excluded, counted
        err = pa.array([("timeout" if i % 50 == 0 else None) for i in range(t.num_rows)], pa.string())
        t = t.set_column(t.schema.get_field_index("error"), "error", err)
    return t


def _same_ballots(x, y) -> None:
    assert x.users.to_pylist() == y.users.to_pylist()
    assert x.teachers == y.teachers
    for f in FIELDS:
        assert np.array_equal(getattr(x, f), getattr(y, f)), f
        assert getattr(x, f).dtype == getattr(y, f).dtype, f
    assert (x.excluded_error, x.excluded_invalid) == (y.excluded_error, y.excluded_invalid)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("errors", [False, True])
def test_encode_fast_paths_equal_general_paths(seed: int, errors: bool) -> None:
    table = _table(_random_rows(seed), errors)
    fast = encode(table, TAX)
    # several chunks (combine path) and an explicit user index (lookup path instead of the ranked dictionary)
    chunked = pa.concat_tables([table.slice(0, table.num_rows // 3), table.slice(table.num_rows // 3)])
    _same_ballots(fast, encode(chunked, TAX))
    _same_ballots(fast, encode(table, TAX, users=sorted(set(fast.users.to_pylist()))))
    assert sum(fast.excluded_invalid.values()) == 2
    assert sum(fast.excluded_error.values()) == (len(range(0, table.num_rows, 50)) if errors else 0)


def _reference(b, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The documented vote in plain Python: score = sum w*c (majority: 1 per teacher); near-ties within 1e-7
    go to the higher max confidence (majority: unknown), still tied -> unknown; confidence = score / all w*c."""
    lay = b.layout
    label = np.full((b.n_users, lay.n_attrs), -1)
    conf = np.zeros((b.n_users, lay.n_attrs))
    cells: dict[tuple[int, int], list[int]] = {}
    for i in range(len(b.u)):
        cells.setdefault((int(b.u[i]), int(b.a[i])), []).append(i)
    for (u, a), idx in cells.items():
        scores: dict[int, float] = {}
        maxc: dict[int, float] = {}
        denom = 0.0
        for i in idx:
            w = float(b.share[i]) if method == "majority" else float(b.weight[i] * b.conf[i])
            denom += w
            if not b.abstain[i]:
                k = int(b.col[i] - lay.offsets[a])
                scores[k] = scores.get(k, 0.0) + w
                maxc[k] = max(maxc.get(k, -1.0), float(b.conf[i]))
        if not scores or max(scores.values()) <= 0:
            continue
        best = max(scores.values())
        near = [k for k, s in scores.items() if s >= best - 1e-7]
        if len(near) > 1 and method == "weighted":
            key = {k: round(scores[k] / 1e-7) * 2048 + round(maxc[k] * 1000) for k in near}
            top = max(key.values())
            near = [k for k in near if key[k] == top]
        if len(near) == 1:
            label[u, a] = near[0]
            conf[u, a] = scores[near[0]] / denom
    return label, conf


@pytest.mark.parametrize("seed", [0, 3])
def test_votes_equal_reference_and_general_path(seed: int) -> None:
    b = encode(_table(_random_rows(seed), errors=True), TAX)
    for method in ("majority", "weighted"):
        fast = vote(b, method)
        ref_label, ref_conf = _reference(b, method)
        cols = b.layout.single_idx
        assert np.array_equal(fast.label[:, cols], ref_label[:, cols]), method
        assert np.allclose(fast.confidence[:, cols], ref_conf[:, cols], atol=1e-12), method
        assert (ref_label[:, cols] == -1).any() and (ref_label[:, cols] >= 0).any()
        general = vote(b, method, rows=np.ones(len(b.u), dtype=bool))  # bypasses the unit-weight tallies
        for f in ("label", "confidence", "n_voters", "denom", "scores"):
            assert np.array_equal(getattr(fast, f), getattr(general, f)), (method, f)


def test_majority_with_several_samples_uses_the_general_tally() -> None:
    rows = [("u1", "a", "gender", "male", 0.9), ("u1", "b", "gender", "female", 0.9)]
    t = teacher_table(rows + [("u1", "b", "gender", "female", 0.9)])
    t = t.set_column(t.schema.get_field_index("sample_idx"), "sample_idx", pa.array([0, 0, 1], pa.int32()))
    b = encode(t, TAX, teachers=[teacher_spec(name="a"), teacher_spec(name="b")])
    r = vote(b, "majority")
    a = b.layout.attributes.index("gender")
    # b's two samples share one vote: 1 vs 0.5 + 0.5 -> a tie -> unknown
    assert r.label[0, a] == -1
    assert r.n_voters[0, a] == 3
