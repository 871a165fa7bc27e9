"""The base of every settings model: unknown keys are refused, and the refusal names the nearest valid key.

Why: a typo such as `critical_max_bad_fracton` used to be ignored silently, so the run used the default and
nobody knew. Every section derives from `Strict`; `explain()` turns pydantic's errors into one sentence per
problem with the dotted location and a "did you mean" taken from the model's own field names.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """A settings section: unknown keys are an error (see `explain`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the last key of `loc` (walking fields, list items and union tags)."""
    from conf_profile.config import teachers

    model: Any = root
    for i, part in enumerate(loc[:-1]):
        if isinstance(part, int):
            continue
        if i and isinstance(loc[i - 1], int) and _is_tag(part):
            model = teachers.SPECS[part]  # pydantic puts the union tag (e.g. 'openai') in the location
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        model = _inner_model(fields[part].annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _is_tag(part: Any) -> bool:
    from conf_profile.config import teachers

    return isinstance(part, str) and part in teachers.SPECS


def _inner_model(annotation: Any) -> Any:
    """BaseModel class inside list[X], X | None, dict[str, X], Annotated unions (first model found)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


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
        shown = [x for i, x in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and _is_tag(x))]
        dotted = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in shown).replace(".[", "[")
        if err["type"] == "extra_forbidden":
            guess = nearest_key(_model_at(root, loc), str(loc[-1]))
            hint = f" (did you mean '{guess}'?)" if guess else ""
            parts.append(f"{dotted}: unknown setting in {where}{hint}")
        else:
            parts.append(f"{dotted}: {err['msg']}")
    more = len(exc.errors()) - 6
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
