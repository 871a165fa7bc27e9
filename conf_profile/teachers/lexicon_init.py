"""A starter lexicon for any taxonomy: every attribute class with empty cue lists to fill in, and, as
comments, what a week of documents actually says (most frequent `[category]` tags, words and profile field
values per section, counted in users).

Why: the packaged lexicon only fits the packaged taxonomy. A team with its own taxonomy needs a file with
the right shape (a typo in a class name is an error) and a look at its own data to pick cues from — not
a blank page. The output loads as a lexicon as it is (no cues: every answer `unknown`).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.taxonomy import Taxonomy
from conf_profile.teachers.sections import SOURCES, section_columns

TOP_CATEGORIES = 25
TOP_WORDS = 40
TOP_VALUES = 12
MIN_WORD_CHARS = 3
# Function words carry no class evidence; they would fill every "top words" list.
STOPWORDS = frozenset("""
the and for you your with that this from have are was were what how why who when where which will would
can could not but all any our out its his her him she they them their there then than too very just
about into over under after before more most some such only own same also been being does did doing
has had having get got let lets one two new now off per via yes yet here each both few many much
part full video vlog episode season day days week weeks time thing things really ever best top
""".split())
_CATEGORY = r"\[([a-z0-9_]+)\]"


def _document_frequency(tokens: pa.ListArray, top: int) -> list[tuple[str, int]]:
    """(token, number of documents holding it), most frequent first."""
    flat = pc.list_flatten(tokens)
    if len(flat) == 0:
        return []
    parents = pc.list_parent_indices(tokens)
    pairs = pa.table({"doc": parents, "tok": flat}).group_by(["doc", "tok"], use_threads=False).aggregate([])
    counts = pc.value_counts(pairs["tok"]).flatten() if pairs.num_rows else None
    if counts is None:
        return []
    values, n = counts[0].to_pylist(), counts[1].to_numpy()
    order = np.lexsort((np.array(values, dtype=object).astype(str), -n))[:top]
    return [(values[i], int(n[i])) for i in order]


def _words(body: pa.Array) -> pa.ListArray:
    text = pc.replace_substring_regex(pc.utf8_lower(body), _CATEGORY, " ")
    text = pc.replace_substring_regex(text, r"(?m)^[a-z_]+:", " ")  # a profile line's key is not evidence
    text = pc.replace_substring_regex(text, "[⟦⟧]", " ")
    parts = pc.split_pattern_regex(text, r"[^a-z'\-]+")
    flat = pc.utf8_trim(pc.list_flatten(parts), "'-")
    parents = pc.list_parent_indices(parts).to_numpy()
    keep = pc.and_(pc.greater_equal(pc.utf8_length(flat), MIN_WORD_CHARS),
                   pc.invert(pc.is_in(flat, value_set=pa.array(sorted(STOPWORDS)))))
    keep_np = pc.fill_null(keep, False).to_numpy(zero_copy_only=False)
    return _regroup(flat.filter(keep), parents[keep_np], len(body))


def _categories(body: pa.Array) -> pa.ListArray:
    lines = pc.split_pattern(pc.utf8_lower(body), "\n")
    spans = pc.extract_regex(pc.list_flatten(lines), r"^\s*-?\s*\[(?P<c>[a-z0-9_]+)\]")
    parents = pc.list_parent_indices(lines).to_numpy()
    cat = pc.struct_field(spans, [0])
    ok = pc.is_valid(cat).to_numpy(zero_copy_only=False)
    return _regroup(pc.drop_null(cat), parents[ok], len(body))


def _profile_values(body: pa.Array) -> dict[str, list[tuple[str, int]]]:
    """{field: [(value, users)]} of the profile's `key: value` lines (short values only: a bio is prose)."""
    lines = pc.split_pattern(body, "\n")
    flat = pc.list_flatten(lines)
    parents = pc.list_parent_indices(lines).to_numpy()
    kv = pc.extract_regex(flat, r"^(?P<k>[a-z_]+):[ \t]*(?P<v>[^\n]{1,30})$")
    k, v = pc.struct_field(kv, [0]), pc.struct_field(kv, [1])
    v = pc.utf8_trim_whitespace(pc.utf8_lower(pc.replace_substring_regex(v, "[⟦⟧]", "")))
    ok = pc.is_valid(k).to_numpy(zero_copy_only=False)
    t = pa.table({"doc": parents[ok], "k": pc.drop_null(k), "v": v.filter(pc.is_valid(k))})
    out: dict[str, list[tuple[str, int]]] = {}
    for key in sorted(set(t["k"].to_pylist())):
        sub = t.filter(pc.equal(t["k"], key))
        out[key] = _document_frequency(_regroup(sub["v"], sub["doc"].to_numpy(), len(body)), TOP_VALUES)
    return out


