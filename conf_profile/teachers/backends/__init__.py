"""Teacher backends and the registry that builds them.

Why a registry of "module:Class" strings: the backends import `teachers.base` (the shared LLM code), so
`base` must not import them back; and heavy imports (torch, vllm, httpx, sentence-transformers) happen only
when a teacher of that backend is built. Adding a backend = one line here + its spec model in
`conf_profile/config/teachers.py`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from conf_profile.errors import ConfProfileError

if TYPE_CHECKING:
    from conf_profile.config import Settings, TeacherSpec
    from conf_profile.taxonomy import Taxonomy
    from conf_profile.teachers.base import Teacher

BACKENDS: dict[str, str] = {
    "lexicon": "conf_profile.teachers.backends.lexicon:LexiconTeacher",
    "openai": "conf_profile.teachers.backends.openai_chat:OpenAITeacher",
    "vllm": "conf_profile.teachers.backends.vllm_offline:VLLMTeacher",
    "hf": "conf_profile.teachers.backends.hf_local:HFTeacher",
    "embedding": "conf_profile.teachers.backends.embedding:EmbeddingTeacher",
}


def backend_class(backend: str) -> type:
    """The class of a backend, imported on first use."""
    target = BACKENDS.get(backend)
    if target is None:
        raise ConfProfileError(f"Unknown teacher backend {backend!r}.",
                               f"Use one of: {', '.join(BACKENDS)}.")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_teacher(spec: TeacherSpec, taxonomy: Taxonomy, settings: Settings | None = None) -> Teacher:
    """Build the teacher named by `spec.backend`. A backend whose constructor wants the settings (the
    openai backend falls back to compute.vllm_base_url) declares `from_settings(spec, taxonomy, settings)`."""
    if spec.backend not in BACKENDS:
        raise ConfProfileError(f"Teacher {spec.name!r} names an unknown backend {spec.backend!r}.",
                               f"Use one of: {', '.join(BACKENDS)}.")
    cls = backend_class(spec.backend)
    factory = getattr(cls, "from_settings", None)
    if factory is not None:
        return factory(spec, taxonomy, settings)
    return cls(spec, taxonomy)


__all__ = ["BACKENDS", "backend_class", "make_teacher"]
