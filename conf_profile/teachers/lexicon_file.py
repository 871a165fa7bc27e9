"""The lexicon of the CPU teachers: a YAML file of evidence (phrases, profile fields, number rules) per
attribute class, loaded, validated against the taxonomy and compiled into arrays.

Why data, not code: teams extend the evidence (a new class, a slang word, a city) without touching Python,
and a typo in the file is an error naming the file and the entry, not a silent miss. The file format is
documented at the top of `lexicons/default.yaml` and in docs/teachers.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from conf_profile.errors import ConfProfileError, yaml_problem
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.tokens import normalise_phrase

DEFAULT_LEXICON = Path(__file__).parent / "lexicons" / "default.yaml"
TIERS = ("explicit", "strong", "weak")
MAX_PHRASE_WORDS = 8


class LexiconError(ConfProfileError):
    """The lexicon file is malformed or names classes the taxonomy does not have."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scoring(_Strict):
    weights: dict[Literal["explicit", "strong", "weak"], float] = Field(
        default_factory=lambda: {"explicit": 6.0, "strong": 2.0, "weak": 1.0})
    repeat_cap: int = 3  # a phrase counts at most this many times per user
    level_scores: dict[int, float] = Field(default_factory=lambda: {4: 6.0, 3: 3.0, 2: 1.5})
    level4_share: float = 0.7  # the winner's share of the attribute's total score needed for level 4
    margin: float = 1.0  # the winner must beat the runner-up by this much, else unknown
    multi_min_score: float = 2.0  # a multi-label class is listed from this score on ...
    multi_rel_score: float = 0.0  # ... and from this share of the best class's score on


class TeacherTweak(_Strict):
    """How one lexicon teacher differs from the others beyond its sources (like a different LLM's habits)."""

    threshold_scale: float = 1.0  # >1: abstains more; <1: guesses more
    level_shift: int = 0  # +1: over-confident; -1: under-confident (levels stay in 1..5)
    attributes: list[str] | None = None  # answer only these (others: unknown); None = all
    class_bias: dict[str, dict[str, float]] = Field(default_factory=dict)  # attribute -> class -> score added
    # when the class already has evidence (a habit of over-predicting it)


class FieldRule(_Strict):
    """Evidence from one `key: value` line of the profile section (declared fields, device, city)."""

    field: str = Field(pattern=r"^[a-z_]+$")
    attribute: str
    values: dict[str, str] = Field(default_factory=dict)  # exact value (lower-cased) -> class
    contains: dict[str, list[str]] = Field(default_factory=dict)  # class -> substrings of the value
    bins: list[tuple[float, float, str]] = Field(default_factory=list)  # numeric value in [lo, hi) -> class
    level: int | None = Field(default=None, ge=1, le=5)  # a fixed confidence level (declared fields)
    weight: float | None = None  # ... or evidence added to the class score

    @model_validator(mode="after")
    def _one_kind(self) -> FieldRule:
        if (self.level is None) == (self.weight is None):
            raise ValueError(f"field rule {self.field}: give exactly one of level or weight")
        if not (self.values or self.contains or self.bins):
            raise ValueError(f"field rule {self.field}: give values, contains or bins")
        return self


class PatternRule(_Strict):
    """A regular expression (RE2) over the text of some sources, e.g. a stated age ("I'm 34")."""

    name: str
    sources: list[str]
    regex: str  # matched against lower-cased text; a named group (?P<v>...) feeds `bins` or `values`
    attribute: str
    cls: str | None = Field(default=None, alias="class")  # fixed class when the regex matches
    values: dict[str, str] = Field(default_factory=dict)
    bins: list[tuple[float, float, str]] = Field(default_factory=list)
    level: int | None = Field(default=None, ge=1, le=5)
    weight: float | None = None


class NumberRule(_Strict):
    """An aggregate of numbers on the item lines of a source (e.g. the mean purchase price)."""

    name: str
    source: str
    regex: str  # per line, with a named group (?P<v>number)
    stat: Literal["mean", "max", "sum", "count"] = "mean"
    attribute: str
    bins: list[tuple[float, float, str]]
    weight: float


class Tiers(_Strict):
    explicit: list[str] = Field(default_factory=list)
    strong: list[str] = Field(default_factory=list)
    weak: list[str] = Field(default_factory=list)


