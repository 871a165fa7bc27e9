"""Where the student's answers come from: batched transformers, vLLM offline, or an OpenAI-compatible server.

Why one small protocol: the prompt (train.data.messages, the student's chat format), the parser and the
self-consistency vote are the same whatever generates the text, so a backend only turns documents into raw
answers — `generate(documents, n)` gives, per document, n answers (greedy when n = 1, sampled at
`inference.temperature` otherwise), or one string naming why that document's request failed (openai only).
Heavy imports (torch, vllm, httpx) happen only when a backend of that kind is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from conf_profile.config import Settings
from conf_profile.errors import ConfProfileError
from conf_profile.secrets import redact_url
from conf_profile.taxonomy import Taxonomy
from conf_profile.train.data import messages

OPENAI_DEFAULT_MAX_TOKENS = 512  # no tokenizer on the client side to size the longest answer


class InferenceServerError(ConfProfileError):
    """The student server is down or failed too many users: a retry of the task may succeed."""

    outcome = "retry"


class Backend(Protocol):
    name: str

    def generate(self, documents: list[str], n: int) -> list[list[str] | str]:
        """Per document: n raw answers, or the reason its request failed."""
        ...


def temperature_of(settings: Settings, n: int) -> float:
    """Greedy for one answer, `inference.temperature` for the k samples of the vote."""
    return settings.inference.temperature if n > 1 else 0.0


class LocalBackend:
    """The student in this process (CPU, or the first GPU when there is one): student_eval.generate, the
    batched generation the evaluation uses, so inference and evaluation decode the same way."""

    name = "local"

    def __init__(self, folder: Path, taxonomy: Taxonomy, settings: Settings):
        from conf_profile.train import runtime, student
        from conf_profile.train.student_eval import answer_budget

        self.settings = settings
        self.model, self.tok = student.load(folder)
        if runtime.has_gpu():
            self.model = self.model.to("cuda")
        self.max_tokens = settings.inference.max_tokens or answer_budget(self.tok, taxonomy)
        self.batch_size = settings.inference.batch_size or settings.compute.inference_batch_size

    def generate(self, documents: list[str], n: int) -> list[list[str] | str]:
        from conf_profile.train.student_eval import generate

        if n > 1 and self.settings.inference.seed is not None:
            import torch

            torch.manual_seed(self.settings.inference.seed)
        return list(generate(self.model, self.tok, documents, self.max_tokens, self.batch_size,
                             samples=n if n > 1 else 0, temperature=self.settings.inference.temperature,
                             desc="profile"))


def import_vllm() -> tuple[Any, Any]:
    """(LLM, SamplingParams), or a ConfProfileError naming the GPU extra."""
    from conf_profile.teachers.backends.vllm_offline import INSTALL_HINT

    try:
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        raise ConfProfileError(
            f"inference.backend 'vllm' needs the vllm package, which is not installed ({exc}).",
            f"Install the GPU extra on a machine with a CUDA GPU: {INSTALL_HINT} — or set inference.backend to "
            "'local' (transformers) or 'openai' (a `vllm serve` endpoint).",
        ) from None
    return LLM, SamplingParams


class VLLMBackend:
    """vllm.LLM offline on the GPU pod of an inference shard: one `chat` call per batch lets vLLM schedule
    the prompts itself (continuous batching, prefix caching of the shared system prompt). Unconstrained
    decoding, like the local backend: the student was trained to write the answer format."""

    name = "vllm"

    def __init__(self, folder: Path, taxonomy: Taxonomy, settings: Settings):
        from transformers import AutoTokenizer

        from conf_profile.train.student_eval import answer_budget

        self._LLM, self._SamplingParams = import_vllm()
        self.folder = folder
        self.settings = settings
        self.max_tokens = settings.inference.max_tokens or answer_budget(AutoTokenizer.from_pretrained(folder),
                                                                         taxonomy)
        self._llm: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            inf = self.settings.inference
            self._llm = self._LLM(model=str(self.folder), seed=inf.seed or 0, **inf.engine_kwargs)
        return self._llm

    def sampling_params(self, n: int) -> Any:
        return self._SamplingParams(n=n, temperature=temperature_of(self.settings, n), max_tokens=self.max_tokens,
                                    seed=self.settings.inference.seed)

    def generate(self, documents: list[str], n: int) -> list[list[str] | str]:
        if not documents:
            return []
        conversations = [messages(d) for d in documents]
        params = self.sampling_params(n)
        try:
            results: list[Any] = self.llm.chat(conversations, params, use_tqdm=False)
        except (ValueError, RuntimeError):
            # One prompt the engine refuses (longer than the context) fails the whole call: one at a time,
            # so only that user fails.
            results = [self._one(c, params) for c in conversations]
        return [r if isinstance(r, str) else [c.text for c in sorted(r.outputs, key=lambda c: c.index)]
                for r in results]

    def _one(self, conversation: list[dict[str, str]], params: Any) -> Any:
        try:
            return self.llm.chat([conversation], params, use_tqdm=False)[0]
        except (ValueError, RuntimeError) as exc:
            return f"vllm rejected the request: {str(exc)[:200]}"


class OpenAIBackend:
    """An OpenAI-compatible chat-completions server (`vllm serve` of the champion). The HTTP mechanics —
    bounded concurrency, a total deadline per attempt, retries with jittered backoff on timeouts, 429 and 5xx —
    are the teacher client's (teachers/backends/openai_chat.py); only the request body differs: the
    student's prompt, `n` = samples, no response_format (the student writes its own format)."""

    name = "openai"

    def __init__(self, settings: Settings, taxonomy: Taxonomy):
        inf = settings.inference
        if not inf.base_url:
            raise ConfProfileError("inference.backend is 'openai' but inference.base_url is not set.",
                                   "Set inference.base_url to the student server (e.g. http://vllm-student:8000/v1 "
                                   "for the compose/helm `vllm-student` service).")
        self.settings = settings
        self.taxonomy = taxonomy
        self.base_url = inf.base_url.rstrip("/")
        self._clients: dict[int, Any] = {}
        self.checked = False

    def client(self, n: int) -> Any:
        if n not in self._clients:
            self._clients[n] = _student_client(self.settings, self.taxonomy, n)
        return self._clients[n]

    @property
    def requests_sent(self) -> int:
        return sum(c.requests_sent for c in self._clients.values())

    def check(self) -> None:
        """Fail fast, before thousands of requests each retried: is the server up, and does it serve the model?"""
        import httpx

        inf = self.settings.inference
        where = redact_url(self.base_url)
        fix = ("Start the student server (`docker compose --profile student up -d vllm-student`, or helm "
               "studentServer.enabled=true) or point inference.base_url at it; inference.backend 'local' needs "
               "no server.")
        headers = {}
        key = _api_key(inf.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            resp = httpx.get(f"{self.base_url}/models", headers=headers, timeout=min(inf.timeout_s, 10.0))
        except httpx.HTTPError as exc:
            raise InferenceServerError(f"The student server at {where} is not reachable ({type(exc).__name__}).",
                                       fix) from None
        if resp.status_code in (401, 403):
            raise ConfProfileError(f"The student server at {where} refused the API key (HTTP {resp.status_code}).",
                                   f"Set the key in the environment variable {inf.api_key_env} "
                                   "(inference.api_key_env), the one the server was started with.")
        if resp.status_code == 200:
            try:
                served = [m["id"] for m in resp.json().get("data", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                served = []
            if served and inf.model not in served:
                raise ConfProfileError(f"The student server at {where} serves {', '.join(served)}, not "
                                       f"inference.model {inf.model!r}.",
                                       "Set inference.model to the server's --served-model-name.")
        self.checked = True

    def generate(self, documents: list[str], n: int) -> list[list[str] | str]:
        from conf_profile.teachers.backends.openai_chat import _run

        if not documents:
            return []
        if not self.checked:
            self.check()
        client = self.client(n)
        return _run(client._label_all([("", d) for d in documents]))


def _api_key(env: str) -> str | None:
    import os

    return os.environ.get(env) or None


def _student_client(settings: Settings, taxonomy: Taxonomy, n: int) -> Any:
    """The teacher's HTTP client with the student's request body (built lazily: httpx only when used)."""
    from conf_profile.config.teachers import OpenAITeacher as OpenAISpec
    from conf_profile.teachers.backends.openai_chat import OpenAITeacher

    inf = settings.inference

    class StudentClient(OpenAITeacher):
        api_key_env = inf.api_key_env

        def payload(self, document: str) -> dict[str, Any]:
            body: dict[str, Any] = {"model": inf.model, "messages": messages(document),
                                    "temperature": temperature_of(settings, n), "n": n,
                                    "max_tokens": inf.max_tokens or OPENAI_DEFAULT_MAX_TOKENS}
            if inf.seed is not None:
                body["seed"] = inf.seed
            return body

    spec = OpenAISpec(name="student", model=inf.model, base_url=inf.base_url, samples=n,
                      max_concurrency=inf.max_concurrency, timeout_s=inf.timeout_s, max_retries=inf.max_retries,
                      retry_backoff_s=inf.retry_backoff_s, seed=inf.seed)
    return StudentClient(spec, taxonomy)


def make_backend(settings: Settings, model_ref: str, taxonomy: Taxonomy, cache: Path | None = None) -> Backend:
    """The configured backend for `model_ref` (an HF folder or an MLflow URI such as models:/name/3). The
    openai backend talks to whatever the server serves (inference.model); the others load the model here."""
    backend = settings.inference.backend
    if backend == "openai":
        return OpenAIBackend(settings, taxonomy)
    if backend == "vllm":
        import_vllm()  # before downloading a model the engine could not run
    from conf_profile.train import student

    folder = student.resolve(model_ref, settings, cache=cache)
    if backend == "vllm":
        return VLLMBackend(folder, taxonomy, settings)
    return LocalBackend(folder, taxonomy, settings)
