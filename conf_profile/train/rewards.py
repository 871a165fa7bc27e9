"""Confidence-guided GRPO rewards (method.md, Stage 2.2), as plain functions over parsed rollouts.

Quasi-ground truth, per prompt and attribute: a confidence-weighted vote over the G rollouts of that prompt
(each rollout's own stated confidence is its weight) plus the Stage-1 teacher answers as extra voters
(weight `teacher_weight` x teacher confidence x teacher weight). `s_a` is the winning label's vote share.
Rewards per rollout:
  agreement   = sum_a s_a * agree_a / sum_a s_a
  format      = 1 for valid in-taxonomy JSON; 0.5 x share of valid attributes when partly valid; 0 without JSON
  calibration = -mean_a (c_a - agree_a)^2   (so RL does not buy agreement with over-confidence)
Single-label attributes: agree_a = 1[y_a = yhat_a] ("unknown" is a label like any other in the vote).
Multi-label attributes are voted per label like Stage 1 (present when its weighted share >= 0.5, at most
max_labels); agree_a = Jaccard(y_a, yhat_a) and s_a = mean over the labels any voter named of
max(share, 1 - share), i.e. how decisive the per-label votes were.

TRL hands reward functions flat lists; the G completions of one prompt are consecutive in TRL 1.16
(RepeatSampler) but on several GPUs a group is split across processes. So we group by prompt text, never by
position: a split group just votes with fewer rollouts.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.parse import parse_answer

_EPS = 1e-6


@dataclass
class Rollout:
    """One completion, parsed: valid attributes only; `has_json` False when nothing parsed at all."""

    labels: dict[str, Any] = field(default_factory=dict)
    confidences: dict[str, float] = field(default_factory=dict)
    has_json: bool = False


@dataclass
class QuasiLabel:
    label: Any  # a class / "unknown" (single) or a sorted list (multi)
    share: float  # s_a in [0, 1]


def parse_rollout(text: str, taxonomy: Taxonomy) -> Rollout:
    """Parse with the shared parser (the one that parses teachers); confidences are probabilities."""
    parsed = parse_answer(text, taxonomy, confidence="probability")
    return Rollout(dict(parsed.labels), dict(parsed.confidences), parsed.error is None)


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def group_indices(prompts: Sequence[Any]) -> list[list[int]]:
    """Indices of completions that share a prompt, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        key = p if isinstance(p, str) else json.dumps(p, sort_keys=True, ensure_ascii=False)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _teacher_votes(answers: Any, attr: str) -> list[tuple[Any, float]]:
    """[(label, weight)] from Stage-1 teacher answers {attr: [[label, confidence, weight], ...]}."""
    if isinstance(answers, str):
        answers = json.loads(answers) if answers else {}
    out = []
    for item in (answers or {}).get(attr, []):
        label, conf, *rest = item
        out.append((label, float(conf) * float(rest[0] if rest else 1.0)))
    return out


Priors = dict[str, dict[str, float]]


def class_priors(profiles: Sequence[Any], taxonomy: Taxonomy) -> Priors:
    """Class shares of single-label attributes over Stage-1 profiles ({attr: {"label": ...}}, JSON or dict),
    add-one smoothed, abstentions left out: the label prior the balanced vote divides by."""
    counts: dict[str, dict[str, float]] = {a.name: dict.fromkeys(a.classes, 1.0) for a in taxonomy.single}
    for prof in profiles:
        prof = json.loads(prof) if isinstance(prof, str) else prof
        for name, c in counts.items():
            label = (prof or {}).get(name, {}).get("label")
            if label in c:
                c[label] += 1.0
    return {name: {k: v / sum(c.values()) for k, v in c.items()} for name, c in counts.items()}


def quasi_ground_truth(rollouts: Sequence[Rollout], taxonomy: Taxonomy, teacher_answers: Any = None,
                       teacher_weight: float = 0.0, priors: Priors | None = None,
                       prior_power: float = 0.0, unknown_weight: float = 0.0) -> dict[str, QuasiLabel]:
    """The vote of one prompt's rollouts (+ teachers) per attribute; attributes nobody answered are left out.

    With `priors` and `prior_power` > 0 a single-label attribute's class is decided by score / prior^power
    (the balanced decision: a plain plurality over a student's samples favours frequent classes, which
    macro-F1 punishes; Stage 1 corrects teachers the same way). Abstaining is still decided on raw mass.
    `unknown_weight` > 0: a rollout's `unknown` votes with at least that weight (its stated confidence is 0,
    so otherwise an abstention can only win where every rollout abstained)."""
    out: dict[str, QuasiLabel] = {}
    for attr in taxonomy.attributes:
        voters = [(r.labels[attr.name], r.confidences.get(attr.name, 0.0)) for r in rollouts if attr.name in r.labels]
        if unknown_weight > 0:
            voters = [(y, max(w, unknown_weight) if y == taxonomy.unknown else w) for y, w in voters]
        if voters and sum(w for _, w in voters) <= _EPS:  # every rollout said confidence 0: count them equally
            voters = [(y, 1.0) for y, _ in voters]
        if teacher_weight > 0 and teacher_answers is not None:
            for label, w in _teacher_votes(teacher_answers, attr.name):
                checked, err = taxonomy.check_label(attr.name, label)
                if err is None:
                    voters.append((checked, teacher_weight * w))
        total = sum(w for _, w in voters)
        if not voters or total <= _EPS:
            continue
        if attr.is_multi:
            score: dict[str, float] = defaultdict(float)
            for labels, w in voters:
                for x in labels:
                    score[x] += w
            shares = {x: s / total for x, s in score.items()}
            keep = sorted((x for x, s in shares.items() if s >= 0.5), key=lambda x: (-shares[x], x))
            decisive = [max(s, 1 - s) for s in shares.values()]
            out[attr.name] = QuasiLabel(sorted(keep[: attr.max_labels]), sum(decisive) / len(decisive) if decisive else 1.0)
        else:
            score = defaultdict(float)
            best_conf: dict[str, float] = defaultdict(float)
            for label, w in voters:
                score[label] += w
                best_conf[label] = max(best_conf[label], w)
            # Ties: higher single-voter weight, then unknown (abstain), then name (determinism).
            win = max(score, key=lambda y: (score[y], best_conf[y], y == taxonomy.unknown, y))
            prior = (priors or {}).get(attr.name)
            known = [y for y in score if y != taxonomy.unknown]
            if prior and prior_power > 0 and known and win != taxonomy.unknown:
                win = max(known, key=lambda y: (score[y] / prior.get(y, 1.0) ** prior_power, best_conf[y], y))
            out[attr.name] = QuasiLabel(win, score[win] / total)
    return out


