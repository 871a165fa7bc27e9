"""Profile users with the student: the one function the inference stage (and each inference shard) calls.

Why here and not in the stage: whatever backend generates (inference.backend), the answers are parsed by the
parser that parses teachers and evaluation (probability confidences), voted the way the evaluation votes
(student_eval.vote_answers, when inference.samples > 1), and laid out as the evaluation's predictions
(an unparsable attribute is an abstention with confidence 0, after inference.retry_invalid sampled retries).
A user whose request failed (openai backend, after its retries) gets no rows and is counted; more than
inference.max_error_share of them fails the call.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from conf_profile import progress
from conf_profile.config import Settings
from conf_profile.inference.backends import Backend, InferenceServerError, make_backend
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.parse import parse_answer
from conf_profile.train.rewards import Rollout
from conf_profile.train.student_eval import complete_share, fill_invalid, predictions, vote_answers


def parse_samples(answers: list[list[str]], taxonomy: Taxonomy, vote: bool = False) -> tuple[list[Rollout], float]:
    """Raw answers per user -> (one Rollout per user, summed valid share): the first answer, or with `vote`
    the confidence-weighted vote over the user's answers (student_eval.vote_answers). A user's valid share is
    the share of its answers that parsed whole (every attribute present and in the taxonomy)."""
    parsed = [[parse_answer(t, taxonomy, confidence="probability") for t in per] for per in answers]
    rollouts = [[Rollout(dict(p.labels), dict(p.confidences), p.error is None) for p in per] for per in parsed]
    valid = float(sum(np.mean([p.ok for p in per]) for per in parsed if per))
    return (vote_answers(rollouts, taxonomy) if vote else [r[0] for r in rollouts]), valid


def profile_documents(settings: Settings, model_ref: str, users: list[str], texts: list[str], taxonomy: Taxonomy,
                      backend: Backend | None = None, cache: Path | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Predictions (user_id, attribute, label, confidence) of `model_ref` for the users' documents, and stats
    (users, profiled, failed_users, valid_rate, backend, samples, seconds). `backend` defaults to the
    configured one (`make_backend`); `cache` is where a downloaded model goes (default: a temp folder)."""
    if len(users) != len(texts):
        raise ValueError(f"{len(users)} users but {len(texts)} documents")
    t0 = time.perf_counter()
    inf = settings.inference
    backend = backend or make_backend(settings, model_ref, taxonomy, cache=cache)
    k = inf.samples
    bs = inf.batch_size or settings.compute.inference_batch_size
    parts, valid, valid_first, retried, failed, reasons = [], 0.0, 0.0, 0, 0, {}
    bar = progress.bar(f"profile ({backend.name})", total=len(users), unit="user")
    for start in range(0, len(users), bs):
        chunk_users, chunk_texts = users[start:start + bs], texts[start:start + bs]
        outs = backend.generate(chunk_texts, k)
        ok_users, ok_answers = [], []
        for uid, out in zip(chunk_users, outs, strict=True):
            if isinstance(out, str):
                failed += 1
                reasons[out] = reasons.get(out, 0) + 1
                continue
            ok_users.append(uid)
            ok_answers.append(list(out) or [""])
        rollouts, v = parse_samples(ok_answers, taxonomy, vote=k > 1)
        valid_first += v
        if inf.retry_invalid and k == 1:
            docs_of = dict(zip(chunk_users, chunk_texts, strict=True))
            rollouts, n = fill_invalid(rollouts, [docs_of[u] for u in ok_users], taxonomy,
                                       lambda d: backend.generate(d, inf.retry_invalid))
            retried += n
            v = complete_share(rollouts, taxonomy) * len(rollouts) if n else v
        valid += v
        parts.append(predictions(ok_users, rollouts, taxonomy))
        bar.update(len(chunk_users))
    bar.close()
    table = pa.concat_tables(parts) if parts else predictions([], [], taxonomy)
    profiled = len(users) - failed
    stats: dict[str, Any] = {
        "backend": backend.name, "samples": k, "users": len(users), "profiled": profiled, "failed_users": failed,
        "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:3]),
        "valid_rate": round(valid / profiled, 4) if profiled else None, "retried_users": retried,
        "valid_rate_first": round(valid_first / profiled, 4) if profiled else None, "rows": table.num_rows,
        "seconds": round(time.perf_counter() - t0, 1)}
    if users and failed / len(users) > inf.max_error_share:
        top = "; ".join(f"{n} x {r}" for r, n in stats["failure_reasons"].items())
        raise InferenceServerError(
            f"{failed} of {len(users)} users could not be profiled by the {backend.name} backend ({top}); "
            f"more than inference.max_error_share = {inf.max_error_share}.",
            "Check the student server's health and load (or raise inference.timeout_s / max_retries); the task "
            "is retried.")
    return table, stats


def summary_text(stats: dict[str, Any]) -> str:
    """One line for a human summary: how many were profiled, and who was left out and why."""
    line = (f"profiled {stats['profiled']} of {stats['users']} users with the {stats['backend']} backend"
            f"{' (vote of ' + str(stats['samples']) + ' samples)' if stats['samples'] > 1 else ''}, "
            f"valid answers {stats['valid_rate']}")
    if stats.get("retried_users"):
        line += f" ({stats['retried_users']} retried: {stats['valid_rate_first']} valid at first)"
    if stats["failed_users"]:
        line += f"; {stats['failed_users']} left out ({', '.join(stats['failure_reasons'])})"
    return line