class LexiconFile(_Strict):
    version: int = 1
    scoring: Scoring = Field(default_factory=Scoring)
    teachers: dict[str, TeacherTweak] = Field(default_factory=dict)
    attributes: dict[str, dict[str, Tiers]] = Field(default_factory=dict)
    fields: list[FieldRule] = Field(default_factory=list)
    patterns: list[PatternRule] = Field(default_factory=list)
    numbers: list[NumberRule] = Field(default_factory=list)


@dataclass
class Lexicon:
    """A compiled lexicon: every taxonomy class is a column `col`; phrases map to (column, weight) entries."""

    path: Path
    taxonomy: Taxonomy
    spec: LexiconFile
    columns: list[tuple[str, str]]  # col -> (attribute, class)
    col_of: dict[tuple[str, str], int]
    attr_cols: dict[str, np.ndarray]
    phrases: list[str]  # phrase id -> normalised phrase
    entry_ptr: np.ndarray  # phrase id -> its entries [ptr[i], ptr[i+1])
    entry_col: np.ndarray
    entry_weight: np.ndarray
    entry_explicit: np.ndarray
    phrases_by_len: dict[int, tuple[pa.Array, np.ndarray]] = field(default_factory=dict)
    first_words: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    first_len: np.ndarray = field(default_factory=lambda: np.zeros((0, MAX_PHRASE_WORDS + 1), dtype=bool))

    @property
    def scoring(self) -> Scoring:
        return self.spec.scoring

    def tweak(self, teacher: str) -> TeacherTweak:
        return self.spec.teachers.get(teacher, TeacherTweak())


def lexicon_path(path: str | Path | None) -> Path:
    p = Path(path) if path else DEFAULT_LEXICON
    if not p.is_file():
        raise LexiconError(f"Lexicon file {p} does not exist.",
                           "Point the teacher's `lexicon` (or labels.lexicon) at a YAML lexicon; "
                           "`conf-profile lexicon init` writes a starter one for your taxonomy.")
    return p


def resolve_lexicon(teacher_lexicon: str | Path | None, labels_lexicon: str | Path | None = None) -> Path:
    """The lexicon file a lexicon teacher uses: its own `lexicon`, else `labels.lexicon` (one file for all
    lexicon teachers), else the packaged default. Every reader of the path (the backend, the shard
    fingerprint) goes through here, so they can never disagree."""
    return lexicon_path(teacher_lexicon or labels_lexicon or None)


def lexicon_for(spec: Any, settings: Any | None = None) -> Path:
    """`resolve_lexicon` for a teacher spec and (optional) settings."""
    labels = getattr(getattr(settings, "labels", None), "lexicon", None)
    return resolve_lexicon(getattr(spec, "lexicon", None), labels)


def load_lexicon(path: str | Path | None, taxonomy: Taxonomy) -> Lexicon:
    p = lexicon_path(path).resolve()
    return _compile(str(p), p.stat().st_mtime_ns, taxonomy.model_dump_json())


