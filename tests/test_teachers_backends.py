"""The vllm and hf backends: import guard, wiring (with a stand-in vllm module), and a tiny real HF model."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from dataclasses import dataclass

import pytest

from conf_profile.config.teachers import teacher_spec
from conf_profile.errors import ConfProfileError
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.taxonomy import load_taxonomy
from conf_profile.teachers.backends import make_teacher

TAX = load_taxonomy()
A = len(TAX.names)
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def valid_rows(table, users: int, samples: int) -> list[dict]:
    """Every row is well formed: either a taxonomy label with a confidence in [0, 1], or an error."""
    assert table.schema == TEACHER_OUTPUT_SCHEMA
    assert table.num_rows == users * samples * A
    rows = table.to_pylist()
    for r in rows:
        if r["error"] is None:
            assert 0.0 <= r["confidence"] <= 1.0
            attr = TAX.attribute(r["attribute"])
            assert all(x in attr.classes or x == TAX.unknown for x in r["label"])
        else:
            assert r["label"] is None and r["error"]
    return rows


# ---- vllm ---------------------------------------------------------------------------------------------
def test_vllm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ConfProfileError) as err:
        make_teacher(teacher_spec(name="big", backend="vllm", model="/models/x"), TAX)
    assert "pip install 'conf-profile[gpu]'" in str(err.value)


@dataclass
class _Completion:
    index: int
    text: str


def fake_vllm(monkeypatch, answers: dict[str, list[str]]) -> dict:
    """Install a stand-in `vllm` that records its calls and answers by a key in the document."""
    calls: dict = {"init": [], "chat": []}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class StructuredOutputsParams:
        def __init__(self, json=None, **kw):
            self.json = json

    class LLM:
        def __init__(self, model, **kw):
            calls["init"].append((model, kw))

        def chat(self, conversations, params, use_tqdm=True):
            calls["chat"].append((conversations, params))
            out = []
            for conv in conversations:
                key = conv[1]["content"].split("key: ", 1)[1].split()[0]
                texts = answers[key]
                n = params.kw["n"]
                out.append(types.SimpleNamespace(outputs=[_Completion(i, texts[i % len(texts)]) for i in range(n)][::-1]))
            return out

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM
    sp = types.ModuleType("vllm.sampling_params")
    sp.SamplingParams = SamplingParams
    sp.StructuredOutputsParams = StructuredOutputsParams
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    return calls


def test_vllm_wiring_with_stand_in(monkeypatch):
    good = {a.name: {"label": [a.classes[1]] if a.is_multi else a.classes[1], "confidence": 4, "rationale": "r"}
            for a in TAX.attributes}
    calls = fake_vllm(monkeypatch, {"a": [json.dumps(good), "garbage"], "b": ["```json\n" + json.dumps(good) + "```"]})
    t = make_teacher(teacher_spec(name="big", backend="vllm", model="/models/x", samples=2, temperature=0.8,
                                 seed=3, engine_kwargs={"max_model_len": 4096}), TAX)
    table = t.label([("u1", "## profile\nkey: a"), ("u2", "## profile\nkey: b")])
    rows = valid_rows(table, 2, 2)
    (model, kw), = calls["init"]
    assert model == "/models/x" and kw["max_model_len"] == 4096 and kw["seed"] == 3
    (convs, params), = calls["chat"]  # one batched call for the whole shard
    assert len(convs) == 2 and convs[0][0]["role"] == "system"
    assert params.kw["n"] == 2 and params.kw["temperature"] == 0.8
    assert params.kw["structured_outputs"].json == TAX.json_schema()
    u1 = {(r["sample_idx"], r["attribute"]): r for r in rows if r["user_id"] == "u1"}
    assert u1[(0, "gender")]["label"] == ["female"] and u1[(0, "gender")]["error"] is None  # index order kept
    assert u1[(1, "gender")]["error"] and "no JSON" in u1[(1, "gender")]["error"]
    assert all(r["error"] is None for r in rows if r["user_id"] == "u2")


_VLLM_MODEL = os.environ.get("CONF_PROFILE_TEST_VLLM_MODEL")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM or not _VLLM_MODEL,
                    reason="vllm not installed (GPU extra)" if not HAS_VLLM else
                    "set CONF_PROFILE_TEST_VLLM_MODEL to a local checkpoint to run the real vllm test")
def test_vllm_real_model():  # pragma: no cover - GPU only
    t = make_teacher(teacher_spec(name="big", backend="vllm", model=_VLLM_MODEL,
                                 samples=2, temperature=0.7, max_tokens=512), TAX)
    table = t.label([("u1", "## profile\nbio: ⟦mom of two, nurse⟧\ndeclared_gender: female")])
    rows = valid_rows(table, 1, 2)
    assert sum(r["error"] is None for r in rows) >= A  # structured decoding: at least one sample parses


# ---- hf -----------------------------------------------------------------------------------------------
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_model(path, chat_template: bool) -> None:
    """A 2-layer Qwen3 with random weights and a byte-level BPE tokenizer trained here (no hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    from conf_profile.teachers.prompt import PromptBuilder

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [PromptBuilder(TAX).system, '{"gender": {"label": "male", "confidence": 3, "rationale": ""}}'] * 3
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>")
    if chat_template:
        hf_tok.chat_template = CHATML
    hf_tok.save_pretrained(path)
    cfg = Qwen3Config(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=8192,
                      tie_word_embeddings=True, eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    Qwen3ForCausalLM(cfg).save_pretrained(path)


@pytest.mark.parametrize("chat_template,samples,temperature", [(True, 2, 1.0), (False, 1, 0.0)])
def test_hf_tiny_model_rows_are_well_formed(tmp_path, chat_template, samples, temperature):
    build_tiny_model(tmp_path, chat_template)
    t = make_teacher(teacher_spec(name="tiny", backend="hf", model=str(tmp_path), samples=samples,
                                 temperature=temperature, max_tokens=8, batch_size=2, seed=0), TAX)
    docs = [("u1", "## profile\nbio: ⟦hi⟧"), ("u2", "## watch\n- [gaming] ⟦a much longer title here⟧ 90%"),
            ("u3", "")]
    assert ("<|im_start|>" in t.prompt("x")) == chat_template
    rows = valid_rows(t.label(docs), 3, samples)
    assert {r["user_id"] for r in rows} == {"u1", "u2", "u3"}
    assert all(r["raw_output"] is not None for r in rows)  # what the model said is kept for inspection


def test_hf_missing_model_is_a_clear_error(tmp_path):
    t = make_teacher(teacher_spec(name="tiny", backend="hf", model=str(tmp_path / "nope")), TAX)
    with pytest.raises(ConfProfileError, match="cannot load the model"):
        t.label([("u1", "x")])