def self_agreement(rollouts: Sequence[Rollout], taxonomy: Taxonomy, unknown_weight: float = 0.0) -> float:
    """How much one prompt's rollouts agree: the mean over attributes of the winning vote share (an attribute
    no rollout answered counts 0). Near 1: every rollout the same (no advantage to learn from); low: noise.
    The student's own difficulty signal where Stage 1 has no confidence (users outside the teacher budget)."""
    q = quasi_ground_truth(rollouts, taxonomy, unknown_weight=unknown_weight)
    return sum(q[n].share if n in q else 0.0 for n in taxonomy.names) / max(1, len(taxonomy.names))


def agreement(label: Any, quasi: QuasiLabel) -> float:
    if isinstance(quasi.label, list):
        a, b = set(label or []), set(quasi.label)
        return 1.0 if not a and not b else len(a & b) / len(a | b)
    return float(label == quasi.label)


def rollout_rewards(rollout: Rollout, qgt: dict[str, QuasiLabel], taxonomy: Taxonomy) -> dict[str, float]:
    """Agreement, format and calibration rewards of one rollout against its prompt's quasi-ground truth."""
    n = len(taxonomy.names)
    valid = len(rollout.labels)
    fmt = 1.0 if valid == n else (0.5 * valid / n if rollout.has_json else 0.0)
    num = den = 0.0
    cal = []
    for name in taxonomy.names:
        q = qgt.get(name)
        agree = agreement(rollout.labels[name], q) if (q is not None and name in rollout.labels) else 0.0
        if q is not None:
            num += q.share * agree
            den += q.share
        conf = rollout.confidences.get(name, 1.0) if name in rollout.labels else 1.0  # invalid: worst case
        cal.append((conf - agree) ** 2)
    return {"agreement": num / den if den > _EPS else 0.0, "format": fmt, "calibration": -sum(cal) / n}


def group_rewards(prompts: Sequence[Any], completions: Sequence[Any], taxonomy: Taxonomy,
                  teacher_answers: Sequence[Any] | None = None, teacher_weight: float = 0.0,
                  priors: Priors | None = None, prior_power: float = 0.0,
                  unknown_weight: float = 0.0) -> list[dict[str, float]]:
    """Rewards for a flat batch of completions: grouped by prompt, voted per group, scored per rollout.
    A prompt without teacher answers (a user outside the teacher budget: "{}" or None) is voted by its
    rollouts alone."""
    rollouts = [parse_rollout(completion_text(c), taxonomy) for c in completions]
    out: list[dict[str, float]] = [{}] * len(completions)
    for idx in group_indices(prompts):
        answers = teacher_answers[idx[0]] if teacher_answers is not None else None
        qgt = quasi_ground_truth([rollouts[i] for i in idx], taxonomy, answers, teacher_weight, priors, prior_power,
                                 unknown_weight)
        for i in idx:
            out[i] = rollout_rewards(rollouts[i], qgt, taxonomy)
    return out


class ConfidenceRewards:
    """TRL reward functions (agreement, format, calibration) sharing one grouped computation per batch."""

    def __init__(self, taxonomy: Taxonomy, teacher_weight: float = 0.0, control: bool = False, seed: int = 0,
                 priors: Priors | None = None, prior_power: float = 0.0, unknown_weight: float = 0.0):
        self.taxonomy = taxonomy
        self.unknown_weight = unknown_weight
        self.teacher_weight = teacher_weight
        self.priors = priors
        self.prior_power = prior_power
        self.control = control
        self._rng = random.Random(seed)
        self._cache: tuple[int, list[dict[str, float]]] | None = None

    def _rewards(self, prompts: list, completions: list, teacher_answers: list | None) -> list[dict[str, float]]:
        key = hash((len(completions), *map(completion_text, completions), *map(str, prompts)))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, group_rewards(prompts, completions, self.taxonomy, teacher_answers,
                                              self.teacher_weight, self.priors, self.prior_power,
                                              self.unknown_weight))
        return self._cache[1]

    def functions(self) -> list[Callable[..., list[float]]]:
        def agreement(prompts, completions, teacher_answers=None, **kwargs) -> list[float]:
            if self.control:  # the random-reward control: random agreement, format kept, no calibration term
                return [self._rng.random() for _ in completions]
            return [r["agreement"] for r in self._rewards(prompts, completions, teacher_answers)]

        def format(prompts, completions, teacher_answers=None, **kwargs) -> list[float]:  # noqa: A001
            return [r["format"] for r in self._rewards(prompts, completions, teacher_answers)]

        def calibration(prompts, completions, teacher_answers=None, **kwargs) -> list[float]:
            if self.control:
                return [0.0 for _ in completions]
            return [r["calibration"] for r in self._rewards(prompts, completions, teacher_answers)]

        return [agreement, format, calibration]
