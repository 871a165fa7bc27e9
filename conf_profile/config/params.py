"""Run parameters: the settings one run may change, declared once and derived from the settings model.

Airflow Params (type, bounds, default, description), CLI flags, the environment of training pods
(`CONF_PROFILE_TRAIN__SFT__EPOCHS`) and `apply()` all come from `RUN_PARAMS` and the pydantic fields they
point at, so a new run parameter is one line here. `apply()` validates through the model (a bad value is
refused with the parameter's name, never cast silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from conf_profile.errors import ConfigError


@dataclass(frozen=True)
class RunParam:
    name: str  # the Param / flag name
    path: str  # dotted settings path
    title: str
    description: str


RUN_PARAMS: tuple[RunParam, ...] = (
    RunParam("teachers", "labels.teachers", "Teachers", "Teachers that label this week (names from labels.teachers)."),
    RunParam("shards", "labels.shards", "Shards",
             "User shards (documents, labels, daily profiles): one mapped documents task per shard, one label "
             "task per (teacher, shard)."),
    RunParam("student", "train.student", "Student",
             "Student preset (tiny, small), a checkpoint path or a models:/ URI."),
    RunParam("sft_epochs", "train.sft.epochs", "SFT epochs",
             "0: by compute budget (train.sft.budget_examples); > 0: fixed epochs."),
    RunParam("sft_budget", "train.sft.budget_examples", "SFT budget",
             "Example-passes of SFT when sft_epochs is 0 (steps follow the data size; docs/training.md)."),
    RunParam("rl_steps", "train.rl.steps", "GRPO steps", "0 skips GRPO: the SFT student is registered."),
    RunParam("teacher_share", "labels.teacher_budget.share", "Teacher budget (share)",
             "Share of the week's users the teachers label (empty: all); GRPO runs on the rest."),
    RunParam("warm_start", "train.warm_start", "Warm start",
             "auto: fine-tune the champion when it has this run's taxonomy and tokenizer, else cold; "
             "champion: require it; cold: train from scratch."),
)
BY_NAME = {p.name: p for p in RUN_PARAMS}
# Run controls that are not settings (they steer the run itself).
CONTROLS = ("stop_after", "force_promote")


def env_var(path: str) -> str:
    """The environment variable that sets a dotted settings path."""
    return "CONF_PROFILE_" + path.upper().replace(".", "__")


def get(settings: BaseModel, path: str) -> Any:
    obj: Any = settings
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def field_of(settings: BaseModel, path: str):
    """The pydantic FieldInfo behind a dotted path."""
    *head, last = path.split(".")
    owner: Any = settings
    for part in head:
        owner = getattr(owner, part)
    return type(owner).model_fields[last]


def apply(settings, updates: dict[str, Any]):
    """Set dotted paths (or run-parameter names) on `settings`, validated; None values are ignored.
    `teachers` takes teacher *names* and keeps those of the configured ones."""
    for key, value in updates.items():
        if value is None or value == "":
            continue
        path = BY_NAME[key].path if key in BY_NAME else key
        if path == "labels.teachers":
            _select_teachers(settings, value)
            continue
        *head, last = path.split(".")
        try:
            owner = get(settings, ".".join(head)) if head else settings
            if not hasattr(owner, last) or last not in type(owner).model_fields:
                raise ConfigError(f"Unknown setting {path!r} in the run's parameters.",
                                  "Use a dotted path from `conf-profile config --defaults`.")
            setattr(owner, last, value)
        except ValidationError as exc:
            raise ConfigError(f"Run parameter {key} = {value!r} is invalid: {exc.errors()[0]['msg']}.",
                              f"Pass a valid value for {key} ({path}).") from None
    return settings


def _select_teachers(settings, value: Any) -> None:
    wanted = [value] if isinstance(value, str) else list(value)
    known = {t.name: t for t in settings.labels.teachers}
    unknown = [t for t in wanted if t not in known]
    if unknown or not wanted:
        raise ConfigError(f"Unknown teacher(s) {unknown or wanted} in the run's parameters.",
                          f"Choose from the configured teachers: {', '.join(known)}.")
    settings.labels.teachers = [known[t] for t in wanted]


def values(settings) -> dict[str, Any]:
    """Current value of every run parameter (teachers as names)."""
    out = {}
    for p in RUN_PARAMS:
        v = get(settings, p.path)
        out[p.name] = [t.name for t in v] if p.path == "labels.teachers" else v
    return out


def json_schema(settings, p: RunParam) -> dict[str, Any]:
    """JSON-schema keywords of one parameter (what an Airflow Param takes), from the pydantic field."""
    if p.path == "labels.teachers":
        names = [t.name for t in settings.labels.teachers]
        return {"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1}
    field = field_of(settings, p.path)
    kinds = {int: "integer", float: "number", str: "string", bool: "boolean"}
    ann = field.annotation
    args = [a for a in getattr(ann, "__args__", ()) if a is not type(None)]
    if len(args) == 1 and type(None) in getattr(ann, "__args__", ()):  # Optional[X]: X or null
        out: dict[str, Any] = {"type": [kinds.get(args[0], "string"), "null"]}
    else:
        out = {"type": kinds.get(ann, "string")}
    if get_origin(ann) is Literal:
        out["enum"] = list(get_args(ann))
    for m in field.metadata:
        for attr, key in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"), ("lt", "exclusiveMaximum")):
            if getattr(m, attr, None) is not None:
                out[key] = getattr(m, attr)
    return out
