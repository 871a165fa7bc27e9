"""PII redaction throughput: `redact.prepare_text` (RE2 over distinct values) vs plain per-string Python `re`.

Both sanitize and redact a text column (titles/comments-like phrases, a few percent with PII in many
formats and scripts) with the *same* patterns: the baseline translates our RE2 patterns to Python `re`
(`to_python_re`: Unicode classes expanded to explicit ranges from `unicodedata`; scripts as their blocks)
and loops over every row, as a `df.apply(redact_one)` would. Its output must equal ours (checked every run).
Two columns: one with realistic repetition (titles and queries repeat) and one with every row distinct, so
the ratio without the help of deduplication is visible too. Medians over `repeats`.
Run: `python -m bench.bench_redact [--rows N]` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.data import redact as R

WORDS = ("easy quick best cheap new honest full guide review vlog tips dinner stroller boss budget travel "
         "makeup workout puppy camping study coffee phone laptop garden baby wedding guitar anime café "
         "crème 旅行 美食 攻略 кофе рецепт καφές 2024 35.50 v2.1 10:30 50% top 10").split()
PII = ["mail me at jo.doe{i}@example.com", "call +86 138 1234 {i:04d}", "tel (555) 123-{i:04d}",
       "card 4111 1111 1111 {i:04d}", "id 11010519{i:08d}", "wechat 555.867.{i:04d}", "josé{i}@correo.es",
       "jo\u200bhn{i} at gmail dot com", "ssn 123-45-{i:04d}", "اتصل ٠١٠ ١٢٣٤ {i:04d}", "138–0013–{i:04d}",
       "邮箱是li{i}@qq.com谢谢", "+44 20 7946 {i:04d}"]


# ---- data -------------------------------------------------------------------------------------------------
def make_texts(rows: int, distinct: int, pii_rate: float = 0.03, seed: int = 0) -> list[str]:
    """`rows` texts drawn (Zipf-like) from `distinct` phrases of 4-12 words, some with one PII value."""
    rng = np.random.default_rng(seed)
    phrases = []
    for i in range(distinct):
        words = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), rng.integers(4, 13)))
        if rng.random() < pii_rate:
            words = f"{words} {PII[i % len(PII)].format(i=i % 10_000)}"
        phrases.append(words)
    if rows == distinct:
        return phrases
    p = 1.0 / np.arange(1, distinct + 1) ** 0.9
    return [phrases[k] for k in rng.choice(distinct, rows, p=p / p.sum())]


# ---- RE2 -> Python re -------------------------------------------------------------------------------------
_SCRIPTS = {  # Python's unicodedata has no scripts: the blocks of each (enough for this benchmark's text)
    "Han": [(0x2E80, 0x2FDF), (0x3005, 0x3007), (0x3021, 0x3029), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
            (0xF900, 0xFAFF), (0x20000, 0x323AF)],
    "Hiragana": [(0x3041, 0x309F)], "Katakana": [(0x30A1, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9D)],
    "Hangul": [(0x1100, 0x11FF), (0x3131, 0x318E), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDC)],
}
_CATEGORY: np.ndarray | None = None


def _property(name: str) -> np.ndarray:
    """Boolean mask over all code points for a \\p{name} (general category, its first letter, or a script)."""
    global _CATEGORY
    if _CATEGORY is None:
        _CATEGORY = np.array([unicodedata.category(chr(c)) for c in range(0x110000)])
    if name in _SCRIPTS:
        mask = np.zeros(0x110000, dtype=bool)
        for lo, hi in _SCRIPTS[name]:
            mask[lo:hi + 1] = True
        return mask
    return np.char.startswith(_CATEGORY, name) if len(name) == 1 else _CATEGORY == name


def _emit(mask: np.ndarray) -> str:
    """A Python character class for a code-point mask (ranges, \\U escapes)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    parts = [f"\\U{lo:08x}" if lo == hi - 1 else f"\\U{lo:08x}-\\U{hi - 1:08x}" for lo, hi in zip(edges[::2], edges[1::2],
                                                                                                   strict=True)]
    return "[" + "".join(parts) + "]" if parts else "(?!)"


_ESC = re.compile(r"\\([pP])\{(\w+)\}|\\x\{([0-9A-Fa-f]+)\}|\\(.)|(.)", re.S)


