"""The teacher interface and the shared LLM teacher code (the backend registry is `teachers.backends`).

A teacher turns (user_id, document) pairs into rows of schema.TEACHER_OUTPUT_SCHEMA. Every user gets
`samples x attributes` rows, whatever happens: a failed request or an unparseable answer becomes rows whose
`error` says why (never a crash of the batch, never a silently missing user).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.parse import RowBuffer, parse_answer
from conf_profile.teachers.prompt import PromptBuilder

if TYPE_CHECKING:
    from conf_profile.config import TeacherSpec

Documents = Sequence[tuple[str, str]]


@runtime_checkable
class Teacher(Protocol):
    name: str

    def label(self, documents: Documents) -> pa.Table:
        """Rows of TEACHER_OUTPUT_SCHEMA for these (user_id, document) pairs."""
        ...


class LLMTeacher:
    """Shared part of the LLM backends: the prompt, the parser, and assembling rows from raw outputs."""

    backend = "llm"

    def __init__(self, spec: TeacherSpec, taxonomy: Taxonomy):
        self.spec = spec
        self.name = spec.name
        self.taxonomy = taxonomy
        self.prompts = PromptBuilder(taxonomy, confidence="level", rationale=True)
        self.schema = taxonomy.json_schema(confidence="level", rationale=True)

    def describe(self) -> dict:
        """What goes into the shard manifest (lineage)."""
        return {"backend": self.backend, "model": self.spec.model, "prompt_version": self.prompts.version,
                "samples": self.spec.samples, "temperature": self.spec.temperature}

    def rows(self, user_ids: Sequence[str], outputs: Sequence[Sequence[str] | str]) -> pa.Table:
        """`outputs[i]` holds the raw completions of user i (one per sample), or an error reason (str)
        when the request failed. Missing samples become error rows too."""
        buf = RowBuffer(self.taxonomy, self.name)
        n = max(1, self.spec.samples)
        for uid, out in zip(user_ids, outputs, strict=True):
            if isinstance(out, str):
                for k in range(n):
                    buf.add_error(uid, k, out)
                continue
            for k in range(n):
                if k < len(out) and out[k] is not None:
                    buf.add(uid, k, parse_answer(out[k], self.taxonomy, "level"), out[k])
                else:
                    buf.add_error(uid, k, f"backend returned {len(out)} of {n} samples")
        return buf.to_table()

    def label_table(self, documents: pa.Table) -> pa.Table:
        return self.label(list(zip(documents["user_id"].to_pylist(), documents["document"].to_pylist(),
                                   strict=True)))

    def label(self, documents: Documents) -> pa.Table:  # pragma: no cover - implemented by backends
        raise NotImplementedError


def label_table(teacher: Teacher, documents: pa.Table) -> pa.Table:
    """Run a teacher on a DOCUMENT_SCHEMA table (vectorised backends take the table as is)."""
    fn = getattr(teacher, "label_table", None)
    if fn is not None:
        return fn(documents.select(["user_id", "document"]))
    docs = pc.fill_null(documents["document"], "")
    return teacher.label(list(zip(documents["user_id"].to_pylist(), docs.to_pylist(), strict=True)))
