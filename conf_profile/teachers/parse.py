"""The one parser/validator of profile answers, shared by every teacher backend and the student evaluation.

Why one parser: a label that one backend would accept and another reject would make teachers (and the
student) incomparable. Rules (docs/teachers.md, "Parser rules"):
- the first JSON object in the output is the answer (prose and code fences around it are ignored); a
  leading JSON object that names no attribute is skipped in favour of a later one that does;
- each attribute is validated on its own: a bad attribute gets an error, the others are kept;
- labels go through `Taxonomy.check_label` (out-of-taxonomy labels are rejected, never mapped);
  strings are only stripped and lower-cased;
- confidences are clamped (levels to 1..5, probabilities to 0..1); non-numeric ones are an error;
- missing attributes, wrong types and an attribute given twice are errors; extra keys are ignored;
- output that holds no JSON object gives one error per attribute.
Nothing here raises on model output: bad output becomes error rows, so a batch never crashes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.taxonomy import ParsedAnswer as _BaseParsedAnswer
from conf_profile.taxonomy import Taxonomy

ConfidenceKind = Literal["level", "probability"]

LEVEL_MIN, LEVEL_MAX = 1.0, 5.0
MAX_SEARCH_CHARS = 200_000  # outputs are cut here before the JSON search: bounded work on runaway generations
MAX_DECODE_TRIES = 16  # '{' positions tried before giving up (prose full of braces)
MAX_RATIONALE_CHARS = 300
MAX_RAW_STORED = 8_000  # raw_output kept per row (the answer of a sane model is far shorter)
_MISSING = object()
_DUP = object()


def level_to_confidence(level: float) -> float:
    """Map a 1-5 hint level to [0, 1] (method.md): (level - 0.5) / 5, so 1 -> 0.1 and 5 -> 0.9."""
    return (level - 0.5) / 5.0


@dataclass
class ParsedAnswer(_BaseParsedAnswer):
    """A validated answer. `confidences` are always in [0, 1] (levels already mapped); `levels` holds the
    clamped stated level in level mode; `error` is set when the output held no usable JSON object."""

    levels: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.errors


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice is ambiguous (which one did the model mean?); mark it instead of keeping the last.
    out: dict[Any, Any] = {}
    for k, v in pairs:
        if k in out:
            out.setdefault(_DUP, []).append(k)  # a non-string key: JSON text cannot forge it
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook)


def extract_json(raw: str, keys: frozenset[str] | set[str] = frozenset()) -> tuple[dict | None, str | None]:
    """The first JSON object in `raw` (preferring one that holds any of `keys`); (None, reason) if none."""
    if not isinstance(raw, str):
        return None, f"output is {type(raw).__name__}, not text"
    text = raw[:MAX_SEARCH_CHARS]
    first: dict | None = None
    last_error: str | None = None
    pos = text.find("{")
    tries = 0
    while pos != -1 and tries < MAX_DECODE_TRIES:
        tries += 1
        try:
            obj, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            if last_error is None:
                last_error = f"invalid JSON ({exc.msg} at char {exc.pos})" if isinstance(exc, json.JSONDecodeError) \
                    else "invalid JSON (nested too deeply)"
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            if not keys or keys.intersection(obj):
                return obj, None
            if first is None and last_error is None:  # not a fragment from inside a broken answer
                first = obj
        pos = text.find("{", end)
    if first is not None:
        return first, None
    if last_error:
        return None, last_error
    return None, "no JSON object in output"


def _norm_label(label: Any) -> Any:
    if isinstance(label, str):
        return label.strip().lower()
    if isinstance(label, list):
        return [x.strip().lower() if isinstance(x, str) else x for x in label]
    return label


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str) and len(value) <= 32:
        try:
            x = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_answer(raw: str, taxonomy: Taxonomy, confidence: ConfidenceKind = "level") -> ParsedAnswer:
    """Parse and validate one model output; never raises on bad output (see the module docstring)."""
    out = ParsedAnswer()
    obj, err = extract_json(raw, _attribute_keys(taxonomy))
    if obj is None:
        out.error = err
        for name in taxonomy.names:
            out.errors[name] = err or "no answer"
        return out
    dup = set(obj.get(_DUP, ()))
    unknown = taxonomy.unknown
    for attr in taxonomy.attributes:
        name = attr.name
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            out.errors[name] = f"{name}: missing from the answer"
            continue
        if name in dup:
            out.errors[name] = f"{name}: given twice in the answer"
            continue
        if not isinstance(value, dict):
            out.errors[name] = f"{name}: must be an object with label and confidence, got {type(value).__name__}"
            continue
        if _DUP in value:
            out.errors[name] = f"{name}: {', '.join(map(str, value[_DUP][:3]))} given twice"
            continue
        problems: list[str] = []
        label = _norm_label(value.get("label", _MISSING))
        if label is _MISSING:
            problems.append(f"{name}: missing label")
        else:
            if attr.is_multi and isinstance(label, list):
                label = [x for x in label if x != unknown]  # ["unknown"] means "none of them"
            label, label_err = taxonomy.check_label(name, label)
            if label_err:
                problems.append(label_err)
        conf_raw = value.get("confidence", _MISSING)
        conf = None if conf_raw is _MISSING else _to_number(conf_raw)
        if conf_raw is _MISSING:
            problems.append(f"{name}: missing confidence")
        elif conf is None:
            problems.append(f"{name}: confidence {_short(conf_raw)} is not a number")
        if problems:
            out.errors[name] = "; ".join(problems)
            continue
        assert conf is not None
        if confidence == "level":
            level = min(LEVEL_MAX, max(LEVEL_MIN, conf))
            out.levels[name] = level
            out.confidences[name] = level_to_confidence(level)
        else:
            out.confidences[name] = min(1.0, max(0.0, conf))
        out.labels[name] = label
        rationale = value.get("rationale")
        out.rationales[name] = rationale[:MAX_RATIONALE_CHARS] if isinstance(rationale, str) else ""
    return out


def _attribute_keys(taxonomy: Taxonomy) -> frozenset[str]:
    return frozenset(taxonomy.names)


def error_answer(taxonomy: Taxonomy, reason: str) -> ParsedAnswer:
    """An answer where every attribute failed for the same reason (a request that never succeeded)."""
    return ParsedAnswer(errors={name: reason for name in taxonomy.names}, error=reason)


def answer_to_rows(parsed: ParsedAnswer, taxonomy: Taxonomy, user_id: str, teacher_id: str,
                   sample_idx: int = 0, raw_output: str | None = None) -> list[dict[str, Any]]:
    """Long rows (schema.TEACHER_OUTPUT_SCHEMA), one per attribute, in taxonomy order. A failed attribute
    is kept as a row with a null label and the reason in `error`."""
    buf = RowBuffer(taxonomy, teacher_id)
    buf.add(user_id, sample_idx, parsed, raw_output)
    return buf.to_table().to_pylist()


class RowBuffer:
    """Collects teacher rows column-wise (cheaper than a dict per row) and returns one Arrow table."""

    def __init__(self, taxonomy: Taxonomy, teacher_id: str):
        self.taxonomy = taxonomy
        self.teacher_id = teacher_id
        self._multi = {a.name: a.is_multi for a in taxonomy.attributes}
        self.cols: dict[str, list[Any]] = {n: [] for n in TEACHER_OUTPUT_SCHEMA.names}

    def __len__(self) -> int:
        return len(self.cols["user_id"])

    def add(self, user_id: str, sample_idx: int, parsed: ParsedAnswer, raw_output: str | None = None) -> None:
        raw = raw_output[:MAX_RAW_STORED] if isinstance(raw_output, str) else None
        c = self.cols
        for name, multi in self._multi.items():
            c["user_id"].append(user_id)
            c["teacher_id"].append(self.teacher_id)
            c["sample_idx"].append(sample_idx)
            c["attribute"].append(name)
            c["raw_output"].append(raw)
            err = parsed.errors.get(name)
            if err is None and name not in parsed.labels:
                err = parsed.error or f"{name}: no answer"
            if err is not None:
                c["label"].append(None)
                c["confidence"].append(None)
                c["rationale"].append(None)
                c["error"].append(err)
                continue
            label = parsed.labels[name]
            c["label"].append(list(label) if multi else [label])
            c["confidence"].append(parsed.confidences[name])
            c["rationale"].append(parsed.rationales.get(name, ""))
            c["error"].append(None)

    def add_error(self, user_id: str, sample_idx: int, reason: str, raw_output: str | None = None) -> None:
        self.add(user_id, sample_idx, error_answer(self.taxonomy, reason), raw_output)

    def to_table(self) -> pa.Table:
        return pa.table(self.cols, schema=TEACHER_OUTPUT_SCHEMA)


def empty_rows() -> pa.Table:
    return TEACHER_OUTPUT_SCHEMA.empty_table()