def _class(body: str) -> np.ndarray:
    """Mask of an RE2 bracket expression's body (without the brackets)."""
    negate = body.startswith("^")
    body = body[1:] if negate else body
    mask = np.zeros(0x110000, dtype=bool)
    items: list[object] = []
    for prop, name, hexa, esc, ch in _ESC.findall(body):
        if prop:
            m = _property(name)
            items.append(~m if prop == "P" else m)
        elif esc == "s":  # RE2's \s is ASCII whitespace
            items.append(np.isin(np.arange(0x110000), [9, 10, 11, 12, 13, 32]))
        else:  # an unescaped "-" stays a str: the range operator
            items.append("-" if ch == "-" else int(hexa, 16) if hexa else ord(esc or ch))
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, np.ndarray):
            mask |= item
        elif item == "-":
            mask[ord("-")] = True
        elif i + 2 < len(items) and items[i + 1] == "-" and isinstance(items[i + 2], int):
            mask[item:items[i + 2] + 1] = True
            i += 2
        else:
            mask[item] = True
        i += 1
    return ~mask if negate else mask


def to_python_re(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern of ours with Python `re`: bracket expressions and \\p{..} become explicit ranges;
    re.ASCII keeps `\\b` ASCII as in RE2 (our patterns spell every non-ASCII class out)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and pattern[i + 1] in "pP" and pattern[i + 2] == "{":
            end = pattern.index("}", i)
            m = _property(pattern[i + 3:end])
            out.append(_emit(~m if pattern[i + 1] == "P" else m))
            i = end + 1
        elif c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
        elif c == "[":
            j = i + 1 + (pattern[i + 1] == "^")
            j += pattern[j] == "]"
            while pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(_emit(_class(pattern[i + 1:j])))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return re.compile("".join(out), re.ASCII)


# ---- the per-string baseline ------------------------------------------------------------------------------
class PythonRedactor:
    """sanitize + redact one string at a time with Python `re` and `unicodedata` (no deduplication)."""

    def __init__(self) -> None:
        self.invisible = to_python_re(f"[{R.OPEN}{R.CLOSE}]|{R.INVISIBLE}")
        self.dashes = to_python_re(R.DASHES)
        self.space = to_python_re(R.SPACES)
        self.digit = re.compile(r"(?![0-9])\d")
        self.candidate = to_python_re(R.CANDIDATE)
        self.patterns = [(R.TOKENS[kind], to_python_re(p)) for kind, p in R.PATTERNS]

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        t = self.dashes.sub("-", unicodedata.normalize("NFKC", self.invisible.sub("", text)))
        t = self.space.sub(" ", self.digit.sub(lambda m: str(unicodedata.decimal(m.group())), t)).strip()
        if self.candidate.search(t):
            for token, rx in self.patterns:
                t = rx.sub(token, t)
        return t or None


def ours(arr: pa.Array) -> pa.Array:
    return R.prepare_text(arr, 10**9)[0]


def _median_s(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench(repeats: int = 3, rows: int = 200_000, distinct: int = 20_000) -> dict:
    """Median seconds of both on a repetitive column and on an all-distinct one; ratios; equality check."""
    baseline = PythonRedactor()
    result: dict = {"rows": rows, "pyarrow_nfkc_composes": R._PYARROW_COMPOSES, "repeats": repeats}
    for name, texts in (("repetitive", make_texts(rows, distinct)), ("all_distinct", make_texts(rows, rows))):
        arr = pa.array(texts, pa.string())
        ours_s, got = _median_s(lambda arr=arr: ours(arr), repeats)
        base_s, expected = _median_s(lambda texts=texts: [baseline(t) for t in texts], repeats)
        redacted = int(pc.sum(pc.count_substring_regex(got, r"\[(?:EMAIL|PHONE|ID)\]")).as_py() or 0)
        result[name] = {
            "distinct": len(set(texts)), "redactions": redacted, "identical_to_baseline": got.to_pylist() == expected,
            "ours_s": round(ours_s, 3), "python_re_s": round(base_s, 3),
            "rows_per_s_ours": int(rows / ours_s), "speedup": round(base_s / ours_s, 1),
        }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(bench(rows=args.rows, distinct=max(args.rows // 10, 1)), indent=2))
