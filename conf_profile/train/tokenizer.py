"""A byte-level BPE tokenizer trained on the run's documents and targets, with a ChatML chat template.

Why a custom pre-split: GPT-2's regex cuts the answer JSON into ~80 tokens; splitting on spaces and keeping
`"attribute": {"label":` in one piece makes every attribute one token, every label value one token and every
`"confidence": 0.7},` one token (~3 tokens per attribute), which makes SFT and sampling 3-4x cheaper and
puts the attribute name right before its label (notes-trl-cpu.md). Newlines are isolated so that no token
spans the prompt/answer boundary; a line's head (`\n- [gaming]`, `\n## watch`, `\ncity:`) is one piece, which
cuts documents by ~15 % (documents are what SFT pays for: ~290 of ~315 tokens per example).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]

# Order matters: the first alternative that matches at a position wins.
PRE_SPLIT = (
    r' ?\{?"[a-z0-9_]+": \{"label":'  # attribute name + label key: one piece
    r'| "confidence": [0-9.]+\}*,?'  # a whole confidence entry
    r'| ?\[?"[^"\n]*"\]?,?'  # a quoted label value (with list brackets / comma)
    r"|\n(?:## [a-z_]+|- \[[^\]\n]{1,30}\]|- ⟦|- |[a-z_]{1,30}:)"  # a line head: section, bullet, field name
    r"|\n"  # other newlines alone (so no token spans the prompt/answer boundary)
    r"| ?[⟦⟧]"  # data delimiters
    r"| ?[^\s⟦⟧]+"  # a word with its leading space
    r"|\s+"
)

# ChatML; the assistant turn (and its end-of-turn token) is inside {% generation %} so that TRL's
# assistant_only_loss masks everything else and trains the stop token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train the BPE on `texts` (documents and answer JSON) and wrap it as an HF fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRE_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD, bos_token=None, unk_token=None,
        additional_special_tokens=[IM_START], model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # generation; the trainers' collators pad on their own side
    return fast


def tokenizer_hash(tok: PreTrainedTokenizerFast) -> str:
    """Identity of a tokenizer: vocabulary, merges, pre-split, special tokens and chat template (not the
    padding/truncation state, which HF changes at call time). Two models can share weights only if this matches."""
    import hashlib
    import json

    spec = json.loads(tok.backend_tokenizer.to_str())
    keep = {k: spec.get(k) for k in ("normalizer", "pre_tokenizer", "model", "decoder", "added_tokens")}
    keep["chat_template"] = tok.chat_template
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def lake_tokenizer(lake, rel: str, vocab_size: int, texts: Callable[[], Iterable[str]], cache: Path,
                   trained_on: str = "") -> tuple[PreTrainedTokenizerFast, dict]:
    """The deployment's tokenizer at `rel` (LakeLayout.tokenizer): loaded when committed, else trained once on
    `texts()` (this run's documents and targets) and committed, so later weeks reuse it and a model of one week
    can continue training on the next. Returns (tokenizer, info with hash and where it came from)."""
    if lake.is_committed(rel):
        meta = lake.manifest(rel).get("meta", {})
        tok = PreTrainedTokenizerFast.from_pretrained(lake.local_dir(rel, cache))
        tok.padding_side = "left"
        return tok, {**meta, "path": lake.uri_of(rel), "hash": tokenizer_hash(tok), "reused": True}
    tok = train_tokenizer(texts(), vocab_size=vocab_size)
    out = cache / "new"
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    meta = {"hash": tokenizer_hash(tok), "vocab": len(tok), "trained_on": trained_on}
    lake.upload_dir(out, rel, meta=meta)
    return tok, {**meta, "path": lake.uri_of(rel), "reused": False}