def _regroup(values: pa.Array, parents: np.ndarray, n: int) -> pa.ListArray:
    """A list per document from flat values and their (sorted) document index."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents.astype(np.int64), minlength=n), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def data_summary(documents: pa.Array | pa.ChunkedArray) -> dict[str, dict]:
    """Per section: users with it, top [category] tags, top words, and (profile) top field values."""
    docs = pc.fill_null(documents, "")
    sections = section_columns(docs, SOURCES)
    out: dict[str, dict] = {}
    for source, body in sections.items():
        users = int(pc.sum(pc.greater(pc.utf8_length(body), 0)).as_py() or 0)
        if users == 0:
            continue
        entry: dict = {"users": users, "categories": _document_frequency(_categories(body), TOP_CATEGORIES),
                       "words": _document_frequency(_words(body), TOP_WORDS)}
        if source == "profile":
            entry["fields"] = _profile_values(body)
        out[source] = entry
    return out


def _pairs(items: list[tuple[str, int]], brackets: bool = False) -> str:
    return ", ".join(f"[{w}] {n}" if brackets else f"{w} {n}" for w, n in items)


def _comment_block(text: str, width: int = 108) -> list[str]:
    lines, cur = [], "#  "
    for piece in text.split(", "):
        add = piece if cur == "#  " else ", " + piece
        if len(cur) + len(add) > width:
            lines.append(cur.rstrip() + ",")
            cur = "#    " + piece
        else:
            cur += add
    lines.append(cur)
    return lines


def _quote(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) and s.lower() not in {"yes", "no", "on", "off",
                                                                                 "true", "false", "null"} \
        else '"' + s.replace('"', '\\"') + '"'


def starter_lexicon(taxonomy: Taxonomy, documents: pa.Array | pa.ChunkedArray, where: str = "") -> str:
    """The YAML text of a starter lexicon for `taxonomy`, with comments drawn from `documents`."""
    n = len(documents)
    summary = data_summary(documents)
    out = [
        f"# Starter lexicon for taxonomy {taxonomy.name!r}, written by `conf-profile lexicon init`"
        + (f" from {where}" if where else "") + f" ({n:,} documents).",
        "# Fill in cue phrases (1-8 words, matched case-insensitively on word boundaries) per class and tier:",
        "#   explicit: self-disclosure (\"i'm a nurse\") -> confidence level 5; strong: scored 2; weak: scored 1.",
        "# A watch line's tag `[cooking]` is the word `cat_cooking`; a purchase line `- baby 35.50` gives `buy_baby`.",
        "# Empty lists are fine: a class without cues is never answered. Field, pattern and number rules, and",
        "# per-teacher habits: see docs/teachers.md and conf_profile/teachers/lexicons/default.yaml.",
        "# Use it with `labels.lexicon: <this file>` (all lexicon teachers) or a teacher's own `lexicon:`.",
        "#",
        "# What these documents say most often (numbers = documents holding it):",
    ]
    for source in SOURCES:
        s = summary.get(source)
        if s is None:
            out.append(f"# ## {source}: no document has this section")
            continue
        out.append(f"# ## {source} ({s['users']:,} documents)")
        if s["categories"]:
            out += _comment_block("categories: " + _pairs(s["categories"], brackets=True))
        for key, vals in s.get("fields", {}).items():
            if vals:
                out += _comment_block(f"field {key}: " + _pairs(vals))
        if s["words"]:
            out += _comment_block("words: " + _pairs(s["words"]))
    out += ["", "version: 1", "attributes:"]
    for attr in taxonomy.attributes:
        out.append(f"  {attr.name}:  # {attr.kind}" + (f", up to {attr.max_labels} labels" if attr.is_multi else ""))
        for cls in attr.classes:
            desc = attr.descriptions.get(cls, cls)
            note = f"  # {desc}" if desc != cls.replace("_", " ") else ""
            out.append(f"    {_quote(cls)}:{note}")
            out += ["      explicit: []", "      strong: []", "      weak: []"]
    out += [
        "",
        "# Profile field rules, e.g. a declared field trusted at level 4:",
        "# fields:",
        "#   - {field: declared_gender, attribute: gender, values: {male: male, female: female}, level: 4}",
        "fields: []",
        "patterns: []",
        "numbers: []",
        "",
    ]
    return "\n".join(out)
