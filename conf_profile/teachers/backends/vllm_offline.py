"""`vllm` backend: offline batch generation on a GPU with `vllm.LLM`, decoding constrained to the taxonomy
JSON schema (`StructuredOutputsParams(json=schema)`, vLLM >= 0.12; the project pins 0.30 in the gpu extra).

Why offline: on a GPU pod one `llm.chat` call over a whole shard lets vLLM schedule all prompts itself
(continuous batching, prefix caching of the shared system prompt) — far faster than HTTP round trips.
The engine is created once per teacher object and reused for every shard.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from conf_profile.config import TeacherSpec
from conf_profile.errors import ConfProfileError
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.base import Documents, LLMTeacher

INSTALL_HINT = "pip install 'conf-profile[gpu]'"


def import_vllm() -> tuple[Any, Any, Any]:
    """(LLM, SamplingParams, StructuredOutputsParams), or a ConfProfileError naming the fix."""
    try:
        from vllm import LLM
        from vllm.sampling_params import SamplingParams, StructuredOutputsParams
    except ImportError as exc:
        raise ConfProfileError(
            f"The vllm teacher backend needs the vllm package, which is not installed ({exc}).",
            f"Install the GPU extra on a machine with a CUDA GPU: {INSTALL_HINT} — or use the openai backend "
            "against a `vllm serve` endpoint.",
        ) from None
    return LLM, SamplingParams, StructuredOutputsParams


class VLLMTeacher(LLMTeacher):
    backend = "vllm"

    def __init__(self, spec: TeacherSpec, taxonomy: Taxonomy):
        super().__init__(spec, taxonomy)
        if not spec.model:
            raise ConfProfileError(f"Teacher {spec.name!r} uses the vllm backend but names no model.",
                                   "Set model to a local checkpoint path (or a model id your cache holds).")
        self._LLM, self._SamplingParams, self._Structured = import_vllm()
        self._llm: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            kwargs = {"seed": self.spec.seed or 0, **self.spec.engine_kwargs}
            self._llm = self._LLM(model=self.spec.model, **kwargs)
        return self._llm

    def sampling_params(self) -> Any:
        return self._SamplingParams(
            n=max(1, self.spec.samples),
            temperature=self.spec.temperature,
            max_tokens=self.spec.max_tokens,
            seed=self.spec.seed,
            structured_outputs=self._Structured(json=self.schema),
        )

    def label(self, documents: Documents) -> pa.Table:
        documents = list(documents)
        if not documents:
            return self.rows([], [])
        conversations = [self.prompts.messages(doc) for _, doc in documents]
        try:
            results = self.llm.chat(conversations, self.sampling_params(), use_tqdm=False)
        except (ValueError, RuntimeError):
            # A request the engine refuses (e.g. a prompt longer than the context) fails the whole call;
            # fall back to one prompt at a time so only the offending users get error rows.
            results = [self._one(conv) for conv in conversations]
        outputs: list[list[str] | str] = []
        for res in results:
            if isinstance(res, str):
                outputs.append(res)
            else:
                outputs.append([c.text for c in sorted(res.outputs, key=lambda c: c.index)])
        return self.rows([u for u, _ in documents], outputs)

    def _one(self, conversation: list[dict[str, str]]) -> Any:
        try:
            return self.llm.chat([conversation], self.sampling_params(), use_tqdm=False)[0]
        except (ValueError, RuntimeError) as exc:
            return f"vllm rejected the request: {str(exc)[:200]}"
