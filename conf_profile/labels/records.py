"""Decoded outputs: label lists and JSON strings built column-wise with pyarrow (no per-user Python loop).

Why strings are assembled with `binary_join_element_wise`: the distillation set and RL prompts need one
JSON document per user; building them from pre-encoded pieces (class names are JSON-encoded once, confidences
come from a table of 11 rounded strings) is exact and scales to millions of users.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.labels.ballots import Ballots, Layout

CONF_1DP = pa.array([f"{i / 10:.1f}" for i in range(11)])


def vocab(layout: Layout) -> list[str]:
    """Class names of every column, then "unknown" (index n_cols)."""
    return [c for i in range(layout.n_attrs) for c in layout.classes(i)] + [layout.taxonomy.unknown]


def _list_array(n_pos: int, pos: np.ndarray, vidx: np.ndarray, values: pa.Array) -> pa.ListArray:
    """Lists of `values[vidx]` grouped by position (positions 0..n_pos-1; order kept within a position)."""
    order = np.argsort(pos, kind="stable")
    counts = np.bincount(pos, minlength=n_pos)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    items = values.take(pa.array(vidx[order].astype(np.int64)))
    return pa.ListArray.from_arrays(pa.array(offsets), items)


def label_positions(layout: Layout, label: np.ndarray, attr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, vocab index) pairs for labels `label` (n,) of attributes `attr` (n,)."""
    n = len(label)
    multi = layout.is_multi[attr]
    pos_s = np.flatnonzero(~multi)
    lab_s = label[pos_s]
    v_s = np.where(lab_s >= 0, layout.offsets[attr[pos_s]] + lab_s, layout.n_cols)
    pos_m = np.flatnonzero(multi)
    if len(pos_m):
        width = int(np.diff(layout.offsets)[layout.multi_idx].max())
        bits = (label[pos_m][:, None] >> np.arange(width, dtype=np.int64)[None, :]) & 1
        r, k = np.nonzero(bits)
        pm, vm = pos_m[r], layout.offsets[attr[pos_m[r]]] + k
    else:
        pm, vm = np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos = np.concatenate([pos_s, pm]).astype(np.int64)
    v = np.concatenate([v_s, vm]).astype(np.int64)
    assert n == 0 or pos.max(initial=-1) < n
    return pos, v


def label_lists(layout: Layout, label: np.ndarray, attr: np.ndarray) -> pa.ListArray:
    """list<string> labels: [class] or ["unknown"] for single-label attributes, the set for multi-label."""
    pos, v = label_positions(layout, label, attr)
    return _list_array(len(label), pos, v, pa.array(vocab(layout)))


def label_json(layout: Layout, label: np.ndarray, attr: np.ndarray) -> pa.Array:
    """JSON text of each label: "male" / "unknown" for single-label attributes, ["gaming", "music"] for multi."""
    voc_json = pa.array([json.dumps(c) for c in vocab(layout)])
    pos, v = label_positions(layout, label, attr)
    lists = _list_array(len(label), pos, v, voc_json)
    joined = pc.binary_join(lists, ", ")
    multi = pa.array(layout.is_multi[attr])
    wrapped = pc.binary_join_element_wise("[", joined, "]", "")
    return pc.if_else(multi, wrapped, joined)


def conf_1dp(conf: np.ndarray) -> pa.Array:
    """Confidences rounded to one decimal, as exact JSON text ("0.0" .. "1.0")."""
    return CONF_1DP.take(pa.array(np.clip(np.rint(np.asarray(conf) * 10), 0, 10).astype(np.int64)))


def json_escape(text: pa.Array) -> pa.Array:
    """JSON string literal of each value (quotes included); nulls become ""."""
    t = pc.fill_null(pc.cast(text, pa.string()), "")
    for a, b in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        t = pc.replace_substring(t, a, b)
    t = pc.replace_substring_regex(t, r"[\x00-\x1f]", " ")
    return pc.binary_join_element_wise('"', t, '"', "")


