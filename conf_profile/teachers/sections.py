"""Split documents into their `## <source>` sections (docs/architecture.md, "Document format").

Why it is safe to split on header lines: the documents stage removes newlines from every piece of user text
(and ⟦⟧ inside it), so a comment cannot start a line and forge a `## watch` header. A header's name is its
first word. The column version splits a whole Arrow column once, whatever the number of sources.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SOURCES = ("profile", "watch", "searches", "comments", "purchases")


def teacher_sources(name: str, wanted, known_sources=None) -> list[str]:
    """The sections a teacher reads: its own `sources` (all known sections when empty), each one known to the
    configured source; otherwise a clear error naming the teacher."""
    from conf_profile.errors import ConfProfileError

    known = list(known_sources) if known_sources is not None else list(SOURCES)  # the source's sections
    sources = list(wanted) or known
    bad = [s for s in sources if s not in known]
    if bad:
        raise ConfProfileError(f"Teacher {name!r} reads unknown sources {bad}.", f"Use sources from: {', '.join(known)}.")
    return sources
_HEADER = re.compile(r"^## [ \t]*(\S+)[^\n]*$", re.MULTILINE)


def split_sections(document: str) -> dict[str, str]:
    """{source: body text} of one document; a source given twice is concatenated."""
    out: dict[str, str] = {}
    matches = list(_HEADER.finditer(document or ""))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(document)
        body = document[m.end():end].strip("\n")
        name = m.group(1)
        out[name] = f"{out[name]}\n{body}" if name in out else body
    return out


def section_columns(documents: pa.Array | pa.ChunkedArray, sources: list[str] | tuple[str, ...]) -> dict[str, pa.Array]:
    """{source: the body of that section for every document ('' where absent)}, from one split of the
    column on header lines — one pass whatever the number of sources."""
    docs = pc.fill_null(documents, "")
    if isinstance(docs, pa.ChunkedArray):
        docs = docs.combine_chunks()
    n = len(docs)
    # "\n## " starts every section once the document's first line gets a leading newline.
    parts = pc.split_pattern(pc.binary_join_element_wise("", docs, "\n"), "\n## ")
    parent = pc.list_parent_indices(parts).to_numpy()
    flat = pc.list_flatten(parts)
    head_body = pc.split_pattern(flat, "\n", max_splits=1)
    header = pc.utf8_trim_whitespace(pc.list_element(head_body, 0))
    name = pc.list_element(pc.split_pattern(header, " ", max_splits=1), 0)
    body = _second(head_body)
    empty = pa.array([""] * n, pa.string())
    out = {}
    for source in sources:
        hit = np.flatnonzero(pc.fill_null(pc.equal(name, source), False).to_numpy(zero_copy_only=False))
        if hit.size == 0:
            out[source] = empty
            continue
        users = parent[hit]
        bodies = pc.take(body, pa.array(hit))
        if np.unique(users).size != users.size:  # a source given twice: join its bodies in order
            t = pa.table({"u": users, "b": bodies}).group_by("u", use_threads=False).aggregate([("b", "list")])
            users, bodies = t["u"].to_numpy(), pc.binary_join(t["b_list"], "\n").combine_chunks()
        idx = np.full(n, -1, dtype=np.int64)
        idx[users] = np.arange(users.size)
        out[source] = pc.fill_null(pc.take(bodies, pa.array(idx, mask=idx < 0)), "")
    return out


def _second(head_body: pa.Array) -> pa.Array:
    """Element 1 of each [header, body] list; '' where a section has a header only."""
    has_body = pc.greater(pc.list_value_length(head_body), 1)
    first = head_body.offsets.to_numpy()[:-1] - head_body.offsets[0].as_py()
    mask = has_body.to_numpy(zero_copy_only=False)
    got = pc.take(pc.list_flatten(head_body), pa.array(np.where(mask, first + 1, 0)))
    return pc.if_else(has_body, got, "")


def section_column(documents: pa.Array | pa.ChunkedArray, source: str) -> pa.Array:
    """The body of section `source` for every document ('' where the section is absent)."""
    return section_columns(documents, [source])[source]
