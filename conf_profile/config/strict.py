"""The base of every settings model: unknown keys are refused, and the refusal names the nearest valid key.

Why: a typo such as `critical_max_bad_fracton` used to be ignored silently, so the run used the default and
nobody knew. Every section derives from `Strict`; `explain()` turns pydantic's errors into one sentence per
problem with the dotted location and a "did you mean" taken from the model's own field names.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """A settings section: unknown keys are an error (see `explain`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the last key of `loc` (walking fields, list items and union tags)."""
    ann: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        models = _models_in(ann)
        tagged = [m for m in models if _tag_of(m) == part]
        if tagged:  # a discriminated union member: pydantic puts its tag (e.g. 'openai') in the location
            ann = tagged[0]
            continue
        owner = next((m for m in models if part in m.model_fields), None)
        if owner is None and typing.get_origin(ann) is dict and len(models) == 1:
            ann = models[0]  # a key of a dict of sections (source.tables.<table>)
            continue
        if owner is None:
            return None
        ann = owner.model_fields[part].annotation
    models = _models_in(ann)
    return models[0] if len(models) == 1 else None


def _tag_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("backend")
    return None if field is None else field.default


def _is_tag(root: type[BaseModel], loc: tuple[Any, ...], i: int) -> bool:
    """Is loc[i] the union tag pydantic inserts after a list index (not a key the user wrote)?"""
    if not (i and isinstance(loc[i - 1], int) and isinstance(loc[i], str)):
        return False
    owner = _model_at(root, (*loc[: i + 1], "_"))
    return owner is not None and _tag_of(owner) == loc[i]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes inside X, list[X], X | None, dict[str, X] and (annotated) unions."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def nearest_key(model: type[BaseModel] | None, key: str) -> str | None:
    if model is None:
        return None
    names = list(model.model_fields)
    hit = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return hit[0] if hit else None


def explain(exc: ValidationError, root: type[BaseModel], where: str = "the configuration") -> str:
    """One line per problem: `train.sft.epoch: unknown setting (did you mean 'epochs'?)`."""
    parts = []
    for err in exc.errors()[:6]:
        loc = tuple(err["loc"])
        shown = [x for i, x in enumerate(loc) if not _is_tag(root, loc, i)]
        dotted = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in shown).replace(".[", "[")
        if err["type"] == "extra_forbidden":
            guess = nearest_key(_model_at(root, loc), str(loc[-1]))
            hint = f" (did you mean '{guess}'?)" if guess else ""
            parts.append(f"{dotted}: unknown setting in {where}{hint}")
        else:
            parts.append(f"{dotted}: {err['msg']}" if dotted else str(err["msg"]))
    more = len(exc.errors()) - 6
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
