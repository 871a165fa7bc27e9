"""Words and phrase matches over whole Arrow columns (the lexicon teachers' hot path).

Why this shape: a lexicon has hundreds of phrases and a real week a million users. Scanning the text once
per phrase (or per class regex) costs passes x bytes; instead each column is split into words once
(`split_pattern_regex`), and phrases of n words are found by hash lookups (`index_in`) of the n-grams that
start at words which begin some phrase. The cost is one pass over the words plus a lookup per word,
whatever the lexicon size.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BARRIER = "\x01"  # marks a line break: the documents stage turns control characters in user text into spaces
_SPLIT = r"[^a-z0-9'_\x01]+"
_WORD = re.compile(r"[a-z0-9'_]+")


def normalise_phrase(text: str) -> str:
    """A lexicon phrase as the word sequence the matcher sees ("I'm a Nurse!" -> "i'm a nurse")."""
    words = [w.strip("'") for w in _WORD.findall(text.lower().replace("’", "'"))]
    return " ".join(w for w in words if w)


def prepare(column: pa.Array, source: str) -> pa.Array:
    """Lower-case a section column and turn platform markup into words: a watch line's category tag
    "[cooking]" (or any `[category]` of another table's section) becomes "cat_cooking", a purchase line "- baby 35.50" gives "buy_baby"; line breaks
    become a barrier word so no phrase spans two items."""
    t = pc.utf8_lower(column)
    t = pc.replace_substring(t, "’", "'")
    if source not in ("profile", "searches", "comments", "purchases"):  # watch, and sections of other tables
        t = pc.replace_substring_regex(t, r"\[([a-z0-9_]+)\]", r" cat_\1 ")
    elif source == "purchases":
        t = pc.replace_substring_regex(t, r"(?m)^- ([a-z0-9_]+)", r"- buy_\1")
    return pc.replace_substring(t, "\n", f" {BARRIER} ")


def words(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(words, row index of each word) of a prepared column; empty words dropped."""
    lists = pc.split_pattern_regex(column, _SPLIT)
    values = pc.utf8_trim(pc.list_flatten(lists), "'")
    parents = pc.list_parent_indices(lists).to_numpy()
    keep = pc.greater(pc.utf8_length(values), 0)
    return values.filter(keep), parents[keep.to_numpy(zero_copy_only=False)]


def match_phrases(values: pa.Array, parents: np.ndarray, phrases_by_len: dict[int, tuple[pa.Array, np.ndarray]],
                  first_words: pa.Array, first_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Occurrences of lexicon phrases: (row index, phrase id) per match.

    `phrases_by_len[n]` = (the normalised phrases of n words, their global ids); `first_words` = the distinct
    first words of all phrases, and `first_len[i, n]` says whether first word i starts a phrase of n words
    (one hash lookup per word filters where n-grams are worth building)."""
    rows: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    m = len(values)
    if m == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    fidx = pc.index_in(values, value_set=first_words)
    fvalid = pc.is_valid(fidx).to_numpy(zero_copy_only=False)
    fpos = np.flatnonzero(fvalid)
    fword = pc.drop_null(fidx).to_numpy()
    for n, (phrases, gids) in phrases_by_len.items():
        if n == 1:
            idx = pc.index_in(pc.take(values, pa.array(fpos)), value_set=phrases)
            hit = np.flatnonzero(pc.is_valid(idx).to_numpy(zero_copy_only=False))
            if hit.size:
                rows.append(parents[fpos[hit]])
                ids.append(gids[pc.take(idx, pa.array(hit)).to_numpy()])
            continue
        start = fpos[first_len[fword, n]]
        start = start[start + n - 1 < m]
        start = start[parents[start] == parents[start + n - 1]]
        if start.size == 0:
            continue
        gram = pc.take(values, pa.array(start))
        for k in range(1, n):
            gram = pc.binary_join_element_wise(gram, pc.take(values, pa.array(start + k)), " ")
        idx = pc.index_in(gram, value_set=phrases)
        hit = np.flatnonzero(pc.is_valid(idx).to_numpy(zero_copy_only=False))
        if hit.size:
            rows.append(parents[start[hit]])
            ids.append(gids[pc.take(idx, pa.array(hit)).to_numpy()])
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(ids).astype(np.int64)
