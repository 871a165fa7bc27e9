"""Weekly warm start: fine-tune this week's student from the registered champion instead of from scratch.

Why a compatibility check: weights are only meaningful with the tokenizer (token ids) and the taxonomy (the
answer format: attribute names and classes) they were trained with. Every registered version carries both
hashes as tags (stages/register.py); a champion whose hashes differ from this run's, that was trained on a
student of another kind, or on this very week or a later one (a rerun or a backfill), is refused, and the run
starts cold saying why (`train.warm_start: auto`) or fails naming the fix (`champion`). The champion is pinned
by version number (`models:/name/N`) at decision time, so the summary and the tags say exactly where the
weights came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conf_profile.config import Settings
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.taxonomy import Taxonomy

# Tags a registered version needs to be a warm-start source (written by stages/register.py).
TAXONOMY_TAG, TOKENIZER_TAG, BASE_TAG, FROM_TAG = "taxonomy_hash", "tokenizer_hash", "student_base", "warm_start_from"


_REQUESTED = "cold: train.warm_start is cold (requested)"
_KEPT = " (kept from this run's earlier attempt; warm_start=champion decides again)"


class WarmStartRefused(ConfProfileError):
    """train.warm_start is `champion` but the champion cannot be continued."""


@dataclass(frozen=True)
class WarmStart:
    """Where SFT starts: the champion's local HF folder (`source`, warm) or the untrained base (cold)."""

    mode: str  # the setting: auto | champion | cold
    source: Path | None
    ref: str | None  # models:/name/N when warm
    reason: str  # why cold, or which champion

    @property
    def warm(self) -> bool:
        return self.source is not None

    @property
    def tag(self) -> str:
        """The `warm_start_from` tag/param: `models:/name/N` or `cold: <reason>`."""
        return self.ref if self.warm and self.ref else f"cold: {self.reason}"


def taxonomy_hash(tax: Taxonomy) -> str:
    """Identity of the answer format a model learned: attribute names, kinds, classes, label caps (descriptions
    only steer teachers, so they are left out)."""
    spec = [(a.name, a.kind, list(a.classes), a.max_labels) for a in tax.attributes]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def incompatibilities(tags: dict[str, str], expected: dict[str, str]) -> list[str]:
    """Why a version with `tags` cannot be continued by a run with `expected` hashes; [] = compatible."""
    why = []
    names = {TAXONOMY_TAG: "taxonomy", TOKENIZER_TAG: "tokenizer", BASE_TAG: "student"}
    for key, want in expected.items():
        have = tags.get(key)
        if not have:
            why.append(f"it has no {key} tag (registered before warm starts existed)")
        elif have != want:
            why.append(f"its {names.get(key, key)} differs ({key} {have} vs this run's {want})")
    return why


def _store_exists(settings: Settings) -> bool:
    """False for a local SQLite store that was never created: nothing was registered (and none is made here)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.mlflow_tracking_uri
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def _client(settings: Settings):
    from mlflow import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=settings.mlflow.registry_uri or uri)


def _champion(settings: Settings) -> Any | None:
    """The champion's model version, or None when there is no registered model or no alias."""
    from mlflow.exceptions import MlflowException

    try:
        return _client(settings).get_model_version_by_alias(settings.mlflow.model_name, "champion")
    except MlflowException:
        return None


def _pinned(settings: Settings, ref: str | None) -> Any | None:
    """The version an earlier attempt of this run started from (`models:/name/N`), if it still exists."""
    from mlflow.exceptions import MlflowException

    prefix = f"models:/{settings.mlflow.model_name}/"
    if not ref or not ref.startswith(prefix):
        return None
    try:
        return _client(settings).get_model_version(settings.mlflow.model_name, ref.removeprefix(prefix))
    except MlflowException:
        return None


def decide(settings: Settings, interval: Interval, expected: dict[str, str], cache: Path,
           champion: Any | None = None, lookup: bool = True, pinned: str | None = None) -> WarmStart:
    """Decide warm or cold for this run. `expected`: this run's {taxonomy_hash, tokenizer_hash, student_base}.
    In `auto` every refusal is a cold start with its reason; in `champion` it raises WarmStartRefused.
    `pinned`: where an earlier attempt of this run started (its committed SFT meta): a rerun starts from the
    same version even after this week's model became the champion, and cold again in `auto` after a cold
    attempt even if a champion appeared since, so reruns give the same model."""
    from conf_profile.train import student
    from conf_profile.train.tokenizer import tokenizer_hash

    mode = settings.train.warm_start
    name = settings.mlflow.model_name
    if mode == "cold":
        return WarmStart(mode, None, None, _REQUESTED.removeprefix("cold: "))

    def refuse(reason: str, fix: str) -> WarmStart:
        if mode == "champion":
            raise WarmStartRefused(f"train.warm_start is champion, but {reason}.", fix)
        return WarmStart(mode, None, None, reason)

    if mode == "auto" and pinned and pinned.startswith("cold: ") and not pinned.startswith(_REQUESTED):
        # The earlier attempt of this run started cold: so does the rerun, even if a champion appeared since
        # (a backfill promoted meanwhile), or the rerun would train another model and register a second version.
        return WarmStart(mode, None, None, pinned.removeprefix("cold: ").removesuffix(_KEPT) + _KEPT)
    cold = "set train.warm_start: cold (run parameter warm_start=cold) to train from scratch"
    if champion is None and lookup and _store_exists(settings):
        try:
            champion = _pinned(settings, pinned) or _champion(settings)
        except Exception as exc:  # noqa: BLE001 - an unreachable tracking server: say so, start cold in auto
            return refuse(f"the MLflow registry could not be read ({type(exc).__name__}: {str(exc)[:200]})",
                          f"Check mlflow.tracking_uri, or {cold}.")
    if champion is None:
        return refuse(f"{name} has no champion yet", f"Register and promote a model first, or {cold}.")
    ref = f"models:/{name}/{champion.version}"
    tags = dict(champion.tags or {})
    why = incompatibilities(tags, expected)
    trained = tags.get("data_interval")
    try:
        if trained and Interval.parse(trained).start >= interval.start:
            why.append(f"it was trained on {trained}, not before {interval} (a rerun or a backfill)")
    except ConfProfileError:
        why.append(f"its data_interval tag {trained!r} is not an interval")
    if why:
        return refuse(f"champion {ref} is incompatible: {'; '.join(why)}",
                      f"To train anyway, {cold}; a new taxonomy or tokenizer version always starts cold "
                      "(docs/training.md, Warm start).")
    source = student.resolve(ref, settings, cache=cache)
    from transformers import AutoTokenizer

    got = tokenizer_hash(AutoTokenizer.from_pretrained(source))
    if got != expected.get(TOKENIZER_TAG):
        return refuse(f"champion {ref} is incompatible: its saved tokenizer hashes to {got}, not "
                      f"{expected.get(TOKENIZER_TAG)} (its tag says {tags.get(TOKENIZER_TAG)})", f"Re-register the champion, or {cold}.")
    return WarmStart(mode, source, ref, f"the champion, trained on {trained or 'an unknown interval'}")
