"""Teacher answers encoded as integer arrays, so every vote is a handful of numpy reductions.

Why a global column layout: each (attribute, class) pair gets one column of a flat `n_users x n_cols`
matrix (single-label attributes first, then multi-label ones), so one `np.bincount` scores every user,
attribute and class at once, and per-attribute reductions are `ufunc.reduceat` over column segments.
Multi-label answers are also kept as bitmasks (bit k = class k of the attribute) so "same set?" is one
integer comparison.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import TeacherSpec
from conf_profile.taxonomy import Taxonomy

_SEP = "\x1f"
MAX_MULTI_CLASSES = 62  # bitmasks are int64


@dataclass
class Layout:
    """Column layout of a taxonomy: single-label attributes first, then multi-label ones."""

    taxonomy: Taxonomy
    attributes: list[str] = field(init=False)  # vote order (singles, then multis)
    is_multi: np.ndarray = field(init=False)  # (A,) bool
    offsets: np.ndarray = field(init=False)  # (A + 1,) first column of each attribute
    col_attr: np.ndarray = field(init=False)  # (n_cols,) attribute index of each column
    col_class: np.ndarray = field(init=False)  # (n_cols,) class index within its attribute
    n_single_cols: int = field(init=False)

    def __post_init__(self) -> None:
        attrs = self.taxonomy.single + self.taxonomy.multi
        for a in self.taxonomy.multi:
            if len(a.classes) > MAX_MULTI_CLASSES:
                raise ValueError(f"multi-label attribute {a.name} has more than {MAX_MULTI_CLASSES} classes")
        self.attributes = [a.name for a in attrs]
        self.is_multi = np.array([a.is_multi for a in attrs], dtype=bool)
        sizes = np.array([len(a.classes) for a in attrs], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.col_attr = np.repeat(np.arange(len(attrs)), sizes)
        self.col_class = np.arange(int(sizes.sum())) - self.offsets[self.col_attr]
        self.n_single_cols = int(sizes[~self.is_multi].sum())

    @property
    def n_attrs(self) -> int:
        return len(self.attributes)

    @property
    def n_cols(self) -> int:
        return int(self.offsets[-1])

    @property
    def single_idx(self) -> np.ndarray:
        return np.flatnonzero(~self.is_multi)

    @property
    def multi_idx(self) -> np.ndarray:
        return np.flatnonzero(self.is_multi)

    def classes(self, attr_idx: int) -> list[str]:
        return self.taxonomy.attribute(self.attributes[attr_idx]).classes

    def keys(self) -> list[str]:
        """`attribute<US>class` for every column, in column order (lookup keys for encoding)."""
        return [f"{a}{_SEP}{c}" for i, a in enumerate(self.attributes) for c in self.classes(i)]


@dataclass
class Ballots:
    """Valid teacher answers, one entry per (user, teacher sample, attribute) row."""

    layout: Layout
    users: pa.Array  # (n_users,) string, sorted; row index u refers to it
    teachers: list[str]  # teacher ids; `teacher` indexes it
    u: np.ndarray  # (n,) int64 user index
    a: np.ndarray  # (n,) int16 attribute index (layout order)
    col: np.ndarray  # (n,) int32 global column of a single-label answer; -1 = unknown or multi row
    mask: np.ndarray  # (n,) int64 bitmask of a multi-label answer (0 for single rows)
    abstain: np.ndarray  # (n,) bool: "unknown" (single) or ["unknown"] (multi)
    conf: np.ndarray  # (n,) float64 in [0, 1]
    weight: np.ndarray  # (n,) float64 teacher weight / samples of that teacher
    share: np.ndarray  # (n,) float32 1 / samples of that teacher (plain majority weight)
    teacher: np.ndarray  # (n,) int16
    sample: np.ndarray  # (n,) int32
    pair_row: np.ndarray  # flattened multi-label labels: answer row ...
    pair_col: np.ndarray  # ... and the global column of that label
    rationale: pa.Array | None = None  # (n,) string, kept only when asked for
    excluded_error: dict[str, int] = field(default_factory=dict)  # rows with `error` set, by teacher
    excluded_invalid: dict[str, int] = field(default_factory=dict)  # malformed rows, by teacher
    excluded_unknown_user: dict[str, int] = field(default_factory=dict)  # users outside the index (no document)
    cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # index arrays, weight-independent

    @property
    def n_users(self) -> int:
        return len(self.users)

    def index(self, name: str) -> np.ndarray:
        """Flat bin indices reused by every vote (so LOTO's many votes do not rebuild them):
        "cell": column x user of single-label answers that voted (abstainers, multi rows -> the spare last
        bin; column-major, so each class's scores are one contiguous run of users); "group": user x
        attribute of every answer; "pair_cell": column x user of multi-label labels."""
        if name not in self.cache:
            n_users, n_cols, n_attrs = self.n_users, self.layout.n_cols, self.layout.n_attrs
            if name == "cell":  # built in place: one int64 array, no temporaries of the answers' length
                cell = np.multiply(self.col, n_users, dtype=np.int64)
                cell += self.u
                cell[self.abstain | (self.col < 0)] = n_users * n_cols
                self.cache[name] = cell
            elif name == "group":
                group = np.multiply(self.u, n_attrs, dtype=np.int64)
                group += self.a
                self.cache[name] = group
            elif name == "pair_cell":
                self.cache[name] = self.pair_col.astype(np.int64) * n_users + self.u[self.pair_row]
            else:
                raise KeyError(name)
        return self.cache[name]

    @property
    def is_multi_row(self) -> np.ndarray:
        return self.layout.is_multi[self.a]


def _dict_codes(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dictionary-encode once (one hash pass), so every later lookup works on the few distinct values
    instead of every row. Returns (row codes, -1 for null; the distinct values)."""
    arr = _one_array(arr)
    enc = pc.dictionary_encode(arr if arr.type == pa.string() else pc.cast(arr, pa.string()))
    idx = enc.indices if enc.indices.null_count == 0 else pc.fill_null(enc.indices, -1)
    return idx.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), enc.dictionary


def _one_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array; without a copy when there is one chunk (`combine_chunks` copies even then)."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _lookup(values: pa.Array, targets: pa.Array) -> np.ndarray:
    """Position of each of `values` in `targets`, -1 when absent."""
    idx = pc.index_in(values, value_set=targets).to_numpy(zero_copy_only=False)
    return np.nan_to_num(idx.astype(float), nan=-1).astype(np.int32)


def encode(table: pa.Table, taxonomy: Taxonomy, teachers: list[TeacherSpec] | None = None,
           users: pa.Array | list[str] | None = None, keep_rationale: bool = False) -> Ballots:
    """Encode TEACHER_OUTPUT_SCHEMA rows. Rows with `error` set are excluded and counted by teacher; rows
    that are malformed anyway (attribute or label outside the taxonomy, several labels for a single-label
    attribute, missing confidence) are excluded and counted separately. `users` fixes the user index
    (e.g. every user with a document); by default it is the sorted set of users in `table`."""
    layout = Layout(taxonomy)
    table = table.combine_chunks()
    n = table.num_rows
    # The user-id hash pass is the largest single cost; it runs on a second thread (Arrow releases the GIL)
    # while this one encodes attributes, labels and teachers.
    pool = ThreadPoolExecutor(max_workers=1)
    user_job = pool.submit(_dict_codes, table["user_id"])
    pool.shutdown(wait=False)
    t_code, t_dict = _dict_codes(table["teacher_id"])
    t_names_all = t_dict.to_pylist()
    error = table["error"]
    err_rows = (np.zeros(n, dtype=bool) if error.null_count == n
                else pc.is_valid(error).to_numpy(zero_copy_only=False))

    # ---- labels -> global columns: lookups on the distinct (attribute, label) values only ----
    a_code, a_dict = _dict_codes(table["attribute"])
    a_map = np.append(_lookup(a_dict, pa.array(layout.attributes)), -1).astype(np.int16)  # -1 (null) -> -1
    if (a_map[:-1] >= 0).all() and table["attribute"].null_count == 0:  # every attribute known: no clamp
        a_idx, a_ok = a_map[a_code], np.ones(n, dtype=bool)
    else:
        a_idx = a_map[a_code]
        a_ok = a_idx >= 0
        a_idx = np.maximum(a_idx, 0)
    labels = _one_array(table["label"])
    if labels.null_count == 0:  # lengths straight from the offsets
        lens = np.diff(labels.offsets.to_numpy(zero_copy_only=False))
    else:
        lens = pc.fill_null(pc.list_value_length(labels), 0).to_numpy(zero_copy_only=False)
    # One label per row (single-label answers, the usual case): flat label i is row i, so the parent
    # gathers below are skipped (`at` is the identity).
    flat = pc.list_flatten(labels)
    ident = len(flat) == n and labels.null_count == 0 and bool((lens == 1).all())
    parent = None if ident else pc.list_parent_indices(labels).to_numpy(zero_copy_only=False)

    def at(x: np.ndarray) -> np.ndarray:
        return x if parent is None else x[parent]

    l_code, l_dict = _dict_codes(flat)
    l_names = l_dict.to_pylist()
    unknown_code = l_names.index(taxonomy.unknown) if taxonomy.unknown in l_names else -2
    key_col = {k: i for i, k in enumerate(layout.keys())}
    lut = np.array([[key_col.get(f"{a}{_SEP}{v}", -1) for v in l_names] + [-1] for a in layout.attributes],
                   dtype=np.int32).reshape(layout.n_attrs, len(l_names) + 1)
    col_flat = lut[at(a_idx), l_code]  # l_code -1 (null) hits the trailing -1 column
    is_unknown_flat = l_code == unknown_code
    bad_flat = (col_flat < 0) & ~is_unknown_flat

    if ident:
        bad, n_unknown = bad_flat.copy(), is_unknown_flat
    else:
        bad = np.zeros(n, dtype=bool)
        bad[parent[bad_flat]] = True
        n_unknown = np.bincount(parent[is_unknown_flat], minlength=n)
    multi = layout.is_multi[a_idx] & a_ok
    conf_col = table["confidence"]
    if conf_col.type == pa.float64() and conf_col.null_count == 0:
        conf = conf_col.to_numpy()  # zero-copy; the clip below makes the array Ballots keeps
    else:
        conf = pc.fill_null(pc.cast(conf_col, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    bad |= ~a_ok | np.isnan(conf) | (t_code < 0)
    bad |= ~multi & (lens != 1)  # single-label: exactly one label (a class or "unknown")
    bad |= multi & (n_unknown > 0) & (lens != 1)  # multi: ["unknown"] alone, or classes only
    invalid = bad & ~err_rows
    keep = ~bad & ~err_rows

    abstain = n_unknown > 0
    single_flat = ~at(multi) & ~is_unknown_flat
    if ident:
        col = np.where(single_flat, col_flat, -1).astype(np.int32, copy=False)
    else:
        col = np.full(n, -1, dtype=np.int32)
        col[parent[single_flat]] = col_flat[single_flat]
    mask = np.zeros(n, dtype=np.int64)
    multi_flat = at(multi) & ~is_unknown_flat & ~bad_flat
    bits = np.left_shift(np.int64(1), layout.col_class[col_flat[multi_flat]].astype(np.int64))
    pr, pcl = np.flatnonzero(multi_flat) if parent is None else parent[multi_flat], col_flat[multi_flat]
    np.bitwise_or.at(mask, pr, bits)
    # One pair per distinct (row, label): duplicated labels in a list count once.
    if len(pr):
        uniq = np.unique(pr.astype(np.int64) * layout.n_cols + pcl)
        pr, pcl = uniq // layout.n_cols, uniq % layout.n_cols
    parent = None
    del l_code, col_flat, is_unknown_flat, bad_flat, single_flat, multi_flat, bits, n_unknown

    # ---- users, teachers, weights ----
    u_code, u_dict = user_job.result()
    if users is None:
        seen = np.zeros(len(u_dict) + 1, dtype=bool)
        seen[u_code[keep]] = True
        if seen[:-1].all():  # every distinct user kept an answer (the usual case): rank the dictionary
            order = pc.sort_indices(u_dict).to_numpy(zero_copy_only=False)
            users_arr = u_dict.take(pa.array(order))
            rank = np.full(len(u_dict) + 1, -1, dtype=np.int64)
            rank[order] = np.arange(len(order))
            u_idx = rank[u_code]
        else:
            users_arr = u_dict.filter(pa.array(seen[:-1])) if len(u_dict) else pa.array([], pa.string())
            users_arr = users_arr.take(pc.sort_indices(users_arr))
            u_idx = np.append(_lookup(u_dict, users_arr), -1).astype(np.int64)[u_code]
    else:
        users_arr = pa.array(users, pa.string()) if not isinstance(users, pa.Array) else pc.cast(users, pa.string())
        users_arr = pc.unique(users_arr)
        users_arr = users_arr.take(pc.sort_indices(users_arr))
        u_idx = np.append(_lookup(u_dict, users_arr), -1).astype(np.int64)[u_code]
    del u_code
    outside = keep & (u_idx < 0)  # answers for users outside the given index are not voted on
    keep &= ~outside

    all_kept = bool(keep.all())
    idx = None if all_kept else np.flatnonzero(keep)

    def kept(x: np.ndarray, dtype: type) -> np.ndarray:
        """`x[keep]` without the gather when every row is kept (the usual case)."""
        return x.astype(dtype, copy=False) if all_kept else x[idx].astype(dtype, copy=False)

    spec_order = [t.name for t in teachers or []]
    t_kept = kept(t_code, np.int32)  # -1 (null teacher) only on rows that are not kept
    if all_kept:  # the dictionary holds exactly the teachers that occur (a null teacher is never kept)
        kept_t = np.arange(len(t_names_all))
    else:
        kept_t = np.flatnonzero(np.bincount(t_kept, minlength=len(t_names_all))) if len(t_kept) else t_kept
    seen_t = sorted({t_names_all[i] for i in kept_t} - set(spec_order))
    teacher_names = spec_order + seen_t
    t_map = np.maximum(np.append(_lookup(t_dict, pa.array(teacher_names, pa.string())), -1), 0).astype(np.int16)
    t_idx = t_map[t_code]  # clamped on the small lookup table, not on every row
    sample = pc.fill_null(pc.cast(table["sample_idx"], pa.int32()), 0).to_numpy(zero_copy_only=False)
    # Samples of one teacher share its vote: a teacher sampled 5 times must not outvote 4 others.
    n_samples = np.ones(len(teacher_names), dtype=np.float64)
    sample_k = np.array(kept(sample, np.int32))
    span = int(sample_k.max(initial=0)) + 1
    if len(sample_k) and span > 1:  # one sample each (span 1): every teacher's count is 1
        used = np.bincount(kept(t_idx, np.int64) * span + sample_k, minlength=len(teacher_names) * span) > 0
        n_samples = np.maximum(used.reshape(len(teacher_names), span).sum(axis=1), 1)
    spec_w = {t.name: float(t.weight) for t in teachers or []}
    tw = np.array([spec_w.get(t, 1.0) for t in teacher_names], dtype=np.float64)

    pair_keep = keep[pr]
    remap = np.cumsum(keep, dtype=np.int64) - 1 if len(pr) else np.zeros(0, np.int64)
    t_k = kept(t_idx, np.int16)
    per_weight, per_share = tw / n_samples, (1.0 / n_samples).astype(np.float32)  # per teacher: one gather each
    return Ballots(
        layout=layout, users=users_arr, teachers=teacher_names,
        # narrow dtypes where values are small: 40M answers must fit in memory with room for the votes
        u=kept(u_idx, np.int64), a=kept(a_idx, np.int16), col=kept(col, np.int32), mask=kept(mask, np.int64),
        abstain=kept(abstain, bool), conf=np.clip(kept(conf, np.float64), 0.0, 1.0), weight=per_weight[t_k],
        share=per_share[t_k], teacher=t_k, sample=sample_k,
        pair_row=remap[pr[pair_keep]], pair_col=pcl[pair_keep],
        rationale=_kept_rationale(table, idx) if keep_rationale else None,
        excluded_error=_counts(t_names_all, t_code, err_rows),
        excluded_invalid=_counts(t_names_all, t_code, invalid),
        excluded_unknown_user=_counts(t_names_all, t_code, outside),
    )


def _kept_rationale(table: pa.Table, idx: np.ndarray | None) -> pa.Array:
    rationale = pc.cast(table["rationale"], pa.string()).combine_chunks()
    return rationale if idx is None else rationale.take(pa.array(idx))


def _counts(names: list[str], codes: np.ndarray, rows: np.ndarray) -> dict[str, int]:
    """Rows per teacher (null teacher ids count under "null")."""
    c = np.bincount(codes[rows] + 1, minlength=len(names) + 1)
    out = {names[i - 1]: int(c[i]) for i in np.flatnonzero(c) if i > 0}
    if c[0]:
        out["null"] = int(c[0])
    return out


def encode_labels(table: pa.Table, layout: Layout, users: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A (user_id, attribute, label) table (e.g. GOLD_SCHEMA) in the vote's coding: (U, A) codes (class
    index or -1 for single-label attributes, bitmask for multi-label ones) and a (U, A) "has a label" mask.
    Rows for other users, other attributes or labels outside the taxonomy are ignored."""
    n_users, n_attrs = len(users), layout.n_attrs
    code = np.where(layout.is_multi[None, :], 0, -1) * np.ones((n_users, 1), dtype=np.int64)
    present = np.zeros((n_users, n_attrs), dtype=bool)
    if table.num_rows == 0:
        return code, present
    table = table.combine_chunks()
    u = pc.index_in(pc.cast(table["user_id"], pa.string()), value_set=users).to_numpy(zero_copy_only=False)
    attr = pc.cast(table["attribute"], pa.string())
    a = pc.index_in(attr, value_set=pa.array(layout.attributes)).to_numpy(zero_copy_only=False)
    ok = ~np.isnan(u.astype(float)) & ~np.isnan(a.astype(float))
    u = np.nan_to_num(u.astype(float), nan=0).astype(np.int64)
    a = np.nan_to_num(a.astype(float), nan=0).astype(np.int64)
    labels = table["label"].combine_chunks()
    parent = pc.list_parent_indices(labels).to_numpy(zero_copy_only=False).astype(np.int64)
    key = pc.binary_join_element_wise(attr.take(pa.array(parent)), pc.list_flatten(labels), _SEP)
    col = pc.index_in(key, value_set=pa.array(layout.keys())).to_numpy(zero_copy_only=False).astype(float)
    good = ~np.isnan(col) & ok[parent]
    col = np.nan_to_num(col, nan=0).astype(np.int64)
    present[u[ok], a[ok]] = True
    pu, pa_, pcol = u[parent[good]], a[parent[good]], col[good]
    multi = layout.is_multi[pa_]
    code[pu[~multi], pa_[~multi]] = layout.col_class[pcol[~multi]]
    np.bitwise_or.at(code, (pu[multi], pa_[multi]), np.left_shift(np.int64(1), layout.col_class[pcol[multi]]))
    return code, present
