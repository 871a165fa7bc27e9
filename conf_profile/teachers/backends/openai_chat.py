"""`openai` backend: any OpenAI-compatible chat-completions server (`vllm serve`, TGI, a hosted API).

Why these mechanics: a week of users means many thousands of requests against a server that will sometimes
be slow or restart. Concurrency is bounded (`max_concurrency` workers share one HTTP/1.1 connection pool);
timeouts (`timeout_s`: a total deadline per attempt), connection errors, 429 and 5xx are retried `max_retries` times with exponential backoff and
jitter (half fixed, half random, so a restarted server is not hit by a synchronized wave); a request that
still fails becomes error rows for its user ("timeout after 3 retries"), and the batch goes on. Answers are constrained with
`response_format` = the taxonomy's JSON schema and still go through the shared parser, because not every
server enforces the schema. The API key comes from the OPENAI_API_KEY environment variable only.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pyarrow as pa

from conf_profile.config import Settings, TeacherSpec
from conf_profile.errors import ConfProfileError
from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.base import Documents, LLMTeacher

T = TypeVar("T")
BACKOFF_CAP_S = 30.0


class _Retryable(Exception):
    """A failure worth retrying; `kind` names it in the final error reason."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


class OpenAITeacher(LLMTeacher):
    backend = "openai"
    api_key_env = "OPENAI_API_KEY"  # the environment variable holding the key (the student backend names its own)

    def __init__(self, spec: TeacherSpec, taxonomy: Taxonomy, base_url: str | None = None):
        super().__init__(spec, taxonomy)
        base_url = base_url or spec.base_url
        if not base_url:
            raise ConfProfileError(
                f"Teacher {spec.name!r} uses the openai backend but has no base_url.",
                "Set base_url in its labels.teachers entry (e.g. http://127.0.0.1:8000/v1 for `vllm serve`) "
                "or compute.vllm_base_url.",
            )
        if not spec.model:
            raise ConfProfileError(f"Teacher {spec.name!r} uses the openai backend but names no model.",
                                   "Set model to the served model name (see GET <base_url>/models).")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.requests_sent = 0  # every HTTP attempt, retries included (tests and logs)
        self._rng = random.Random(spec.seed)

    @classmethod
    def from_settings(cls, spec: TeacherSpec, taxonomy: Taxonomy, settings: Settings | None) -> OpenAITeacher:
        """The registry's constructor: without its own base_url the teacher uses compute.vllm_base_url."""
        base_url = spec.base_url or (settings.compute.vllm_base_url if settings is not None else None)
        return cls(spec, taxonomy, base_url=base_url)

    def describe(self) -> dict:
        return {**super().describe(), "base_url": self.url.rsplit("/chat/completions", 1)[0]}

    def payload(self, document: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": self.prompts.messages(document),
            "temperature": self.spec.temperature,
            "n": max(1, self.spec.samples),
            "max_tokens": self.spec.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "profile_answer", "schema": self.schema, "strict": True},
            },
        }
        if self.spec.seed is not None:
            body["seed"] = self.spec.seed
        return body

    def label(self, documents: Documents) -> pa.Table:
        documents = list(documents)
        outputs = _run(self._label_all(documents))
        return self.rows([u for u, _ in documents], outputs)

    async def _label_all(self, documents: list[tuple[str, str]]) -> list[list[str] | str]:
        results: list[list[str] | str] = [""] * len(documents)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        workers = max(1, min(self.spec.max_concurrency, len(documents)))
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        # A semaphore caps requests in flight; a fixed pool of workers over an index keeps memory flat
        # for shards of any size (no coroutine per user created up front).
        sem = asyncio.Semaphore(self.spec.max_concurrency)
        next_idx = iter(range(len(documents)))
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.spec.timeout_s), headers=headers,
                                     limits=limits) as client:

            async def worker() -> None:
                for i in next_idx:
                    results[i] = await self._one(client, sem, documents[i][1])

            await asyncio.gather(*(worker() for _ in range(workers)))
        return results

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, document: str) -> list[str] | str:
        """Completions of one user (one per sample), or the error reason after the last retry."""
        body = self.payload(document)
        retries = max(0, self.spec.max_retries)
        last: _Retryable | None = None
        for attempt in range(retries + 1):
            if attempt:
                cap = min(BACKOFF_CAP_S, self.spec.retry_backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(self._rng.uniform(cap / 2, cap))
            try:
                async with sem:
                    self.requests_sent += 1
                    return await self._request(client, body)
            except _Retryable as exc:
                last = exc
            except ConfProfileError as exc:  # not retryable (4xx): the request itself is wrong
                return exc.message
        assert last is not None
        detail = f": {last.detail}" if last.detail else ""
        return f"{last.kind} after {retries} retries{detail}"

    async def _request(self, client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
        # httpx's timeout bounds each read, not the request: a server that drips its reply byte by byte
        # would hold it for ever. `timeout_s` is a total deadline per attempt.
        try:
            resp = await asyncio.wait_for(client.post(self.url, json=body), timeout=self.spec.timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            raise _Retryable("timeout") from None
        except httpx.TransportError as exc:
            raise _Retryable("connection error", type(exc).__name__) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise ConfProfileError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = resp.json()
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            return [c["message"]["content"] or "" for c in choices]
        except (ValueError, KeyError, TypeError, AttributeError):
            # A broken envelope is the server's fault (a proxy cut the body, a crash mid-reply): retry.
            raise _Retryable("malformed response") from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from code that already runs an event loop (a notebook): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
