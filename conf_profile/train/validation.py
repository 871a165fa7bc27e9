"""Label-free validation: held-out distillation users scored against their Stage-1 quasi-labels.

Why: the training schedule (when to stop, which checkpoint to keep) and the choice between SFT and RL must
not read gold, yet "the last step" is a poor choice on a small week (it overfits) and RL is not always
better than SFT. A deterministic share of the distillation users (hashed user id, independent of the
eval split) never trains; their quasi-labels and calibrated confidences (the distillation target) give the
score: confidence-weighted agreement, `sum_{u,a} c_ua * agree(y_ua, q_ua) / sum_{u,a} c_ua`, where agree is
1[y = q] for single-label attributes and Jaccard for multi-label ones (`rewards.agreement`): a student is
rewarded most for matching what Stage 1 was sure of. The quasi-ECE (student confidence vs agreement with
the quasi-label, `metrics.ece`) and the unweighted agreement are reported beside it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from conf_profile.evaluate.metrics import ece
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.parse import parse_answer
from conf_profile.train.rewards import QuasiLabel, Rollout, agreement

_BUCKETS = 10_000
_SALT = "validation:"  # independent of splits.eval_mask's buckets


def validation_mask(user_ids: list[str] | pa.Array | pa.ChunkedArray, share: float) -> np.ndarray:
    """True for the users held out for validation: a fixed share, by a hash of the user id only."""
    if isinstance(user_ids, pa.Array | pa.ChunkedArray):
        user_ids = user_ids.to_pylist()
    limit = int(share * _BUCKETS)

    def bucket(u: str) -> int:
        return int.from_bytes(hashlib.blake2b((_SALT + u).encode(), digest_size=4).digest(), "little") % _BUCKETS

    return np.fromiter((bucket(u) < limit for u in user_ids), dtype=bool, count=len(user_ids))


@dataclass
class ValidationSet:
    """Documents and quasi-labels {attr: QuasiLabel(label, calibrated confidence)} of the held-out users."""

    user_ids: list[str]
    documents: list[str]
    quasi: list[dict[str, QuasiLabel]]

    def __len__(self) -> int:
        return len(self.user_ids)


def split_rows(rows: list[dict], share: float) -> tuple[list[dict], list[dict]]:
    """(train rows, validation rows) of distillation rows (dicts with user_id, document, target)."""
    if share <= 0 or not rows:
        return rows, []
    mask = validation_mask([r["user_id"] for r in rows], share)
    return [r for r, m in zip(rows, mask, strict=True) if not m], [r for r, m in zip(rows, mask, strict=True) if m]


def build_set(rows: list[dict], taxonomy: Taxonomy, limit: int = 0) -> ValidationSet:
    """A ValidationSet from validation rows (first `limit` by user id; 0 = all); targets are parsed by the
    shared parser, so a target attribute that fails to parse is simply not scored."""
    rows = sorted(rows, key=lambda r: r["user_id"])[: limit or None]
    quasi = []
    for r in rows:
        p = parse_answer(r["target"], taxonomy, confidence="probability")
        quasi.append({a: QuasiLabel(lab, float(p.confidences.get(a, 0.0))) for a, lab in p.labels.items()})
    return ValidationSet([r["user_id"] for r in rows], [r["document"] for r in rows], quasi)


def score_rollouts(vset: ValidationSet, rollouts: list[Rollout]) -> dict:
    """Confidence-weighted agreement of answers (one Rollout per validation user) with the quasi-labels."""
    num = den = hits = n = 0.0
    confs, agrees = [], []
    for q, r in zip(vset.quasi, rollouts, strict=True):
        for attr, ql in q.items():
            agree = agreement(r.labels[attr], ql) if attr in r.labels else 0.0
            num += ql.share * agree
            den += ql.share
            hits += agree
            n += 1
            if attr in r.labels:
                confs.append(r.confidences.get(attr, 0.0))
                agrees.append(agree)
    valid = float(np.mean([r.has_json and set(q) <= set(r.labels) for q, r in zip(vset.quasi, rollouts, strict=True)]))
    quasi_ece = ece(np.array(confs), np.array(agrees) >= 0.5) if confs else None
    return {"score": round(num / den, 4) if den else 0.0, "agreement": round(hits / n, 4) if n else 0.0,
            "quasi_ece": None if quasi_ece is None else round(quasi_ece, 4), "valid_rate": round(valid, 4),
            "users": len(vset)}


def score_model(model, tok, vset: ValidationSet, taxonomy: Taxonomy, batch_size: int = 64,
                answer_samples: int = 1, temperature: float = 0.7) -> dict:
    """Answer the validation users with `model` (greedy, or the k-sample vote) and score the answers."""
    from conf_profile.train.student_eval import answer, answer_budget

    t0 = time.perf_counter()
    was_training = model.training
    rollouts = answer(model, tok, vset.documents, taxonomy, answer_budget(tok, taxonomy), batch_size,
                      answer_samples=answer_samples, temperature=temperature, desc="validate")[0]
    if was_training:
        model.train()
    out = score_rollouts(vset, rollouts)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def validation_callback(vset: ValidationSet, tok, taxonomy: Taxonomy, every: int, patience: int = 0,
                        min_delta: float = 0.0, batch_size: int = 64, state_file: Path | None = None):
    """A TrainerCallback that scores the model every `every` steps and at the end, keeps the best weights
    (a CPU copy of the state dict; also written to `state_file` so a resumed run remembers its best) and
    stops training after `patience` validations without an improvement of at least `min_delta`.
    After training, `cb.restore(model)` loads the best weights back; `cb.history` lists every validation."""
    import torch
    from transformers import TrainerCallback

    class _Validation(TrainerCallback):
        def __init__(self):
            self.history: list[dict] = []
            self.best: dict | None = None
            self.best_state: dict | None = None
            self.bad = 0
            if state_file is not None and state_file.is_file():
                saved = torch.load(state_file, weights_only=False)
                self.history, self.best, self.best_state, self.bad = (saved["history"], saved["best"],
                                                                      saved["state"], saved["bad"])

        def _validate(self, model, step: int, control) -> None:
            if self.history and self.history[-1]["step"] == step:
                return
            res = {"step": step, **score_model(model, tok, vset, taxonomy, batch_size)}
            self.history.append(res)
            if self.best is None or res["score"] > self.best["score"] + min_delta:
                self.best, self.bad = res, 0
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                self.bad += 1
                if patience and self.bad >= patience:
                    control.should_training_stop = True
            if state_file is not None:
                torch.save({"history": self.history, "best": self.best, "state": self.best_state, "bad": self.bad},
                           state_file)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if model is not None and state.global_step % every == 0:
                self._validate(model, state.global_step, control)
            return control

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if model is not None:
                self._validate(model, state.global_step, control)

        def restore(self, model) -> dict | None:
            """Load the best weights into `model` (no-op when the last step was the best)."""
            if self.best is None or self.best_state is None:
                return None
            if self.history and self.history[-1]["step"] != self.best["step"]:
                model.load_state_dict(self.best_state)
            return self.best

        def summary(self) -> dict:
            return {"best_step": self.best["step"] if self.best else None,
                    "best": self.best, "stopped_early": bool(patience and self.bad >= patience),
                    "history": [{k: h[k] for k in ("step", "score", "agreement", "quasi_ece", "valid_rate")}
                                for h in self.history]}

    return _Validation()
