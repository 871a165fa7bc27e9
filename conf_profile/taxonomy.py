"""The profiling taxonomy, loaded from YAML, with the JSON schema of a profile answer and its validator.

A profile answer (teachers, students) is one JSON object keyed by attribute, attribute name right before
its label (that ordering helps small students):
    {"gender": {"label": "male", "confidence": 4, "rationale": "..."},
     "interests": {"label": ["gaming", "music"], "confidence": 3, "rationale": "..."}, ...}
`label` is a class, or "unknown" (abstain) for single attributes; a list (possibly empty) for multi.
`confidence` is a number: a 1-5 hint level from teachers, or a probability in [0, 1] from students.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from conf_profile.errors import TaxonomyError, yaml_problem

UNKNOWN = "unknown"


class Attribute(BaseModel):
    """One attribute. A class is written as its name or as `{name: ..., description: ...}`; the description
    (a short phrase saying what the class means, e.g. for zero-shot teachers) defaults to the name.
    `classes` stays the list of names, so callers never see the two spellings."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["single", "multi"] = "single"
    classes: list[str] = Field(min_length=1)
    max_labels: int = 3
    descriptions: dict[str, str] = Field(default_factory=dict)  # class -> description (filled for every class)

    @model_validator(mode="before")
    @classmethod
    def _split_classes(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            return data
        names: list[Any] = []
        described: dict[str, Any] = dict(data.get("descriptions") or {})
        for i, item in enumerate(data["classes"]):
            if isinstance(item, dict):
                extra = set(item) - {"name", "description"}
                if "name" not in item or extra:
                    raise ValueError(f"attribute {data.get('name')}: class {i + 1} must be a name or "
                                     f"{{name: ..., description: ...}}"
                                     + (f" (unknown keys: {sorted(extra)})" if extra else " (no name)"))
                names.append(item["name"])
                if item.get("description") is not None:
                    described[str(item["name"])] = item["description"]
            else:
                names.append(item)
        return {**data, "classes": names, "descriptions": described}

    @model_validator(mode="after")
    def _check(self) -> Attribute:
        twice = sorted({c for c in self.classes if self.classes.count(c) > 1})
        if twice:
            raise ValueError(f"attribute {self.name} lists class(es) {', '.join(map(repr, twice))} twice; "
                             "list each class once")
        if UNKNOWN in self.classes:
            raise ValueError(f"attribute {self.name}: '{UNKNOWN}' is implicit, do not list it")
        # Answers are lower-cased before matching (teachers/parse.py): a class with capitals or surrounding
        # spaces could never match, so it is refused here rather than silently never predicted.
        bad = [c for c in self.classes if c != c.strip().lower() or not c.strip()]
        if bad:
            raise ValueError(f"attribute {self.name}: class(es) {', '.join(repr(c) for c in bad)} must be lower-case "
                             "without surrounding spaces (answers are lower-cased before matching)")
        stray = set(self.descriptions) - set(self.classes)
        if stray:
            raise ValueError(f"attribute {self.name}: descriptions of classes it does not have: {sorted(stray)}")
        blank = [c for c, d in self.descriptions.items() if not d.strip()]
        if blank:
            raise ValueError(f"attribute {self.name}: empty description for {blank}")
        self.descriptions = {c: self.descriptions.get(c) or c.replace("_", " ") for c in self.classes}
        return self

    @property
    def is_multi(self) -> bool:
        return self.kind == "multi"


class Taxonomy(BaseModel):
    name: str = "taxonomy"
    unknown: str = UNKNOWN
    attributes: list[Attribute] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Taxonomy:
        names = [a.name for a in self.attributes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"attribute names must be unique: {', '.join(map(repr, twice))} is listed more "
                             "than once")
        return self

    # ---- lookups -------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def attribute(self, name: str) -> Attribute:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def single(self) -> list[Attribute]:
        return [a for a in self.attributes if not a.is_multi]

    @property
    def multi(self) -> list[Attribute]:
        return [a for a in self.attributes if a.is_multi]

    # ---- schema --------------------------------------------------------------------------------------
    def json_schema(self, confidence: Literal["level", "probability"] = "level", rationale: bool = True) -> dict:
        """JSON schema of a full profile answer; used for structured decoding and for validation."""
        conf = (
            {"type": "integer", "minimum": 1, "maximum": 5}
            if confidence == "level"
            else {"type": "number", "minimum": 0, "maximum": 1}
        )
        props: dict[str, Any] = {}
        for a in self.attributes:
            if a.is_multi:
                label = {"type": "array", "items": {"enum": a.classes}, "maxItems": a.max_labels, "uniqueItems": True}
            else:
                label = {"enum": [*a.classes, self.unknown]}
            inner: dict[str, Any] = {"label": label, "confidence": conf}
            required = ["label", "confidence"]
            if rationale:
                inner["rationale"] = {"type": "string", "maxLength": 300}
                required.append("rationale")
            props[a.name] = {"type": "object", "properties": inner, "required": required, "additionalProperties": False}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"profile answer ({self.name})",
            "type": "object",
            "properties": props,
            "required": self.names,
            "additionalProperties": False,
        }

    # ---- validation ----------------------------------------------------------------------------------
    def check_label(self, attribute: str, label: Any) -> tuple[Any, str | None]:
        """Normalise one label; returns (label, error). Out-of-taxonomy labels are rejected, not mapped."""
        try:
            attr = self.attribute(attribute)
        except KeyError:
            return None, f"unknown attribute {attribute!r}"
        if attr.is_multi:
            if label in (None, self.unknown):
                return [], None
            if isinstance(label, str):
                label = [label]
            if not isinstance(label, list) or not all(isinstance(x, str) for x in label):
                return None, f"{attribute}: label must be a list of strings"
            bad = [x for x in label if x not in attr.classes]
            if bad:
                return None, f"{attribute}: labels outside the taxonomy: {bad[:3]}"
            uniq = list(dict.fromkeys(label))
            if len(uniq) > attr.max_labels:
                return None, f"{attribute}: more than {attr.max_labels} labels"
            return sorted(uniq), None
        if not isinstance(label, str):
            return None, f"{attribute}: label must be a string"
        if label != self.unknown and label not in attr.classes:
            return None, f"{attribute}: label {label[:40]!r} is outside the taxonomy"
        return label, None


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    from conf_profile.config import DEFAULT_TAXONOMY

    return _load(str(Path(path or DEFAULT_TAXONOMY).resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> Taxonomy:
    p = Path(path)
    if not p.is_file():
        raise TaxonomyError(f"Taxonomy file {p} does not exist.", "Point taxonomy_path at a YAML taxonomy file.")
    try:
        raw = yaml.safe_load(p.read_text())
        return Taxonomy.model_validate(raw)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"Taxonomy file {p} is not valid YAML: {yaml_problem(exc)}.",
                            "Fix the YAML syntax; see conf_profile/resources/taxonomy.yaml.") from None
    except ValidationError as exc:
        why = "; ".join(f"{_where(raw, e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()[:5])
        raise TaxonomyError(f"Taxonomy file {p} is invalid: {why}.",
                            "Fix it; see conf_profile/resources/taxonomy.yaml.") from None


def _where(raw: Any, loc: tuple) -> str:
    """A validation error's place, with the attribute's name: "attributes[1] (age).classes"."""
    if not loc:
        return "the file"
    out = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out[-1:] = [f"{out[-1] if out else ''}[{part}]"]
            if i == 1 and loc[0] == "attributes" and isinstance(raw, dict):
                items = raw.get("attributes")
                name = items[part].get("name") if isinstance(items, list) and part < len(items) and \
                    isinstance(items[part], dict) else None
                if name:
                    out[-1] += f" ({name})"
        else:
            out.append(str(part))
    return ".".join(out)


def write_schema(taxonomy: Taxonomy, path: str | Path) -> None:
    Path(path).write_text(json.dumps(taxonomy.json_schema(), indent=2))


@dataclass
class ParsedAnswer:
    """Result of validating one answer against the taxonomy (see teachers.parse for the full parser)."""

    labels: dict[str, Any] = field(default_factory=dict)
    confidences: dict[str, float] = field(default_factory=dict)
    rationales: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