@lru_cache(maxsize=8)
def _compile(path: str, _mtime: int, taxonomy_json: str) -> Lexicon:
    taxonomy = Taxonomy.model_validate_json(taxonomy_json)
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
        spec = LexiconFile.model_validate(raw)
    except yaml.YAMLError as exc:
        raise LexiconError(f"Lexicon file {p} is not valid YAML: {yaml_problem(exc)}.", "Fix the YAML syntax.") from None
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise LexiconError(f"Lexicon file {p} is invalid: {errs}.", "Fix the named entries.") from None
    columns = [(a.name, c) for a in taxonomy.attributes for c in a.classes]
    col_of = {ac: i for i, ac in enumerate(columns)}
    attr_cols = {a.name: np.array([col_of[(a.name, c)] for c in a.classes]) for a in taxonomy.attributes}

    def check(attr: str, cls: str | None, where: str) -> None:
        if attr not in attr_cols:
            raise LexiconError(f"Lexicon file {p}, {where}: attribute {attr!r} is not in the taxonomy.",
                               f"Use one of: {', '.join(taxonomy.names)}.")
        if cls is not None and (attr, cls) not in col_of:
            raise LexiconError(f"Lexicon file {p}, {where}: class {cls!r} is not a class of {attr}.",
                               f"Use one of: {', '.join(taxonomy.attribute(attr).classes)}.")

    entries: dict[str, list[tuple[int, float, bool]]] = {}
    weights = spec.scoring.weights
    for attr, classes in spec.attributes.items():
        for cls, tiers in classes.items():
            check(attr, cls, f"attributes.{attr}.{cls}")
            for tier in TIERS:
                for phrase in getattr(tiers, tier):
                    norm = normalise_phrase(phrase)
                    if not norm or len(norm.split()) > MAX_PHRASE_WORDS:
                        raise LexiconError(
                            f"Lexicon file {p}, attributes.{attr}.{cls}.{tier}: phrase {phrase!r} is empty or "
                            f"longer than {MAX_PHRASE_WORDS} words.", "Shorten or remove it.")
                    entries.setdefault(norm, []).append((col_of[(attr, cls)], weights[tier], tier == "explicit"))
    for i, r in enumerate(spec.fields):
        check(r.attribute, None, f"fields[{i}]")
        for cls in [*r.values.values(), *r.contains, *(b[2] for b in r.bins)]:
            check(r.attribute, cls, f"fields[{i}] ({r.field})")
    for r in spec.patterns:
        check(r.attribute, r.cls, f"patterns.{r.name}")
        for cls in [*r.values.values(), *(b[2] for b in r.bins)]:
            check(r.attribute, cls, f"patterns.{r.name}")
        if (r.level is None) == (r.weight is None):
            raise LexiconError(f"Lexicon file {p}, patterns.{r.name}: give exactly one of level or weight.")
    for r in spec.numbers:
        check(r.attribute, None, f"numbers.{r.name}")
        for b in r.bins:
            check(r.attribute, b[2], f"numbers.{r.name}")
    for name, tw in spec.teachers.items():
        for attr, biases in tw.class_bias.items():
            for cls in biases:
                check(attr, cls, f"teachers.{name}.class_bias")
        for attr in tw.attributes or []:
            check(attr, None, f"teachers.{name}.attributes")

    phrases = sorted(entries)
    ptr = np.zeros(len(phrases) + 1, dtype=np.int64)
    cols, wts, expl = [], [], []
    for i, ph in enumerate(phrases):
        es = entries[ph]
        ptr[i + 1] = ptr[i] + len(es)
        for c, w, e in es:
            cols.append(c)
            wts.append(w)
            expl.append(e)
    lex = Lexicon(p, taxonomy, spec, columns, col_of, attr_cols, phrases, ptr,
                  np.array(cols, dtype=np.int64), np.array(wts, dtype=np.float64), np.array(expl, dtype=bool))
    by_len: dict[int, list[int]] = {}
    for i, ph in enumerate(phrases):
        by_len.setdefault(len(ph.split(" ")), []).append(i)
    for n, ids in sorted(by_len.items()):
        lex.phrases_by_len[n] = (pa.array([phrases[i] for i in ids], pa.string()), np.array(ids, dtype=np.int64))
    firsts = sorted({ph.split(" ")[0] for ph in phrases})
    pos = {w: i for i, w in enumerate(firsts)}
    lex.first_words = pa.array(firsts, pa.string())
    lex.first_len = np.zeros((len(firsts), MAX_PHRASE_WORDS + 1), dtype=bool)
    for ph in phrases:
        words = ph.split(" ")
        lex.first_len[pos[words[0]], len(words)] = True
    return lex


def bin_class(value: float, bins: list[tuple[float, float, str]]) -> str | None:
    for lo, hi, cls in bins:
        if lo <= value < hi:
            return cls
    return None


def check_lexicons(settings: Any, teacher: str | None = None) -> None:
    """Load every lexicon the configured lexicon teachers use (or `teacher`'s) once, before any shard: a
    broken lexicon file is one error naming it, not one failed shard per teacher and shard."""
    from conf_profile.taxonomy import load_taxonomy

    taxonomy = None
    for spec in settings.labels.teachers:
        if spec.backend != "lexicon" or (teacher is not None and spec.name != teacher):
            continue
        taxonomy = taxonomy or load_taxonomy(settings.taxonomy_path)
        try:
            load_lexicon(lexicon_for(spec, settings), taxonomy)
        except LexiconError as exc:
            raise LexiconError(f"Teacher {spec.name!r}: {exc.message}", exc.fix) from None
