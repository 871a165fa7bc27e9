"""Inference backends: the local backend reproduces today's pyfunc path, the OpenAI backend speaks to a (fake)
server with retries, samples and a clear error when it is down, vLLM fails clearly without the GPU extra and
drives vllm.LLM as documented, and the k-sample vote on hand-made answers."""

from __future__ import annotations

import json
import socket
import sys
import time
import types

import fault_server
import pyarrow as pa
import pytest
from fault_server import FaultServer

from conf_profile.config import Settings
from conf_profile.errors import ConfigError, ConfProfileError
from conf_profile.inference import (
    InferenceServerError,
    OpenAIBackend,
    VLLMBackend,
    import_vllm,
    make_backend,
    parse_samples,
    profile_documents,
)
from conf_profile.inference.profile import summary_text
from conf_profile.taxonomy import load_taxonomy
from conf_profile.train.data import messages
from conf_profile.train.student_eval import predictions

TAX = load_taxonomy()
DOCS = ["## profile\nnickname: ⟦sunny_cat⟧\nbio: ⟦mom of two, love baking⟧",
        "## searches\n- ⟦best stroller 2026⟧\n- ⟦elden ring boss guide⟧",
        "## watch\n- ⟦speedrun any%⟧ x3\n- ⟦cat videos⟧",
        "## comments\n- ⟦great recipe, my kids loved it⟧"]


def _answer(gender: str, conf: float, interests: list[str] | None = None) -> str:
    out = {"gender": {"label": gender, "confidence": conf}}
    if interests is not None:
        out["interests"] = {"label": interests, "confidence": conf}
    return json.dumps(out)


# ---- the vote --------------------------------------------------------------------------------------------

def test_k_sample_vote_on_hand_made_answers():
    user = [_answer("female", 0.9, ["gaming"]), _answer("female", 0.6, ["gaming", "beauty_fashion"]),
            _answer("male", 0.8), "no json at all"]
    [voted], valid = parse_samples([user], TAX, vote=True)
    assert voted.labels["gender"] == "female"  # 0.9 + 0.6 outweighs 0.8
    # mean stated confidence of the k samples, a disagreeing (or silent) sample counting 0
    assert voted.confidences["gender"] == pytest.approx((0.9 + 0.6) / 4)
    assert voted.labels["interests"] == ["gaming"]
    assert "age_group" not in voted.labels  # nobody answered: an abstention
    assert valid == 0.0  # no sample answered every attribute
    table = predictions(["u1"], [voted], TAX)
    rows = {r["attribute"]: r for r in table.to_pylist()}
    assert rows["gender"]["label"] == ["female"] and rows["age_group"] == {
        "user_id": "u1", "attribute": "age_group", "label": ["unknown"], "confidence": 0.0}
    [first], _ = parse_samples([user], TAX, vote=False)  # samples=1: the (only) answer as it is
    assert first.confidences["gender"] == pytest.approx(0.9)


# ---- settings ---------------------------------------------------------------------------------------------

def test_inference_settings_are_strict_and_keep_secrets_out(tmp_path):
    s = Settings()
    assert s.inference.backend == "local" and s.inference.samples == 1 and s.inference.api_key_env == "OPENAI_API_KEY"
    bad = tmp_path / "bad.yaml"
    bad.write_text("inference: {bakend: vllm}\n")
    with pytest.raises(ConfigError, match=r"inference.bakend: unknown setting.*did you mean 'backend'"):
        Settings.load(bad)
    leak = tmp_path / "leak.yaml"
    leak.write_text("inference: {backend: openai, api_key: sk-very-secret}\n")
    with pytest.raises(ConfigError, match=r"holds credentials \(inference.api_key\)") as exc:
        Settings.load(leak)
    assert "sk-very-secret" not in str(exc.value)
    with pytest.raises(ConfigError, match="samples"):
        Settings(inference={"samples": 0}) if False else Settings.load(_yaml(tmp_path, "inference: {samples: 0}"))


def _yaml(tmp_path, text: str):
    p = tmp_path / "s.yaml"
    p.write_text(text + "\n")
    return p


