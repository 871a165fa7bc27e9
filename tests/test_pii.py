"""PII redaction over a corpus of variants (tests/data/pii_corpus.yaml): recall, kinds, no false positives."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from conf_profile.data.redact import TOKENS, prepare_text, sanitize

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "pii_corpus.yaml").read_text(encoding="utf-8"))
TOKEN_KIND = {v: k for k, v in TOKENS.items()}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def leaked(entry: dict, out: str | None) -> bool:
    """True when something of the entry's PII value is still in the redacted text."""
    out = out or ""
    if entry["kind"] == "email":
        return "@" in out or any(_fold(s) in _fold(out) for s in entry["secret"].split("|"))
    return re.search(r"\d", out) is not None  # corpus texts around phones and IDs carry no digits


def redacted(texts: list[str]) -> tuple[list[str | None], dict[str, int]]:
    out, counts = prepare_text(pa.array(texts, pa.string()), 10_000)
    return out.to_pylist(), counts


def test_corpus_is_big_and_varied():
    kinds = {e["kind"] for e in CORPUS["pii"]}
    assert len(CORPUS["pii"]) >= 150 and kinds == set(TOKENS)
    assert len(CORPUS["clean"]) >= 50


def test_recall_over_the_corpus():
    entries = CORPUS["pii"]
    out, _ = redacted([e["text"] for e in entries])
    missed = [(e["text"], o) for e, o in zip(entries, out, strict=True) if leaked(e, o)]
    recall = 1 - len(missed) / len(entries)
    assert recall >= 0.99, f"recall {recall:.3f}; missed: {missed}"


def test_kinds_over_the_corpus():
    """The token names the right kind (a phone written as one digit run may read as an ID: allowed rarely)."""
    entries = CORPUS["pii"]
    out, _ = redacted([e["text"] for e in entries])
    wrong = [(e["text"], o) for e, o in zip(entries, out, strict=True) if TOKENS[e["kind"]] not in (o or "")]
    assert len(wrong) <= 0.05 * len(entries), wrong


def test_counts_match_tokens():
    entries = CORPUS["pii"]
    out, counts = redacted([e["text"] for e in entries])
    text = "\n".join(o or "" for o in out)
    assert counts == {k: text.count(t) for k, t in TOKENS.items()}


@pytest.mark.parametrize("entry", CORPUS["clean"], ids=lambda e: e if isinstance(e, str) else e["text"])
def test_clean_text_survives_unchanged(entry):
    text, expect = (entry, entry) if isinstance(entry, str) else (entry["text"], entry["expect"])
    out, counts = redacted([text])
    assert out == [expect] and sum(counts.values()) == 0


def test_sanitize_composes_like_python_nfkc():
    """pyarrow's NFKC leaves text decomposed; documents must carry composed text (accents, Hangul, kana)."""
    texts = ["café crème", "jose\u0301", "한국어 리뷰", "ｶﾞｲﾄﾞ", "がんばって", "Zoë", "Å", "ǆ", "ﬁne", "①", "㎏", "γιάννης"]
    out = sanitize(pa.array(texts)).to_pylist()
    assert out == [unicodedata.normalize("NFKC", t) for t in texts]


def test_sanitize_removes_invisibles_and_folds_dashes_and_digits():
    raw = ["a\u200bb\u00adc\u2060d\ufeffe\u202ef\U000e0041g", "1\u20132\u20143\u22124\u20115", "٠١٢٣ ۴۵۶ ९८७ １２３", " x\u3000\n y "]
    assert sanitize(pa.array(raw)).to_pylist() == ["abcdefg", "1-2-3-4-5", "0123 456 987 123", "x y"]