def profile_json(layout: Layout, order: list[str], label: np.ndarray, conf: np.ndarray,
                 rationale: pa.Array | None = None) -> pa.Array:
    """One JSON object per user: {"<attr>": {"label": ..., "confidence": 0.x[, "rationale": "..."]}, ...}
    with attributes in `order` (taxonomy order). `label`, `conf` are (U, A) in layout order; `rationale`
    (U * len(order),) in user-major, `order` order."""
    n_users = label.shape[0]
    cols = np.array([layout.attributes.index(a) for a in order], dtype=np.int64)
    attr = np.tile(cols, n_users)
    lab = label[:, cols].reshape(-1)
    cf = conf[:, cols].reshape(-1)
    keys = pa.array([json.dumps(a) for a in order]).take(pa.array(np.tile(np.arange(len(order)), n_users)))
    parts = [keys, ': {"label": ', label_json(layout, lab, attr), ', "confidence": ', conf_1dp(cf)]
    if rationale is not None:
        parts += [', "rationale": ', json_escape(rationale)]
    pairs = pc.binary_join_element_wise(*parts, "}", "")
    return _join_users(pairs, n_users, len(order))


def _join_users(pairs: pa.Array, n_users: int, width: int) -> pa.Array:
    offsets = pa.array(np.arange(0, (n_users + 1) * width, width, dtype=np.int32)[: n_users + 1])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, pairs), ", ")
    return pc.binary_join_element_wise("{", joined, "}", "")


def teacher_answers_json(b: Ballots, order: list[str]) -> pa.Array:
    """Per user: {"<attr>": [[label, confidence, weight], ...], ...}, every attribute present (maybe []),
    unknown answers included (label "unknown"); `weight` is the answer's vote weight (teacher weight /
    its samples) so a later stage can add these answers to its own vote."""
    lay = b.layout
    n_users, width = b.n_users, len(order)
    rank = np.full(lay.n_attrs, -1, dtype=np.int64)
    rank[[lay.attributes.index(a) for a in order]] = np.arange(width)
    code = np.where(b.abstain, -1, np.where(lay.is_multi[b.a], b.mask, b.col - lay.offsets[b.a]))
    lab = label_json(lay, code, b.a)
    lab = pc.if_else(pa.array(b.abstain), json.dumps(lay.taxonomy.unknown), lab)
    answer = pc.binary_join_element_wise("[", lab, ", ", pc.cast(pa.array(b.conf), pa.string()), ", ",
                                         pc.cast(pa.array(b.weight), pa.string()), "]", "")
    slot = b.u * width + rank[b.a]
    ok = rank[b.a] >= 0
    lists = _list_array(n_users * width, slot[ok], np.flatnonzero(ok), answer)
    inner = pc.binary_join_element_wise("[", pc.binary_join(lists, ", "), "]", "")
    keys = pa.array([json.dumps(a) for a in order]).take(pa.array(np.tile(np.arange(width), n_users)))
    return _join_users(pc.binary_join_element_wise(keys, ": ", inner, ""), n_users, width)


def merged_rationale(b: Ballots, label: np.ndarray, order: list[str]) -> pa.Array:
    """Per (user, attribute in `order`): the rationale of the strongest answer (largest w*c) that agrees
    with the final label; "" when none agrees. Short by design: the student imitates one line of evidence."""
    lay = b.layout
    width = len(order)
    rank = np.full(lay.n_attrs, -1, dtype=np.int64)
    rank[[lay.attributes.index(a) for a in order]] = np.arange(width)
    code = np.where(lay.is_multi[b.a], b.mask, b.col - lay.offsets[b.a])
    agree = ~b.abstain & (code == label[b.u, b.a]) & (rank[b.a] >= 0)
    slot = b.u * width + rank[b.a]
    strength = b.weight * b.conf
    idx = np.flatnonzero(agree)
    best = np.full(b.n_users * width, -1, dtype=np.int64)
    if len(idx):
        order_idx = idx[np.lexsort((-strength[idx], slot[idx]))]
        first = np.concatenate([[True], slot[order_idx][1:] != slot[order_idx][:-1]])
        best[slot[order_idx[first]]] = order_idx[first]
    texts = b.rationale if b.rationale is not None else pa.nulls(len(b.u), pa.string())
    taken = texts.take(pa.array(np.where(best >= 0, best, 0))) if len(texts) else pa.nulls(len(best), pa.string())
    return pc.if_else(pa.array(best >= 0), pc.fill_null(taken, ""), "")
