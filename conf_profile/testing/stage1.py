"""A small synthetic Stage-1 output (documents, gold, distill, rl_prompts) for Stage-2 tests and benches.

Why: Stage 2 must be buildable and testable on its own, before (and independently of) the simulator and the
teacher/vote stages. The generator is taxonomy-driven: every (attribute, class) owns a pool of cue words that
appear in some document sources; cues are sparse and sometimes misleading; latent attributes are correlated
(age -> life stage -> occupation -> education -> consumption). Several "teachers" each read only some sources
and know only part of the cue vocabulary, and their confidence-weighted vote becomes the distillation target,
so the student learns from noisy quasi-labels exactly as in the real pipeline. It writes the same lake layout
and schemas as the real stages; the real simulator replaces it for anything beyond Stage-2 development.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout, RunLayout
from conf_profile.schema import DOCUMENT_SCHEMA, GOLD_SCHEMA
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import Taxonomy

SOURCES = ["profile", "watch", "searches", "comments", "purchases"]
# Which sources carry cues for which attribute (a cue's share per source).
_SOURCE_OF = {
    "gender": {"profile": 0.5, "watch": 0.3, "comments": 0.2},
    "age_group": {"profile": 0.5, "watch": 0.2, "searches": 0.3},
    "occupation": {"searches": 0.5, "profile": 0.2, "comments": 0.3},
    "life_stage": {"watch": 0.4, "searches": 0.3, "purchases": 0.3},
    "education": {"searches": 0.6, "profile": 0.4},
    "consumption_level": {"purchases": 0.6, "profile": 0.4},
    "city_tier": {"profile": 0.8, "searches": 0.2},
    "interests": {"watch": 0.6, "searches": 0.3, "purchases": 0.1},
}
_SYL = ["ka", "lo", "mi", "ren", "ta", "vo", "shi", "dar", "el", "un", "po", "ri", "zen", "mo", "qua", "bel", "tor",
        "ni", "sa", "gu", "fen", "lu", "ho", "ber", "cal", "do", "ve", "xi", "ya", "ob"]
_FILLER = ["video", "today", "best", "new", "guide", "tips", "live", "part", "review", "vlog", "my", "the", "how",
           "to", "week", "fun", "easy", "top", "10", "story", "day", "with", "and", "first", "real"]


@dataclass
class SyntheticSummary:
    users: int
    train_users: int
    eval_users: int
    interval: str


def _words(rng: np.random.Generator, n: int, used: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        w = "".join(rng.choice(_SYL, size=rng.integers(2, 4)))
        if w not in used:
            used.add(w)
            out.append(w)
    return out


def _latent(rng: np.random.Generator, tax: Taxonomy) -> dict[str, str | list[str]]:
    """Correlated latent profile: each single attribute's class index leans on the previous one's."""
    prof: dict[str, str | list[str]] = {}
    prev = None
    for attr in tax.single:
        k = len(attr.classes)
        p = np.linspace(1.6, 0.6, k)  # class imbalance: earlier classes more common
        if prev is not None:  # correlation with the previous attribute's relative position
            centre = prev * (k - 1)
            p = p * np.exp(-0.6 * np.abs(np.arange(k) - centre))
        idx = int(rng.choice(k, p=p / p.sum()))
        prof[attr.name] = attr.classes[idx]
        prev = idx / max(k - 1, 1)
    for attr in tax.multi:
        k = len(attr.classes)
        p = np.linspace(1.5, 0.5, k)
        n = int(rng.integers(1, attr.max_labels + 1))
        prof[attr.name] = sorted(rng.choice(attr.classes, size=n, replace=False, p=p / p.sum()).tolist())
    return prof


def build_synthetic(lake: Lake, interval: Interval, tax: Taxonomy, users: int = 2000, seed: int = 7,
                    n_teachers: int = 4, split: Split | None = None) -> SyntheticSummary:
    """Write documents, gold, labels/distill and labels/rl_prompts for `interval` into `lake` (evaluation users
    by `split`, the default split unless given: pass `Split.of(settings)` when the settings change it)."""
    rng = np.random.default_rng(seed)
    used: set[str] = set()
    cues = {a.name: {c: _words(rng, 8, used) for c in a.classes} for a in tax.attributes}
    filler = _FILLER + _words(rng, 60, used)
    # Teachers: each reads some sources and knows ~60% of every cue pool.
    teachers = []
    for t in range(n_teachers):
        srcs = ["profile", "watch", "searches", "comments", "purchases"] if t == n_teachers - 1 else \
            list(rng.choice(SOURCES, size=2, replace=False))
        known = {w: (a, c) for a, pools in cues.items() for c, ws in pools.items() for w in ws if rng.random() < 0.6}
        teachers.append((srcs, known))

    rows_doc, rows_gold, truth = [], [], {}
    for u in range(users):
        uid = f"u{u:06d}"
        prof = _latent(rng, tax)
        truth[uid] = prof
        sparse = rng.random() < 0.15
        items: dict[str, list[str]] = defaultdict(list)
        for attr in tax.attributes:
            labels = prof[attr.name] if attr.is_multi else [prof[attr.name]]
            for lab in labels:
                n_cues = rng.poisson(0.8 if sparse else 2.2)
                for _ in range(n_cues):
                    srcs, w = zip(*_SOURCE_OF.get(attr.name, {"watch": 1.0}).items(), strict=True)
                    src = str(rng.choice(srcs, p=np.array(w) / sum(w)))
                    true_cls = lab if rng.random() > 0.12 else str(rng.choice(attr.classes))  # misleading cue
                    items[src].append(str(rng.choice(cues[attr.name][true_cls])))
        sections = []
        for src in SOURCES:
            words = items.get(src, [])
            if not words:
                continue
            lines = []
            for w in words:
                title = " ".join([*rng.choice(filler, size=rng.integers(1, 4)), w, *rng.choice(filler, size=rng.integers(0, 3))])
                if src == "profile":
                    lines.append(f"bio: ⟦{title}⟧")
                elif src == "watch":
                    lines.append(f"- [{rng.choice(filler[:8])}] ⟦{title}⟧ {int(rng.integers(5, 100))}%")
                elif src == "purchases":
                    lines.append(f"- {w} {float(rng.uniform(3, 300)):.2f}")
                else:
                    lines.append(f"- ⟦{title}⟧")
            sections.append(f"## {src}\n" + "\n".join(lines))
        doc = "\n".join(sections)[:1200]
        rows_doc.append((uid, doc, sum(len(v) for v in items.values()), len(doc)))
        for attr in tax.attributes:
            lab = prof[attr.name]
            rows_gold.append((uid, attr.name, lab if isinstance(lab, list) else [lab]))

    uids = [r[0] for r in rows_doc]
    docs = pa.Table.from_pylist([dict(zip(DOCUMENT_SCHEMA.names, r, strict=True)) for r in rows_doc], DOCUMENT_SCHEMA)
    gold = pa.Table.from_pylist([dict(zip(GOLD_SCHEMA.names, r, strict=True)) for r in rows_gold], GOLD_SCHEMA)
    lay = RunLayout(interval)
    lake.write_committed_table(lay.documents, docs)
    lake.write_committed_table(LakeLayout.gold_dir, gold)

    # Teachers answer from the document text they read; the vote is the quasi-label.
    distill, rl = [], []
    is_eval = (split or Split()).mask(uids)
    for (uid, doc, *_), ev in zip(rows_doc, is_eval, strict=True):
        blocks = dict(part.partition("\n")[::2] for part in ("\n" + doc).split("\n## ")[1:])
        answers: dict[str, list[list]] = {a.name: [] for a in tax.attributes}
        for srcs, known in teachers:
            text = " ".join(blocks.get(s, "") for s in srcs)
            hits: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for tok in text.replace("⟦", " ").replace("⟧", " ").split():
                if tok in known:
                    a, c = known[tok]
                    hits[a][c] += 1
            for attr in tax.attributes:
                h = hits.get(attr.name, {})
                if attr.is_multi:
                    lab = sorted(h, key=lambda c: -h[c])[: attr.max_labels]
                    conf = min(0.9, 0.3 + 0.15 * sum(h.values())) if lab else 0.1
                    answers[attr.name].append([lab, round(conf, 2), 1.0])
                elif h:
                    best = max(h, key=lambda c: (h[c], c))
                    conf = min(0.9, 0.1 + 0.2 * h[best] - 0.1 * (sum(h.values()) - h[best]))
                    answers[attr.name].append([best, round(max(conf, 0.1), 2), 1.0])
                else:
                    answers[attr.name].append([tax.unknown, 0.1, 1.0])
        profile, confs = vote(answers, tax)
        if ev:
            continue
        target = json.dumps({a: {"label": profile[a], "confidence": round(confs[a], 1)} for a in tax.names})
        mean_c = float(np.mean(list(confs.values())))
        distill.append({"user_id": uid, "document": doc, "target": target, "mean_confidence": mean_c})
        stage1 = json.dumps({a: {"label": profile[a], "confidence": round(confs[a], 2)} for a in tax.names})
        rl.append({"user_id": uid, "document": doc, "stage1": stage1, "stage1_confidence": mean_c,
                   "teacher_answers": json.dumps(answers)})
    lake.write_committed_table(lay.distill, pa.Table.from_pylist(distill),
                               meta={"synthetic": True})
    lake.write_committed_table(lay.rl_prompts, pa.Table.from_pylist(rl),
                               meta={"synthetic": True})
    from conf_profile.testing import commit_stages

    commit_stages(lake, interval, "documents", "aggregate")
    return SyntheticSummary(users, len(distill), int(is_eval.sum()), str(interval))


def vote(answers: dict[str, list[list]], tax: Taxonomy) -> tuple[dict, dict[str, float]]:
    """Confidence-weighted vote (method.md, Stage 1.3) over [label, confidence, weight] answers."""
    profile: dict = {}
    confs: dict[str, float] = {}
    for attr in tax.attributes:
        ans = answers[attr.name]
        total = sum(c * w for _, c, w in ans) or 1.0
        if attr.is_multi:
            score: dict[str, float] = defaultdict(float)
            for lab, c, w in ans:
                for x in lab:
                    score[x] += c * w
            keep = sorted((x for x, s in score.items() if s / total >= 0.5), key=lambda x: -score[x])
            profile[attr.name] = sorted(keep[: attr.max_labels])
            confs[attr.name] = min(score[x] / total for x in keep) if keep else 0.1
        else:
            score = defaultdict(float)
            for lab, c, w in ans:
                score[lab] += c * w
            known = {k: v for k, v in score.items() if k != tax.unknown}
            if not known:
                profile[attr.name], confs[attr.name] = tax.unknown, 0.1
                continue
            best = max(known, key=lambda k: (known[k], k))
            profile[attr.name] = best
            confs[attr.name] = known[best] / total
    return profile, confs
