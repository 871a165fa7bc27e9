"""`hf` backend: a local transformers checkpoint (a folder), CPU-capable.

Why it exists: a team without a GPU server can still run a real (small) LLM teacher, and it is the same
code path the student evaluation uses. Prompts go through the tokenizer's chat template when it has one
(else the plain-text prompt), are left-padded so that batched generation continues each prompt at its own
end, and every completion goes through the shared parser. No structured decoding here: the parser is the
guard, and malformed answers become error rows.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from conf_profile.config import TeacherSpec
from conf_profile.errors import ConfProfileError
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.base import Documents, LLMTeacher


class HFTeacher(LLMTeacher):
    backend = "hf"

    def __init__(self, spec: TeacherSpec, taxonomy: Taxonomy, model: Any = None, tokenizer: Any = None):
        super().__init__(spec, taxonomy)
        if model is None and not spec.model:
            raise ConfProfileError(f"Teacher {spec.name!r} uses the hf backend but names no model.",
                                   "Set model to a local folder saved with save_pretrained().")
        self._model = model
        self._tokenizer = tokenizer

    def _load(self) -> tuple[Any, Any]:
        if self._model is None or self._tokenizer is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                tok = self._tokenizer or AutoTokenizer.from_pretrained(self.spec.model)
                model = self._model or AutoModelForCausalLM.from_pretrained(self.spec.model, **self.spec.engine_kwargs)
            except OSError as exc:
                raise ConfProfileError(f"Teacher {self.name!r}: cannot load the model at {self.spec.model!r} ({exc}).",
                                       "Point model at a local folder holding config.json, weights and tokenizer.") from None
            if "device_map" not in self.spec.engine_kwargs:
                model.to("cuda" if torch.cuda.is_available() else "cpu")
            model.eval()
            self._model, self._tokenizer = model, tok
        tok = self._tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return self._model, tok

    def prompt(self, document: str) -> str:
        _, tok = self._load()
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(self.prompts.messages(document), tokenize=False,
                                           add_generation_prompt=True)
        return self.prompts.text(document)

    def label(self, documents: Documents) -> pa.Table:
        documents = list(documents)
        outputs: list[list[str] | str] = []
        bs = max(1, self.spec.batch_size)
        for start in range(0, len(documents), bs):
            batch = documents[start:start + bs]
            try:
                outputs.extend(self._generate([doc for _, doc in batch]))
            except (RuntimeError, ValueError, IndexError) as exc:  # e.g. a prompt beyond the context size
                outputs.extend([f"generation failed: {type(exc).__name__}: {str(exc)[:160]}"] * len(batch))
        return self.rows([u for u, _ in documents], outputs)

    def _generate(self, docs: list[str]) -> list[list[str]]:
        import torch

        model, tok = self._load()
        n = max(1, self.spec.samples)
        sample = self.spec.temperature > 0
        enc = tok([self.prompt(d) for d in docs], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.spec.max_tokens,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": model.generation_config.eos_token_id or tok.eos_token_id,
        }
        if sample:
            kwargs.update(do_sample=True, temperature=self.spec.temperature, top_p=1.0, top_k=0,
                          num_return_sequences=n)
            if self.spec.seed is not None:
                torch.manual_seed(self.spec.seed)
        else:
            kwargs.update(do_sample=False)  # greedy: every sample would be identical, generate once
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        per = n if sample else 1
        grouped = [texts[i * per:(i + 1) * per] for i in range(len(docs))]
        return grouped if sample else [g * n for g in grouped]
