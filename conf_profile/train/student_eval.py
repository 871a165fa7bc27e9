"""Stage 2.3: score a student on the gold eval users with the shared parser and the shared metric.

Batched greedy generation (left padding, documents sorted by length so a batch pads little, max_new_tokens
sized to the longest possible answer), parsed by the parser that parses teachers, scored by the metric that
scores teachers and votes, written as a report-card row to runs/<key>/eval/<name>.json. Optionally also
avg@k / maj@k over k sampled answers (T=1), the numbers that tell sharpening apart from learning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from conf_profile import progress
from conf_profile.config import Settings
from conf_profile.evaluate.metrics import label_free, score, score_detailed
from conf_profile.intervals import Interval
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import Taxonomy, load_taxonomy
from conf_profile.teachers.parse import parse_answer
from conf_profile.train import runtime, student
from conf_profile.train.data import eval_reference, messages
from conf_profile.train.rewards import Rollout, parse_rollout, quasi_ground_truth

RETRY_MAX_SHARE = 0.25  # fill_invalid retries only when at most this share of the answers is incomplete
PRED_SCHEMA = pa.schema([("user_id", pa.string()), ("attribute", pa.string()),
                         ("label", pa.list_(pa.string())), ("confidence", pa.float64())])


def row_file(name: str) -> str:
    """`student:sft` -> `student-sft.json` (':' is not welcome in object keys and on some filesystems)."""
    return name.replace(":", "-").replace("/", "-") + ".json"


def answer_budget(tok, taxonomy: Taxonomy) -> int:
    """Tokens of the longest possible answer, plus slack: enough for any valid answer, no more."""
    longest = {}
    for a in taxonomy.attributes:
        if a.is_multi:
            label: Any = sorted(a.classes, key=len)[-a.max_labels:]
        else:
            label = max([*a.classes, taxonomy.unknown], key=len)
        longest[a.name] = {"label": label, "confidence": 0.5}
    return len(tok(json.dumps(longest), add_special_tokens=False)["input_ids"]) + 8


def generate(model, tok, documents: list[str], max_new_tokens: int, batch_size: int = 64,
             samples: int = 0, temperature: float = 1.0, desc: str = "generate") -> list[list[str]]:
    """Per document: [greedy answer] (samples=0) or `samples` sampled answers."""
    import torch

    model.eval()
    prompts = [tok.apply_chat_template(messages(d), tokenize=False, add_generation_prompt=True) for d in documents]
    order = np.argsort([len(p) for p in prompts], kind="stable")
    out: list[list[str]] = [[] for _ in prompts]
    side, tok.padding_side = tok.padding_side, "left"  # restored below: a trainer may share this tokenizer
    n = max(samples, 1)
    step = max(1, batch_size // n)
    bar = progress.bar(desc, total=len(prompts), unit="user")
    device = next(model.parameters()).device
    for start in range(0, len(order), step):
        idx = order[start:start + step]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        kwargs = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0,
                  "num_return_sequences": n} if samples else {"do_sample": False}
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id, **kwargs)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for j, i in enumerate(idx):
            out[i] = texts[j * n:(j + 1) * n]
        bar.update(len(idx))
    bar.close()
    tok.padding_side = side
    return out


def vote_answers(samples: list[list[Rollout]], taxonomy: Taxonomy) -> list[Rollout]:
    """Self-consistency: per user, the confidence-weighted vote over its k parsed samples (the GRPO
    quasi-ground truth without teachers). The answer's confidence is the mean stated confidence of the k
    samples, a sample that disagrees with the answer (or did not answer) counting 0 — the rule the report
    uses for sampled teachers. Why not the vote share: a sharp student's k samples mostly agree, so the share
    is ~1 whatever their stated confidence (measured: ECE 0.37 instead of 0.06). An attribute no sample
    answered stays unanswered (an abstention)."""
    out = []
    for per_user in samples:
        q = quasi_ground_truth(per_user, taxonomy)
        k = max(1, len(per_user))
        conf = {a: sum(r.confidences.get(a, 0.0) for r in per_user
                       if a in r.labels and _same(r.labels[a], v.label)) / k for a, v in q.items()}
        out.append(Rollout({a: v.label for a, v in q.items()}, conf, any(r.has_json for r in per_user)))
    return out


def _same(label, winner) -> bool:
    return sorted(label) == sorted(winner) if isinstance(winner, list) else label == winner


def fill_invalid(answers: list[Rollout], documents: list[str], taxonomy: Taxonomy,
                 sample: Callable[[list[str]], list[list[str]]]) -> tuple[list[Rollout], int]:
    """Users whose answer lacks attributes (a format slip: broken JSON, a class outside the taxonomy) get
    `sample(their documents)` answers, and the attributes they lack are filled from the confidence-weighted
    vote over those (what the answer had stays). Why: one slipped token of a small student otherwise costs
    the user's whole profile, and serving retries a bad answer rather than storing it. Only for slips: above
    RETRY_MAX_SHARE incomplete answers (an untrained model) nothing is retried. Returns the answers and how
    many users were retried."""
    names = [a.name for a in taxonomy.attributes]
    bad = [i for i, r in enumerate(answers) if any(n not in r.labels for n in names)]
    if not bad or len(bad) > RETRY_MAX_SHARE * len(answers):
        return answers, 0  # nothing to retry, or a model that has not learned the format: sampling will not fix it
    drawn = sample([documents[i] for i in bad])
    voted = vote_answers([[parse_rollout(t, taxonomy) for t in per if isinstance(t, str)] for per in drawn], taxonomy)
    out = list(answers)
    for i, v in zip(bad, voted, strict=True):
        have = answers[i]
        out[i] = Rollout({**v.labels, **have.labels}, {**v.confidences, **have.confidences},
                         have.has_json or v.has_json)
    return out, len(bad)


def complete_share(answers: list[Rollout], taxonomy: Taxonomy) -> float:
    """Share of users whose answer has every attribute (what `valid_rate` counts after fill_invalid)."""
    names = [a.name for a in taxonomy.attributes]
    return float(np.mean([all(n in r.labels for n in names) for r in answers])) if answers else 0.0


def answer(model, tok, documents: list[str], taxonomy: Taxonomy, max_new_tokens: int, batch_size: int = 64,
           answer_samples: int = 1, temperature: float = 0.7, desc: str = "answer") -> tuple[list[Rollout], list[str], float]:
    """The student's answers as parsed Rollouts: greedy (answer_samples=1) or the confidence-weighted vote
    over `answer_samples` sampled answers at `temperature`. Also returns one raw text per user (the first)
    and the valid rate (share of users whose (first) answer parsed whole). Inference can call this."""
    k = answer_samples if answer_samples > 1 else 0
    texts = generate(model, tok, documents, max_new_tokens, batch_size, samples=k, temperature=temperature, desc=desc)
    parsed = [[parse_answer(t, taxonomy, confidence="probability") for t in per] for per in texts]
    valid = float(np.mean([np.mean([p.ok for p in per]) for per in parsed])) if parsed else 0.0
    rollouts = [[Rollout(dict(p.labels), dict(p.confidences), p.error is None) for p in per] for per in parsed]
    answers = [r[0] for r in rollouts] if not k else vote_answers(rollouts, taxonomy)
    return answers, [t[0] for t in texts], valid


def predictions(user_ids: list[str], rollouts: list[Rollout], taxonomy: Taxonomy) -> pa.Table:
    """Long-form predictions; an attribute that failed to parse counts as an abstention (confidence 0)."""
    rows = []
    for uid, r in zip(user_ids, rollouts, strict=True):
        for a in taxonomy.attributes:
            if a.name in r.labels:
                lab = r.labels[a.name]
                rows.append((uid, a.name, list(lab) if a.is_multi else [lab], float(r.confidences.get(a.name, 0.0))))
            else:
                rows.append((uid, a.name, [] if a.is_multi else [taxonomy.unknown], 0.0))
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, PRED_SCHEMA, strict=True)],
                                schema=PRED_SCHEMA)


def sampled_metrics(user_ids: list[str], samples: list[list[str]], gold: pa.Table, taxonomy: Taxonomy,
                    split: Split | None = None) -> dict:
    """avg@k (mean F1 of single samples) and maj@k (confidence-weighted vote of the k samples per user)."""
    k = len(samples[0])
    parsed = [[parse_rollout(s, taxonomy) for s in per_user] for per_user in samples]
    singles = [score(predictions(user_ids, [p[j] for p in parsed], taxonomy), gold, taxonomy, users=user_ids,
                     split=split) for j in range(k)]
    voted = vote_answers(parsed, taxonomy)
    maj = score(predictions(user_ids, voted, taxonomy), gold, taxonomy, users=user_ids, split=split)
    eces = [s["ece"] for s in singles if s["ece"] is not None]
    return {"k": k, "avg_f1": round(float(np.mean([s["f1"] for s in singles])), 2),
            "avg_ece": round(float(np.mean(eces)), 4) if eces else None, "maj_f1": maj["f1"], "maj_ece": maj["ece"]}


def evaluate_model(lake: Lake, interval: Interval, settings: Settings, model: str, name: str,
                   samples: int | None = None, answer_samples: int | None = None) -> dict:
    """Score `model` (a stage name, path or MLflow URI; see student.resolve) on the eval users; write its
    report-card row to runs/<key>/eval/<name>.json and its reliability diagram to runs/<key>/plots/;
    return {interval, eval_users, rows: [row], plot, ...}. `answer_samples` (default
    train.eval.answer_samples) > 1 answers with the k-sample vote; `samples` adds avg@k / maj@k."""
    t0 = time.perf_counter()
    runtime.setup_torch(settings)
    taxonomy = load_taxonomy(settings.taxonomy_path)
    split = Split.of(settings)
    docs, gold, reference = eval_reference(lake, interval, settings.train.eval.users, split)
    user_ids = docs.column("user_id").to_pylist()
    path = _resolve(model, lake, interval, settings)
    mdl, tok = student.load(path)
    if runtime.has_gpu():
        mdl = mdl.to("cuda")
    budget = answer_budget(tok, taxonomy)
    es = settings.train.eval
    k_answer = es.answer_samples if answer_samples is None else answer_samples
    documents = docs.column("document").to_pylist()
    rollouts, texts, valid_first = answer(mdl, tok, documents, taxonomy, budget, es.batch_size, k_answer,
                                          es.answer_temperature, desc=f"evaluate {name}")
    retried = 0
    if es.retry_invalid and k_answer == 1:  # as the daily inference does (inference.retry_invalid)
        import torch

        torch.manual_seed(settings.train.seed)  # the same retries on every rerun: the same report card
        rollouts, retried = fill_invalid(rollouts, documents, taxonomy, lambda d: generate(
            mdl, tok, d, budget, es.batch_size, samples=es.retry_invalid, temperature=es.answer_temperature,
            desc=f"retry {name}"))
    valid_rate = complete_share(rollouts, taxonomy) if retried else valid_first
    gen_s = time.perf_counter() - t0
    # valid_rate: valid JSON, every attribute present and in taxonomy (mean over the k samples when voting)
    pred = predictions(user_ids, rollouts, taxonomy)
    row, rels = score_detailed(pred, gold, taxonomy, name=name, valid_rate=valid_rate, users=user_ids, split=split)
    row["reference"] = reference  # gold or quasi-labels (gold.read_reference); the report card checks it
    row["valid_rate_first"], row["retried_users"] = round(valid_first, 4), retried  # before fill_invalid
    row["label_free"] = label_free(pred, taxonomy, user_ids)
    if k_answer > 1:
        row["answer"] = {"samples": k_answer, "temperature": es.answer_temperature}
    plot = reliability_plot(lake, interval, name, rels) if es.plots else None
    k = settings.train.eval.samples if samples is None else samples
    if k:
        sampled = generate(mdl, tok, docs.column("document").to_pylist(), budget, settings.train.eval.batch_size,
                           samples=k, desc=f"sample {name} x{k}")
        row["sampling"] = sampled_metrics(user_ids, sampled, gold, taxonomy, split)
    rel = Lake.run_dir(interval, "eval", row_file(name))
    lake.write_json(rel, row)
    runtime.log_metrics({k: row[k] for k in ("f1", "ece", "coverage", "valid_rate") if row.get(k) is not None},
                        prefix=f"{name.replace(':', '.')}.")
    return {"interval": str(interval), "eval_users": len(user_ids), "rows": [row], "model": model,
            "path": lake.uri_of(rel), "plot": plot, "max_new_tokens": budget, "generate_s": round(gen_s, 1),
            "seconds": round(time.perf_counter() - t0, 1), "example_output": texts[0][:400] if texts else ""}


def plot_file(name: str) -> str:
    """runs/<key>/plots/ file of a row's reliability diagram (the report card's naming)."""
    from conf_profile.evaluate.plots import slug

    return f"reliability_{slug(name)}.png"


def reliability_plot(lake: Lake, interval: Interval, name: str, rels: dict) -> str:
    """Write the row's reliability diagram (overall + per attribute) to runs/<key>/plots/; return its URI."""
    from conf_profile.evaluate.plots import reliability_png

    rel = Lake.run_dir(interval, "plots", plot_file(name))
    lake.write_bytes(rel, reliability_png(rels, name))
    return lake.uri_of(rel)


def _resolve(model: str, lake: Lake, interval: Interval, settings: Settings):
    if model == "base" and settings.train.student not in student.PRESETS and not lake.is_committed(
            student.model_dir(interval, "base")):
        model = settings.train.student  # a pretrained checkpoint is its own base
    return student.resolve(model, settings, lake, interval, cache=runtime.work_dir(settings, interval, f"eval-{model}"
                           if model in student.MODEL_STAGES else "eval-model"))