# ---- local backend == today's infer path -----------------------------------------------------------------

def _todays_path(model, users: list[str], texts: list[str], bs: int, taxonomy) -> tuple[pa.Table, list[str]]:
    """stages/infer.py `profiles` before the backends: pyfunc predict per batch, shared parser, predictions
    (and the raw answers)."""
    from conf_profile.teachers.parse import parse_answer
    from conf_profile.train.rewards import Rollout

    parts, raw = [], []
    for start in range(0, len(users), bs):
        raw += [str(t) for t in model.predict(texts[start:start + bs])]
        parsed = [parse_answer(t, taxonomy, confidence="probability") for t in raw[start:start + bs]]
        rollouts = [Rollout(dict(p.labels), dict(p.confidences), p.error is None) for p in parsed]
        parts.append(predictions(users[start:start + bs], rollouts, taxonomy))
    return pa.concat_tables(parts), raw


MINI_TAXONOMY = """name: mini
unknown: unknown
attributes:
  - {name: gender, kind: single, classes: [male, female]}
  - {name: interests, kind: multi, max_labels: 2, classes: [gaming, cooking]}
"""


def _noisy_tiny_student(folder):
    """The tiny preset with louder random weights: varied text (an untrained preset writes only newlines),
    answers to a two-attribute taxonomy keep every generation short (the budget is the longest answer)."""
    import torch
    from transformers import AutoModelForCausalLM

    from conf_profile.train import student

    student.build_preset("tiny", DOCS * 10 + [_answer("female", 0.8, ["gaming"])] * 20, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_local_backend_gives_todays_rows(mlflow_tracking, tmp_settings, tmp_path, monkeypatch):
    import mlflow
    import mlflow.pyfunc

    from conf_profile.cli import main
    from conf_profile.registry import models

    bs = 2
    (tmp_path / "mini.yaml").write_text(MINI_TAXONOMY)
    mini = load_taxonomy(tmp_path / "mini.yaml")
    tmp_settings.taxonomy_path = tmp_path / "mini.yaml"
    folder = _noisy_tiny_student(tmp_path / "tiny")
    with mlflow.start_run(experiment_id=mlflow_tracking.experiment_id) as run:
        info = models.log_student(folder, tmp_settings.taxonomy_path, batch_size=bs)
    name = tmp_settings.mlflow.model_name
    models.register_student(mlflow_tracking.client, name, {
        "data_interval": "2026-11-09..2026-11-16", "code_version": "t", "dataset_hash": "d", "config_hash": "c",
        "model_hash": "m"}, {}, lambda: info, run_id=run.info.run_id)
    uri = f"models:/{name}/1"
    users = [f"u{i}" for i in range(len(DOCS) + 1)]
    texts = [*DOCS, DOCS[0] + "\n- ⟦one more line⟧"]
    tmp_settings.compute.inference_batch_size = bs

    pyfunc = mlflow.pyfunc.load_model(uri)
    expected, raw_today = _todays_path(pyfunc, users, texts, bs, mini)
    backend = make_backend(tmp_settings, uri, mini, cache=tmp_path / "dl")
    assert backend.name == "local"
    assert [r[0] for r in backend.generate(texts, 1)] == raw_today  # same decoding, token for token
    assert len(set(raw_today)) > 1  # real generation, not one constant string
    table, stats = profile_documents(tmp_settings, uri, users, texts, mini, backend=backend)
    assert table.equals(expected)
    assert stats["users"] == stats["profiled"] == len(users) and stats["failed_users"] == 0
    assert table.num_rows == len(users) * len(mini.attributes)

    # samples=k: k sampled answers voted; the same seed gives the same rows
    tmp_settings.inference.samples, tmp_settings.inference.seed = 3, 5
    voted, s3 = profile_documents(tmp_settings, uri, users, texts, mini, backend=backend)
    assert s3["samples"] == 3 and voted.num_rows == table.num_rows
    first, _ = profile_documents(tmp_settings, uri, users[:bs], texts[:bs], mini, backend=backend)
    assert first.equals(voted.slice(0, first.num_rows))  # the seed is set per call: same samples, same vote
    tmp_settings.inference.samples, tmp_settings.inference.seed = 1, None

    # the student server's folder: `infer-export` writes the plain HF folder vllm serve loads
    out = tmp_path / "export" / "champion"
    assert main(["infer-export", "--model", uri, "--out", str(out), "--lake", tmp_settings.lake_uri]) == 0
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert "chat_template" in (out / "tokenizer_config.json").read_text() or (out / "chat_template.jinja").is_file()
    assert not (tmp_path / "export" / "champion.partial").exists()


def test_inference_pod_command_parses_with_the_cli():
    """The GPU pod of an inference shard runs `infer-shard` with the vllm backend (the local backend's default
    becomes vllm on a GPU node); the command parses with the CLI."""
    from conf_profile.airflow_support import inference_command
    from conf_profile.cli import build_parser

    cmd = inference_command(Settings(lake="s3://lake/x"), 2)
    assert cmd[cmd.index("--lake") + 1] == "s3://lake/x" and cmd[cmd.index("--backend") + 1] == "vllm"
    args = build_parser().parse_args(cmd[2:])
    assert (args.shard, args.backend) == (2, "vllm")
    s = Settings(lake="s3://lake/x")
    s.inference.backend = "openai"
    assert inference_command(s, 0)[inference_command(s, 0).index("--backend") + 1] == "openai"


# ---- retrying answers that lack attributes ------------------------------------------------------------------

def _full(taxonomy, gender: str) -> str:
    out = {a.name: {"label": [] if a.is_multi else "unknown", "confidence": 0.0} for a in taxonomy.attributes}
    out["gender"] = {"label": gender, "confidence": 0.8}
    return json.dumps(out)


USERS = ["a", "b", "c", "d", "e", "f", "g", "h"]
DOCS8 = [f"doc {u}" for u in USERS]


class _ScriptedBackend:
    """First call: users a and d-h answer whole, b with broken JSON, c with a class outside the taxonomy;
    retries answer from `retry` (per document)."""

    name = "scripted"

    def __init__(self, retry, broken: int = 2):
        self.calls, self.retry, self.broken = [], retry, broken

    def generate(self, documents, n):
        self.calls.append((list(documents), n))
        if len(self.calls) == 1:
            bad_class = json.loads(_full(TAX, "female"))
            bad_class["age_group"]["label"] = "toddler"
            first = [[_full(TAX, "male")], ['{"gender": {"label": "fem'], [json.dumps(bad_class)]]
            first += [[_full(TAX, "male")] if i >= self.broken - 2 else ["broken"] for i in range(len(documents) - 3)]
            return first
        return [self.retry(d) for d in documents]


def test_answers_that_lack_attributes_are_retried_and_filled_from_the_samples_vote():
    s = Settings(inference={"batch_size": 8})
    users, docs = USERS, DOCS8
    retry = _ScriptedBackend(lambda d: [_full(TAX, "female"), "not json", _full(TAX, "female"), _full(TAX, "male")])
    table, stats = profile_documents(s, "", users, docs, TAX, backend=retry)
    assert retry.calls[1] == (["doc b", "doc c"], s.inference.retry_invalid)  # only the incomplete answers
    assert stats["retried_users"] == 2 and stats["valid_rate_first"] == 0.75 and stats["valid_rate"] == 1.0
    got = {(r["user_id"], r["attribute"]): (r["label"], r["confidence"]) for r in table.to_pylist()}
    assert got[("a", "gender")] == (["male"], 0.8)  # whole answers are kept as they were
    assert got[("b", "gender")] == (["female"], 0.4)  # the vote of the samples: 2 of 4 said female at 0.8
    assert got[("c", "gender")] == (["female"], 0.8)  # what the answer had stays; only age_group was filled
    assert got[("c", "age_group")] == (["unknown"], 0.0)

    # Retries that fail too leave the attributes as abstentions and say so; 0 turns retrying off.
    failing = _ScriptedBackend(lambda d: ["still broken"] * 4)
    table, stats = profile_documents(s, "", users, docs, TAX, backend=failing)
    assert stats["retried_users"] == 2 and stats["valid_rate"] == 0.75
    assert {r["confidence"] for r in table.to_pylist() if r["user_id"] == "b"} == {0.0}
    assert "2 retried: 0.75 valid at first" in summary_text(stats)
    # A model that has not learned the format (over a quarter incomplete) is not retried: sampling won't fix it.
    untrained = _ScriptedBackend(lambda d: pytest.fail("no retry for an untrained model"), broken=3)
    assert profile_documents(s, "", users, docs, TAX, backend=untrained)[1]["retried_users"] == 0
    s.inference.retry_invalid = 0
    off = _ScriptedBackend(lambda d: pytest.fail("no retry when retry_invalid is 0"))
    assert profile_documents(s, "", users, docs, TAX, backend=off)[1]["retried_users"] == 0
    assert len(off.calls) == 1


# ---- openai backend ----------------------------------------------------------------------------------------

@pytest.fixture()
def probability_answers(monkeypatch):
    """The fake server answers in the student's format (probability confidences, no rationale)."""
    def answer(taxonomy, k=0):
        out = {}
        for a in taxonomy.attributes:
            cls = a.classes[k % len(a.classes)]
            out[a.name] = {"label": [cls] if a.is_multi else cls, "confidence": round(0.9 - 0.2 * k, 2)}
        return out

    monkeypatch.setattr(fault_server, "good_answer", answer)
    return answer


def _openai_settings(base_url: str, **inference) -> Settings:
    return Settings(inference={"backend": "openai", "base_url": base_url, "model": "student", "timeout_s": 2,
                               "max_retries": 1, "retry_backoff_s": 0.01, "batch_size": 2, **inference})


def test_openai_backend_profiles_users_with_the_students_prompt(probability_answers, monkeypatch):
    monkeypatch.setenv("STUDENT_KEY", "k-123")
    users = ["a", "b", "c"]
    texts = [f"key: {u}\n{DOCS[0]}" for u in users]
    with FaultServer(TAX, {"b": ["503", "ok"]}) as srv:
        s = _openai_settings(srv.base_url, api_key_env="STUDENT_KEY")
        table, stats = profile_documents(s, "models:/unused/1", users, texts, TAX)
    assert stats["backend"] == "openai" and stats["failed_users"] == 0 and stats["valid_rate"] == 1.0
    assert srv.attempts["b"] == 2  # the 503 was retried
    # requests run concurrently: find user a's request by its prompt
    body = next(b for b in srv.bodies if b["messages"][-1]["content"] == texts[0])
    assert body["messages"] == messages(texts[0]) and body["n"] == 1 and body["temperature"] == 0.0
    assert body["model"] == "student" and "response_format" not in body
    assert all(h.get("Authorization") == "Bearer k-123" for h in srv.headers)
    rows = {(r["user_id"], r["attribute"]): r for r in table.to_pylist()}
    assert rows[("c", "gender")]["label"] == ["male"] and rows[("c", "gender")]["confidence"] == pytest.approx(0.9)
    assert table.num_rows == 3 * len(TAX.attributes)


def test_openai_backend_obeys_samples(probability_answers):
    users, texts = ["a", "b"], ["key: a\nx", "key: b\ny"]
    with FaultServer(TAX, {}) as srv:
        s = _openai_settings(srv.base_url, samples=3, temperature=0.9)
        table, stats = profile_documents(s, "", users, texts, TAX)
    assert len(srv.bodies) == 2 and all(b["n"] == 3 and b["temperature"] == 0.9 for b in srv.bodies)
    expected, _ = parse_samples([[json.dumps(probability_answers(TAX, k)) for k in range(3)]] * 2, TAX, vote=True)
    assert table.equals(predictions(users, expected, TAX)) and stats["samples"] == 3
    gender = [r for r in table.to_pylist() if r["attribute"] == "gender"][0]
    assert gender["label"] == ["male"]  # 0.9 (male) + 0.5 (male) beat 0.7 (female)
    assert gender["confidence"] == pytest.approx((0.9 + 0.5) / 3)


def test_openai_backend_leaves_out_failed_users_and_fails_above_the_share(probability_answers):
    users = [f"u{i}" for i in range(4)]
    texts = [f"key: {u}\ndoc" for u in users]
    with FaultServer(TAX, {"u1": ["500"]}) as srv:
        table, stats = profile_documents(_openai_settings(srv.base_url, max_error_share=0.5), "", users, texts, TAX)
        assert stats["failed_users"] == 1 and stats["profiled"] == 3
        assert "HTTP 500 after 1 retries" in stats["failure_reasons"]
        assert "u1" not in set(table.column("user_id").to_pylist())
        with pytest.raises(InferenceServerError, match=r"1 of 4 users could not be profiled.*max_error_share"):
            profile_documents(_openai_settings(srv.base_url, max_error_share=0.0), "", users, texts, TAX)


def test_openai_backend_down_fails_fast_and_clearly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    s = _openai_settings(f"http://127.0.0.1:{port}/v1", max_retries=3, retry_backoff_s=1.0)
    t0 = time.perf_counter()
    with pytest.raises(ConfProfileError, match=rf"student server at http://127.0.0.1:{port}/v1 is not reachable") as exc:
        profile_documents(s, "", ["a"] * 50, ["key: a"] * 50, TAX)
    assert time.perf_counter() - t0 < 5  # one probe, not 50 users x 3 retries with backoff
    assert exc.value.fix and "inference.base_url" in exc.value.fix
    assert getattr(exc.value, "outcome", None) == "retry"  # the runner retries the task
    with pytest.raises(ConfProfileError, match="inference.base_url is not set"):
        OpenAIBackend(Settings(inference={"backend": "openai"}), TAX)


def test_openai_backend_checks_the_served_model():
    import http.server
    import threading

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"data": [{"id": "teacher"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ConfProfileError, match=r"serves teacher, not inference.model 'student'"):
            profile_documents(_openai_settings(f"http://127.0.0.1:{httpd.server_address[1]}/v1"), "", ["a"], ["x"], TAX)
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- vllm backend ------------------------------------------------------------------------------------------

def test_vllm_backend_without_vllm_names_the_gpu_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    with pytest.raises(ConfProfileError, match=r"needs the vllm package") as exc:
        import_vllm()
    assert "conf-profile[gpu]" in exc.value.fix
    s = Settings(inference={"backend": "vllm"})
    with pytest.raises(ConfProfileError, match="vllm package"):  # before any model download
        make_backend(s, "models:/does-not-exist/1", TAX)


def test_vllm_backend_drives_llm_chat(monkeypatch, tmp_path):
    calls: dict = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, model, **kw):
            calls["init"] = (model, kw)

        def chat(self, conversations, params, use_tqdm=True):
            calls.setdefault("chat", []).append((conversations, params.kw, use_tqdm))
            n = params.kw["n"]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(index=j, text=_answer("female", 0.5 + j / 10))
                                                   for j in reversed(range(n))]) for _ in conversations]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    s = Settings(inference={"backend": "vllm", "samples": 2, "seed": 3, "max_tokens": 64,
                            "engine_kwargs": {"gpu_memory_utilization": 0.5}})
    backend = VLLMBackend(tmp_path, TAX, s)
    table, stats = profile_documents(s, str(tmp_path), ["a", "b"], DOCS[:2], TAX, backend=backend)
    assert calls["init"] == (str(tmp_path), {"seed": 3, "gpu_memory_utilization": 0.5})
    [(conversations, params, use_tqdm)] = calls["chat"]
    assert conversations == [messages(d) for d in DOCS[:2]] and use_tqdm is False
    assert params == {"n": 2, "temperature": 0.7, "max_tokens": 64, "seed": 3}
    gender = [r for r in table.to_pylist() if r["attribute"] == "gender"]
    assert [g["confidence"] for g in gender] == [pytest.approx((0.5 + 0.6) / 2)] * 2
    assert stats["backend"] == "vllm" and stats["samples"] == 2
    assert backend.generate(DOCS[:1], 1) == [[_answer("female", 0.5)]]
    assert calls["chat"][-1][1]["temperature"] == 0.0  # one answer: greedy
