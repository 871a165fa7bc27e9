"""`lexicon` backend: the CPU teachers of the embedded default.

A lexicon teacher reads only the sections named in its `sources` (never gold, never simulator internals),
scores evidence per taxonomy class from the lexicon (phrases by tier, profile fields, number rules), and
answers like an LLM would under the confidence-hint rubric: the best-scoring class, or `unknown` when the
evidence is too weak; level 5 for explicit self-disclosure, a declared field's own level (4: declared
fields are sometimes false), 4 for several consistent strong cues, 3 for one strong or several weak cues,
2 for a weak guess. The rationale cites the matched evidence ("watch: 'stroller'; searches: 'baby food'").

Teachers differ like different LLMs: by the sources they read and by optional per-teacher habits in the
lexicon file (`teachers:` threshold scale, level shift, class bias). Everything is vectorised over users
(Arrow word splitting, hash lookups, numpy scores); only the rationale text of answered attributes is Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import Settings, TeacherSpec
from conf_profile.errors import ConfProfileError
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.lexicon_file import (
    Lexicon,
    NumberRule,
    PatternRule,
    Scoring,
    lexicon_for,
    load_lexicon,
    resolve_lexicon,
)
from conf_profile.teachers.parse import level_to_confidence
from conf_profile.teachers.sections import section_columns, teacher_sources
from conf_profile.teachers.tokens import match_phrases, prepare, words

MAX_CITED = 3


class _Evidence:
    """Score matrices (users x taxonomy classes) plus a log of what was matched, for rationales."""

    def __init__(self, n: int, lex: Lexicon):
        self.n = n
        self.C = len(lex.columns)
        self.P = max(1, len(lex.phrases))
        self.scores = np.zeros(n * self.C, dtype=np.float32)
        self.explicit = np.zeros(n * self.C, dtype=np.float32)
        self.fixed = np.zeros(n * self.C, dtype=np.int8)  # a fixed level given by a field or pattern rule
        self.ev_key: list[np.ndarray] = []  # user * C + col
        self.ev_weight: list[np.ndarray] = []
        self.ev_text: list[np.ndarray] = []  # < 0: -(source * P + phrase) - 1; >= 0: index into self.texts
        self.texts: list[str] = []

    def add_scores(self, users: np.ndarray, cols: np.ndarray, weights: np.ndarray, text_ids: np.ndarray,
                   explicit: np.ndarray | None = None) -> None:
        key = users * self.C + cols
        self.scores += np.bincount(key, weights=weights, minlength=self.n * self.C).astype(np.float32)
        if explicit is not None and explicit.any():
            self.explicit += np.bincount(key, weights=explicit, minlength=self.n * self.C).astype(np.float32)
        self.ev_key.append(key)
        self.ev_weight.append(weights.astype(np.float64))
        self.ev_text.append(text_ids)

    def add_fixed(self, users: np.ndarray, cols: np.ndarray, level: int, text_ids: np.ndarray) -> None:
        key = users * self.C + cols
        np.maximum.at(self.fixed, key, np.int8(level))
        self.ev_key.append(key)
        self.ev_weight.append(np.full(len(key), 100.0 + level))  # cited first
        self.ev_text.append(text_ids)

    def text_ids(self, texts: list[str]) -> np.ndarray:
        start = len(self.texts)
        self.texts.extend(texts)
        return np.arange(start, start + len(texts), dtype=np.int64)


class LexiconTeacher:
    backend = "lexicon"

    def __init__(self, spec: TeacherSpec, taxonomy: Taxonomy, lexicon: str | Path | None = None,
                 known_sources: Sequence[str] | None = None, field_sections: Sequence[str] = ("profile",)):
        self.spec = spec
        # Sections laid out as "field: value" lines (format: profile), whatever their name: the lexicon's
        # `fields` rules read them.
        self.field_sections = tuple(field_sections)
        self.name = spec.name
        self.taxonomy = taxonomy
        self.lex = load_lexicon(lexicon or resolve_lexicon(spec.lexicon), taxonomy)
        self.sources = teacher_sources(spec.name, spec.sources, known_sources)
        self.tweak = self.lex.tweak(spec.name)
        if spec.samples != 1:
            raise ConfProfileError(f"Teacher {spec.name!r}: a lexicon teacher is deterministic, samples must be 1.",
                                   "Set samples: 1 (or drop it) for lexicon teachers.")

    @classmethod
    def from_settings(cls, spec: TeacherSpec, taxonomy: Taxonomy, settings: Settings | None) -> LexiconTeacher:
        """The registry's constructor: the lexicon is the teacher's own, else labels.lexicon, else the default."""
        known = list(settings.source.sections()) if settings is not None else None
        fields = ("profile",) if settings is None else tuple(
            t.section for t in settings.source.tables.values() if t.section and t.format == "profile")
        return cls(spec, taxonomy, lexicon_for(spec, settings), known, fields)

    def describe(self) -> dict:
        return {"backend": self.backend, "lexicon": str(self.lex.path), "sources": self.sources}

    def label(self, documents: Sequence[tuple[str, str]]) -> pa.Table:
        users = [u for u, _ in documents]
        docs = [d for _, d in documents]
        return self.label_table(pa.table({"user_id": pa.array(users, pa.string()),
                                          "document": pa.array(docs, pa.string())}))

    # ---- evidence -------------------------------------------------------------------------------------
    def evidence(self, documents: pa.Array | pa.ChunkedArray) -> _Evidence:
        lex = self.lex
        n = len(documents)
        ev = _Evidence(n, lex)
        if n == 0:
            return ev
        sections = section_columns(documents, self.sources)
        for source in self.sources:
            body = sections[source]
            values, parents = words(prepare(body, source))
            rows, pids = match_phrases(values, parents, lex.phrases_by_len, lex.first_words, lex.first_len)
            self._add_phrases(ev, rows, pids, self.sources.index(source))
            lower = pc.utf8_lower(body)
            if source in self.field_sections:
                self._add_fields(ev, body, source)
            for rule in lex.spec.patterns:
                if source in rule.sources:
                    self._add_pattern(ev, lower, rule, source)
            for nrule in lex.spec.numbers:
                if nrule.source == source:
                    self._add_numbers(ev, lower, nrule, source)
        return ev

    def _add_phrases(self, ev: _Evidence, rows: np.ndarray, pids: np.ndarray, src: int) -> None:
        if rows.size == 0:
            return
        lex = self.lex
        uniq, counts = np.unique(rows * ev.P + pids, return_counts=True)
        users, pid = uniq // ev.P, uniq % ev.P
        cnt = np.minimum(counts, lex.scoring.repeat_cap).astype(np.float64)
        lens = lex.entry_ptr[pid + 1] - lex.entry_ptr[pid]
        rep = np.repeat(np.arange(len(pid)), lens)
        offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        e = lex.entry_ptr[pid][rep] + offs
        ev.add_scores(users[rep], lex.entry_col[e], lex.entry_weight[e] * cnt[rep],
                      -(src * ev.P + pid[rep]) - 1, lex.entry_explicit[e] * cnt[rep])

    def _add_fields(self, ev: _Evidence, profile: pa.Array, source: str = "profile") -> None:
        lex = self.lex
        for rule in lex.spec.fields:
            found = pc.extract_regex(profile, rf"(?m)^{rule.field}:[ \t]*(?P<v>[^\n]*)")
            vals = pc.utf8_trim_whitespace(pc.utf8_lower(pc.replace_substring_regex(
                pc.struct_field(found, [0]), "[⟦⟧]", "")))
            cls = _classify(vals, rule.values, rule.contains, rule.bins)
            users = np.flatnonzero(cls >= 0)
            if users.size == 0:
                continue
            cols = np.array([lex.col_of[(rule.attribute, c)] for c in _class_names(rule)])[cls[users]]
            raw = pc.take(vals, pa.array(users)).to_pylist()
            tids = ev.text_ids([f"{source}: {rule.field}={v}" for v in raw])
            if rule.level is not None:
                ev.add_fixed(users, cols, rule.level, tids)
            else:
                ev.add_scores(users, cols, np.full(users.size, float(rule.weight)), tids)

    def _add_pattern(self, ev: _Evidence, lower: pa.Array, rule: PatternRule, source: str) -> None:
        lex = self.lex
        try:
            found = pc.extract_regex(lower, rule.regex)
        except pa.ArrowInvalid as exc:
            raise ConfProfileError(f"Lexicon pattern {rule.name!r} is not a valid RE2 regex with a named group: {exc}.",
                                   f"Fix it in {lex.path}.") from None
        if rule.cls is not None:
            valid = pc.is_valid(found).to_numpy(zero_copy_only=False)
            cls = np.where(valid, 0, -1)
            names = [rule.cls]
            vals = pc.cast(pc.is_valid(found), pa.string())
        else:
            vals = pc.struct_field(found, [0])
            cls = _classify(vals, rule.values, {}, rule.bins)
            names = _class_names(rule)
        users = np.flatnonzero(cls >= 0)
        if users.size == 0:
            return
        cols = np.array([lex.col_of[(rule.attribute, c)] for c in names])[cls[users]]
        shown = pc.take(vals, pa.array(users)).to_pylist()
        tids = ev.text_ids([f"{source}: {rule.name}" + ("" if rule.cls else f" {v}") for v in shown])
        if rule.level is not None:
            ev.add_fixed(users, cols, rule.level, tids)
        else:
            ev.add_scores(users, cols, np.full(users.size, float(rule.weight)), tids)

    def _add_numbers(self, ev: _Evidence, lower: pa.Array, rule: NumberRule, source: str) -> None:
        lex = self.lex
        lines = pc.split_pattern(lower, "\n")
        flat = pc.list_flatten(lines)
        parents = pc.list_parent_indices(lines).to_numpy()
        found = pc.extract_regex(flat, rule.regex)
        num = pc.cast(pc.struct_field(found, [0]), pa.float64(), safe=False)
        ok = pc.is_valid(num).to_numpy(zero_copy_only=False)
        if not ok.any():
            return
        x = num.to_numpy(zero_copy_only=False)[ok]
        u = parents[ok]
        count = np.bincount(u, minlength=ev.n).astype(np.float64)
        if rule.stat == "max":
            agg = np.full(ev.n, -np.inf)
            np.maximum.at(agg, u, x)
        else:
            agg = np.bincount(u, weights=x, minlength=ev.n)
            if rule.stat == "mean":
                agg = np.divide(agg, count, out=np.zeros_like(agg), where=count > 0)
            elif rule.stat == "count":
                agg = count
        users = np.flatnonzero(count > 0)
        cls = np.full(ev.n, -1)
        names = [b[2] for b in rule.bins]
        for i, (lo, hi, _) in enumerate(rule.bins):
            cls[users[(agg[users] >= lo) & (agg[users] < hi) & (cls[users] < 0)]] = i
        users = users[cls[users] >= 0]
        if users.size == 0:
            return
        cols = np.array([lex.col_of[(rule.attribute, c)] for c in names])[cls[users]]
        tids = ev.text_ids([f"{source}: {rule.stat} {rule.name} {agg[u]:.0f}" for u in users])
        ev.add_scores(users, cols, np.full(users.size, rule.weight), tids)

    # ---- decisions ------------------------------------------------------------------------------------
    def decide(self, ev: _Evidence) -> tuple[list[np.ndarray], np.ndarray]:
        """(chosen, levels): chosen[a] holds class indices of attribute a — shape (users,) for single
        attributes (-1 = unknown), (users, max_labels) for multi (-1 = padding); levels is
        (users, attributes), 0 = unknown."""
        lex, tw, sc = self.lex, self.tweak, self.lex.scoring
        n, C = ev.n, ev.C
        scores = ev.scores.reshape(n, C)
        explicit = ev.explicit.reshape(n, C)
        fixed = ev.fixed.reshape(n, C)
        t = {k: v * tw.threshold_scale for k, v in sc.level_scores.items()}
        attrs = self.taxonomy.attributes
        levels = np.zeros((n, len(attrs)), dtype=np.int8)
        chosen: list[np.ndarray] = []
        allowed = set(tw.attributes) if tw.attributes is not None else None
        for ai, attr in enumerate(attrs):
            cols = lex.attr_cols[attr.name]
            S = scores[:, cols].astype(np.float64)
            for cls, b in tw.class_bias.get(attr.name, {}).items():
                j = attr.classes.index(cls)
                S[:, j] = np.where(S[:, j] > 0, np.maximum(S[:, j] + b, 0.0), 0.0)
            if allowed is not None and attr.name not in allowed:
                chosen.append(np.full((n, attr.max_labels) if attr.is_multi else n, -1))
                continue
            if attr.is_multi:
                ch, lv = self._decide_multi(S, explicit[:, cols], attr.max_labels, t,
                                            sc.multi_min_score * tw.threshold_scale, sc.multi_rel_score)
            else:
                ch, lv = self._decide_single(S, explicit[:, cols], fixed[:, cols], t, sc)
            answered = lv > 0
            lv = np.where(answered, np.clip(lv + tw.level_shift, 2, 5), 0)
            levels[:, ai] = lv
            chosen.append(ch)
        return chosen, levels

    @staticmethod
    def _decide_single(S: np.ndarray, E: np.ndarray, F: np.ndarray, t: dict[int, float],
                       sc: Scoring) -> tuple[np.ndarray, np.ndarray]:
        """Per user: class index (-1 unknown) and level, from scores S, explicit counts E, fixed levels F."""
        n, k = S.shape
        order = np.argsort(-S, axis=1, kind="stable")
        best = order[:, 0]
        b = S[np.arange(n), best]
        second = S[np.arange(n), order[:, 1]] if k > 1 else np.zeros(n)
        total = S.sum(1)
        clear = (b - second) >= sc.margin
        share = np.divide(b, total, out=np.zeros(n), where=total > 0)
        lv = np.where(clear & (b >= t[4]) & (share >= sc.level4_share), 4,
                      np.where(clear & (b >= t[3]), 3, np.where(clear & (b >= t[2]), 2, 0)))
        label = np.where(lv > 0, best, -1)
        # Fixed levels (declared fields, stated numbers): trusted unless strong lexicon evidence disagrees.
        fmax = F.max(1)
        fcls = F.argmax(1)
        has_f = (fmax > 0) & ((F == fmax[:, None]).sum(1) == 1)
        disagree = (label >= 0) & (label != fcls) & (lv >= 3)
        flv = np.where(disagree, fmax - 1, fmax)
        use_f = has_f & (flv >= lv)
        label = np.where(use_f, fcls, label)
        lv = np.where(use_f, flv, lv)
        # Explicit self-disclosure of exactly one class: level 5.
        ex_one = (E > 0).sum(1) == 1
        ecls = E.argmax(1)
        label = np.where(ex_one, ecls, label)
        lv = np.where(ex_one, 5, lv)
        return label, lv.astype(np.int8)

    @staticmethod
    def _decide_multi(S: np.ndarray, E: np.ndarray, max_labels: int, t: dict[int, float],
                      min_score: float, rel_score: float) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-S, axis=1, kind="stable")[:, :max_labels]
        top = np.take_along_axis(S, order, axis=1)
        keep = (top >= min_score) & (top >= rel_score * top[:, :1])
        chosen = np.where(keep, order, -1)
        # level of the set = level of its weakest listed class
        cls_lv = np.where(top >= t[4], 4, np.where(top >= t[3], 3, 2))
        cls_lv = np.where(np.take_along_axis(E, order, axis=1) > 0, 5, cls_lv)
        cls_lv = np.where(keep, cls_lv, 9)
        lv = np.where(keep.any(1), cls_lv.min(1), 0)
        return chosen, lv.astype(np.int8)

    # ---- rows -----------------------------------------------------------------------------------------
    def label_table(self, documents: pa.Table) -> pa.Table:
        user_ids = documents["user_id"]
        docs = documents["document"]
        if isinstance(docs, pa.ChunkedArray):
            docs = docs.combine_chunks()
        ev = self.evidence(docs)
        chosen, levels = self.decide(ev)
        return self._rows(user_ids, ev, chosen, levels)

    def _rows(self, user_ids, ev: _Evidence, chosen: list[np.ndarray], levels: np.ndarray) -> pa.Table:
        tax = self.taxonomy
        attrs = tax.attributes
        n, A = levels.shape[0], len(attrs)
        counts = np.zeros((n, A), dtype=np.int64)
        for ai, attr in enumerate(attrs):
            counts[:, ai] = (chosen[ai] >= 0).sum(1) if attr.is_multi else 1
        flat_counts = counts.reshape(-1)
        offsets = np.zeros(n * A + 1, dtype=np.int64)
        np.cumsum(flat_counts, out=offsets[1:])
        values = np.empty(int(offsets[-1]), dtype=object)
        for ai, attr in enumerate(attrs):
            names = np.array(attr.classes + [tax.unknown], dtype=object)
            start = offsets[:-1].reshape(n, A)[:, ai]
            if attr.is_multi:
                for j in range(chosen[ai].shape[1]):
                    m = chosen[ai][:, j] >= 0
                    values[start[m] + j] = names[chosen[ai][m, j]]
            else:
                values[start] = names[chosen[ai]]  # -1 picks the last name: unknown
        label = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.string()))
        conf = level_to_confidence(np.where(levels > 0, levels, 1).astype(np.float64)).reshape(-1)
        rationale = self._rationales(ev, chosen, levels).reshape(-1)
        idx = pa.array(np.repeat(np.arange(n), A))
        uid = pc.take(user_ids, idx)
        if isinstance(uid, pa.ChunkedArray):
            uid = uid.combine_chunks()
        return pa.table({
            "user_id": uid,
            "teacher_id": pa.array(np.full(n * A, self.name, dtype=object), pa.string()),
            "sample_idx": pa.array(np.zeros(n * A, dtype=np.int32)),
            "attribute": pa.array(np.tile(np.array(tax.names, dtype=object), n), pa.string()),
            "label": label,
            "confidence": pa.array(conf),
            "rationale": pa.array(rationale, pa.string()),
            "raw_output": pa.nulls(n * A, pa.string()),
            "error": pa.nulls(n * A, pa.string()),
        }, schema=TEACHER_OUTPUT_SCHEMA)

    def _rationales(self, ev: _Evidence, chosen: list[np.ndarray], levels: np.ndarray) -> np.ndarray:
        """The evidence behind each answered (user, attribute): up to MAX_CITED distinct items, strongest
        first. Lookups are vectorised; only the string joining is per answer."""
        lex, C, P = self.lex, ev.C, ev.P
        n, A = levels.shape
        out = np.full(n * A, f"no clear evidence in {', '.join(self.sources)}", dtype=object)
        if not ev.ev_key:
            return out.reshape(n, A)
        key = np.concatenate(ev.ev_key)
        wt = np.concatenate(ev.ev_weight)
        order = np.lexsort((-wt, key))
        key = key[order]
        txt = np.concatenate(ev.ev_text)[order].tolist()
        req_row, req_key = [], []
        for ai, attr in enumerate(self.taxonomy.attributes):
            cols = lex.attr_cols[attr.name]
            users = np.flatnonzero(levels[:, ai] > 0)
            ch = chosen[ai][users]
            for j in range(ch.shape[1] if attr.is_multi else 1):
                c = ch[:, j] if attr.is_multi else ch
                ok = c >= 0
                req_row.append(users[ok] * A + ai)
                req_key.append(users[ok] * C + cols[c[ok]])
        rows = np.concatenate(req_row)
        keys = np.concatenate(req_key)
        grp = np.argsort(rows, kind="stable")  # requests of one answer together, labels in order
        rows, keys = rows[grp].tolist(), keys[grp]
        lo = np.searchsorted(key, keys, "left")
        hi = np.minimum(np.searchsorted(key, keys, "right"), lo + 2 * MAX_CITED).tolist()
        lo = lo.tolist()
        names: dict[int, str] = {}

        def text(t: int) -> str:
            got = names.get(t)
            if got is None:
                if t < 0:
                    src, ph = divmod(-t - 1, P)
                    got = f"{self.sources[src]}: '{lex.phrases[ph]}'"
                else:
                    got = ev.texts[t]
                names[t] = got
            return got

        cur, seen = -1, []
        for r, a, b in zip(rows, lo, hi, strict=True):
            if r != cur:
                if seen:
                    out[cur] = "; ".join(seen)
                cur, seen = r, []
            for t in txt[a:b]:
                if len(seen) >= MAX_CITED:
                    break
                s = text(t)
                if s not in seen:
                    seen.append(s)
        if seen:
            out[cur] = "; ".join(seen)
        return out.reshape(n, A)


def _class_names(rule) -> list[str]:
    """Classes a rule can give, in the order `_classify` indexes them."""
    contains = getattr(rule, "contains", {})
    return list(dict.fromkeys([*rule.values.values(), *contains, *(b[2] for b in rule.bins)]))


def _classify(vals: pa.Array, values: dict[str, str], contains: dict[str, list[str]],
              bins: list[tuple[float, float, str]]) -> np.ndarray:
    """Class index (into _class_names order) per row, -1 when the value gives no class."""
    names = list(dict.fromkeys([*values.values(), *contains, *(b[2] for b in bins)]))
    out = np.full(len(vals), -1)
    if values:
        keys = list(values)
        idx = pc.index_in(vals, value_set=pa.array(keys, pa.string()))
        ok = pc.is_valid(idx).to_numpy(zero_copy_only=False)
        mapped = np.array([names.index(values[k]) for k in keys])
        out[ok] = mapped[pc.drop_null(idx).to_numpy()]
    for cls, subs in contains.items():
        for sub in subs:
            m = pc.fill_null(pc.match_substring(vals, sub.lower()), False).to_numpy(zero_copy_only=False)
            out[m & (out < 0)] = names.index(cls)
    if bins:
        num = pc.cast(pc.extract_regex(vals, r"^(?P<v>-?[0-9]+(?:\.[0-9]+)?)"), pa.struct([("v", pa.string())]))
        x = pc.cast(pc.struct_field(num, [0]), pa.float64()).to_numpy(zero_copy_only=False)
        for lo, hi, cls in bins:
            out[(x >= lo) & (x < hi) & (out < 0)] = names.index(cls)  # NaN (no number) never matches
    return out
