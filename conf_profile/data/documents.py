"""One redacted, delimited, budgeted text document per user (format: docs/architecture.md, "Document format").

Engine: pyarrow compute + numpy, no per-event Python. Each source becomes a table of candidate *items*
(user code, priority rank, display position, formatted line) through hash aggregates, multi-key sorts and
a per-user rank (top-k); the budget is a segmented cumulative sum; lines are joined per user with
`binary_join` over list offsets. Users are integer codes into the sorted list of user ids, so every sort
and segment is over integers.

Budget (why "equal-rate filling"): every item of every section is ordered by the character offset at which
it *ends* inside its own section (its section header included), and items are taken in that order while
the document stays within `char_budget`. This is progressive filling: all non-empty sections grow at the
same rate in characters, so a section gets min(what it needs, a fair share) and the share that short
sections leave is used by long ones. Twelve long watch lines or four 200-char comments therefore cannot
starve searches or purchases, unlike a fixed section order; unlike fixed per-section quotas no budget is
wasted on sections that need less. An item that does not fit closes its section (items stay a
most-informative-first prefix) and filling continues with the other sections.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from conf_profile.config import DocumentSettings, Settings, source_schemas
from conf_profile.data.document_budget import (
    SECTIONS,
    Items,
    _arr,
    assemble,
    group_starts,
)
from conf_profile.data.redact import KINDS, decode, encode, prepare_codes, sanitize, sorted_codes, wrap
from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.schema import DOCUMENT_SCHEMA, RAW_SCHEMAS
from conf_profile.storage import Lake

EVENT_TABLES = ("watch_events", "searches", "comments", "purchases")  # the default source's event tables
HEADERS = [f"## {s}" for s in SECTIONS]

# Watch engagement score = watch ratio in [0, 1] + bonuses. Explicit actions outweigh a full view: a like
# or a share says more about taste than autoplay; a rewatch adds a little, capped so loops do not dominate.
W_LIKED, W_SHARED, W_COMMENTED, W_REPEAT, MAX_REPEATS = 0.5, 0.75, 0.5, 0.25, 3

# Profile fields: name -> (display position, budget priority). Structured declared fields are short and the
# most informative, so they are kept first when the profile must be cut; the bio (where users disclose
# things) comes next. Display order stays the documented one.
PROFILE_FIELDS = {
    "nickname": (0, 5), "bio": (1, 2), "declared_gender": (2, 0), "declared_age": (3, 1),
    "device": (4, 4), "city": (5, 3),
}
# Profile columns written by the user or their client: redacted and wrapped like any other user text.
PROFILE_TEXT = ("nickname", "bio", "device_model", "ip_city")


class TextPrep:
    """Prepares free-text columns (redact.prepare_codes) and keeps the redaction counts for the summary."""

    def __init__(self, max_chars: int):
        self.max_chars = max_chars
        self.counts = dict.fromkeys(KINDS, 0)

    def codes(self, arr: pa.Array | pa.ChunkedArray, fold_case: bool = False) -> tuple[pa.Array, np.ndarray]:
        """Sorted distinct prepared strings and each row's code into them (-1: nothing left)."""
        values, codes, counts = prepare_codes(arr, self.max_chars, fold_case)
        for k, v in counts.items():
            self.counts[k] += v
        return values, codes

    def __call__(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        return decode(*self.codes(arr))


# ---- entry point ------------------------------------------------------------------------------------------
def build_from_tables(tables: dict[str, pa.Table], interval: Interval, settings: Settings) -> tuple[pa.Table, dict]:
    """The documents (DOCUMENT_SCHEMA, sorted by user id) of the users in `tables` (clean tables, all users or
    one shard's) and their summary. A section is built only from a configured table; sections follow the
    tables' order. Every user's document depends on that user's rows only, so shards concatenate to the
    unsharded build."""
    cfg = settings.documents
    source = settings.source
    users = user_index(tables)
    tables, rows_without_user = attach_codes(tables, users)
    prep = TextPrep(cfg.max_text_chars)
    sections = source.sections()
    items, gender_dropped = [], 0
    for i, name in enumerate(sections.values()):
        spec, t = source.tables[name], tables[name]
        if spec.format == "profile":
            it, gender_dropped = profile_items(t, prep, interval.end.year, cfg.gender_values)
        elif spec.format == "watch":
            it = watch_items(t, prep, cfg.max_watch_items)
        elif spec.format == "searches":
            it = search_items(t, prep, cfg.max_searches)
        elif spec.format == "comments":
            it = comment_items(t, prep, cfg.max_comments)
        elif spec.format == "purchases":
            it = purchase_items(t, prep, cfg.max_purchases)
        else:
            it = line_items(t, prep, spec.line, spec.text_columns, spec.category_columns, spec.max_items)
        it.section = i
        items.append(it)
    docs, stats = assemble(items or [Items.empty(0)], len(users), cfg.char_budget, list(sections))
    n_events = np.zeros(len(users), dtype=np.int64)
    for t in source.event_tables():
        n_events += np.bincount(tables[t]["code"].to_numpy(), minlength=len(users))
    out = documents_table(users, docs, n_events)
    summary = summarize(out, cfg, stats, prep.counts, "")
    summary.update(interval=str(interval), users_seen=len(users), rows_without_user=rows_without_user,
                   events=int(np.sum(n_events)), users_skipped=len(users) - out.num_rows,
                   declared_gender_dropped=gender_dropped, tables=list(tables))
    return out, summary


def documents_table(users: pa.Array, docs: pa.Array, n_events: np.ndarray) -> pa.Table:
    """DOCUMENT_SCHEMA rows for users whose document is not empty (users are already sorted)."""
    docs = docs.cast(pa.string())
    table = pa.table({"user_id": users, "document": docs, "n_events": n_events,
                      "n_chars": pc.cast(pc.utf8_length(docs), pa.int64())}, schema=DOCUMENT_SCHEMA)
    return table.filter(pc.greater(table["n_chars"], 0))


def summarize(out: pa.Table, cfg: DocumentSettings, stats: dict, pii: dict[str, int], path: str) -> dict:
    chars = out["n_chars"].to_numpy()
    return {
        "documents": out.num_rows,
        "median_chars": int(np.median(chars)) if len(chars) else 0,
        "max_chars": int(chars.max()) if len(chars) else 0,
        "char_budget": cfg.char_budget,
        "pii_redactions": sum(pii.values()),
        "pii_by_kind": pii,
        "sources": stats["sources"],
        "truncated_users": stats["truncated_users"],
        "path": path,
    }


# ---- input ------------------------------------------------------------------------------------------------
def read_clean_tables(lake: Lake, interval: Interval, settings: Settings | None = None,
                      users: pa.Array | None = None, nulls: bool = True,
                      parts: dict[str, str] | None = None) -> dict[str, pa.Table]:
    """The validated configured tables, cast to their contract schemas (`config.source_schemas`); a clear
    error naming the fix when one is missing. A table that is not configured is not read. With `users` (one
    shard's), only their rows are materialised (a scan filter), plus rows without a user id when `nulls`;
    a table named in `parts` is read from that committed folder instead (the shard's rows, already split)."""
    schemas = source_schemas(settings) if settings is not None else dict(RAW_SCHEMAS)
    missing = [t for t in schemas if not lake.is_committed(RunLayout(interval).clean(t))]
    if missing:
        raise LakeError(
            f"No validated (clean) tables for {interval}: {', '.join(missing)} missing under "
            f"{lake.uri_of(RunLayout(interval).clean_root)}.",
            f"Run `conf-profile validate --interval {interval}` first.",
        )
    parts = parts or {}
    return {t: _read_clean(lake, interval, t, schema, users, nulls, parts.get(t)) for t, schema in schemas.items()}


def _read_clean(lake: Lake, interval: Interval, name: str, schema: pa.Schema | None = None,
                users: pa.Array | None = None, nulls: bool = True, part: str | None = None) -> pa.Table:
    schema = RAW_SCHEMAS[name] if schema is None else schema
    rel = RunLayout(interval).clean(name)
    if part is not None:
        table = lake.read_committed(part)
    else:
        table = lake.read_committed(rel) if users is None else _read_users(lake, rel, users, nulls)
    if table.num_columns == 0:  # committed with no files: an empty table
        return schema.empty_table()
    absent = [c for c in schema.names if c not in table.column_names]
    try:
        if absent:
            raise ValueError(f"missing columns {absent}")
        return table.select(schema.names).cast(schema)
    except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LakeError(
            f"Clean table {lake.uri_of(rel)} does not match the {name} schema ({exc}).",
            f"Rerun `conf-profile validate --interval {interval}` with this version of conf-profile.",
        ) from None


def _read_users(lake: Lake, rel: str, users: pa.Array, nulls: bool) -> pa.Table:
    """The rows of a committed folder whose user_id is in `users` (and null ones when `nulls`): the filter
    runs inside the scan, so other shards' rows are never materialised."""
    paths = [lake.path(rel, f) for f in lake.manifest(rel)["files"] if f.endswith(".parquet")]
    if not paths:
        return pa.table({})
    data = ds.dataset(paths, filesystem=lake.fs, format="parquet")
    if "user_id" not in data.schema.names:
        return data.to_table()  # the schema check names the missing column
    field = ds.field("user_id")
    expr = field.isin(users.cast(data.schema.field("user_id").type))
    return data.to_table(filter=expr | field.is_null() if nulls else expr)


def user_index(tables: dict[str, pa.Table]) -> pa.Array:
    """Sorted distinct user ids over all tables: the users that get a document."""
    ids = pa.chunked_array([c for t in tables.values() for c in t["user_id"].chunks], pa.string())
    uniq = pc.unique(ids).drop_null()
    return uniq.take(pc.sort_indices(uniq))


def attach_codes(tables: dict[str, pa.Table], users: pa.Array) -> tuple[dict[str, pa.Table], int]:
    """Add `code` (position in `users`); rows without a user id cannot be attributed and are counted."""
    out, dropped = {}, 0
    for name, t in tables.items():
        code = pc.index_in(t["user_id"], value_set=users)
        keep = pc.is_valid(code)
        dropped += t.num_rows - int(pc.sum(keep).as_py() or 0)
        out[name] = t.append_column("code", pc.cast(code, pa.int64())).filter(keep)
    return out, dropped


# ---- per-user ranking -------------------------------------------------------------------------------------
def rank_in_group(start: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... inside each run that `start` marks."""
    idx = np.arange(len(start))
    return idx - np.maximum.accumulate(np.where(start, idx, 0))


def top_k(table: pa.Table, order: list[tuple[str, str]], k: int) -> pa.Table:
    """Sort by user code then `order`; keep the first k rows per user with their `rank`."""
    table = table.sort_by([("code", "ascending"), *order])
    rank = rank_in_group(group_starts(table["code"].to_numpy()))
    keep = rank < k
    return table.filter(pa.array(keep)).append_column("rank", pa.array(rank[keep]))


def items_of(section: int, table: pa.Table, line: pa.Array) -> Items:
    rank = table["rank"].to_numpy()
    return Items(section, table["code"].to_numpy(), rank, rank, line)


def masked(codes: np.ndarray) -> pa.Array:
    """Codes as an Arrow column, -1 as null (so aggregates and group keys skip or group them as missing)."""
    return pa.array(codes, mask=codes < 0)


# ---- sections ---------------------------------------------------------------------------------------------
def profile_items(t: pa.Table, prep: TextPrep, year: int,
                  gender_values: dict[str, list[str]]) -> tuple[Items, int]:
    """Fields of each user's latest snapshot row in the interval, and how many declared genders outside
    `gender_values` were left out. Every text field is the user's (or their client's) and is redacted and
    wrapped; the declared gender is reduced to its canonical value first, so no free text rides on it."""
    if t.num_rows == 0:
        return Items.empty(0), 0
    for name in PROFILE_TEXT:  # every snapshot row is redacted, so the PII counts cover all input
        t = t.set_column(t.schema.get_field_index(name), name, prep(t[name]))
    t = top_k(t, [("ts", "descending")], 1)
    gender, dropped = canonical_gender(t["declared_gender"], gender_values)
    birth = t["declared_birth_year"].to_numpy(zero_copy_only=False).astype(float)
    with np.errstate(invalid="ignore"):
        age = year - birth
    age_ok = np.isfinite(age) & (age > 0) & (age < 120)
    values = {
        "nickname": wrap(t["nickname"]),
        "bio": wrap(t["bio"]),
        "declared_gender": wrap(gender),
        "declared_age": pa.array(np.where(age_ok, age, 0).astype(np.int64), mask=~age_ok).cast(pa.string()),
        "device": wrap(t["device_model"]),
        "city": wrap(t["ip_city"]),
    }
    code = t["code"].to_numpy()
    parts = []
    for name, value in values.items():
        pos, rank = PROFILE_FIELDS[name]
        ok = _arr(pc.fill_null(pc.greater(pc.utf8_length(value), 0), False))
        line = _arr(pc.binary_join_element_wise(f"{name}: ", _arr(value).filter(ok), ""))
        sel = code[ok.to_numpy(zero_copy_only=False)]
        parts.append((sel, np.full(len(sel), rank), np.full(len(sel), pos), line))
    return Items(0, *[np.concatenate([p[i] for p in parts]) for i in range(3)],
                 pa.concat_arrays([p[3] for p in parts])), dropped


def canonical_gender(arr: pa.Array | pa.ChunkedArray, gender_values: dict[str, list[str]]) -> tuple[pa.Array, int]:
    """Each value as its canonical name (`DocumentSettings.gender_values`), null when it is none of the
    spellings; also how many non-empty values were dropped. Computed on the distinct values."""
    dictionary, idx = encode(arr)
    keys = gender_key(sanitize(dictionary))
    spellings = {gender_key(pa.array([s])).to_pylist()[0]: canon
                 for canon, spells in gender_values.items() for s in [canon, *spells]}
    pos = pc.index_in(keys, value_set=pa.array(list(spellings), pa.string()))
    values = pa.array(list(spellings.values()), pa.string()).take(pos)
    unknown = (pc.is_null(values).to_numpy(zero_copy_only=False)
               & pc.fill_null(pc.greater(pc.utf8_length(keys), 0), False).to_numpy(zero_copy_only=False))
    dropped = int(np.bincount(idx[idx >= 0], minlength=len(dictionary))[unknown].sum())
    return decode(values, idx), dropped


def gender_key(arr: pa.Array) -> pa.Array:
    """Lower-cased, trimmed, spaces and dashes as "_": "Non-Binary " and "non binary" -> "non_binary"."""
    return pc.replace_substring_regex(pc.utf8_trim_whitespace(pc.utf8_lower(arr)), r"[\s\-]+", "_")


def watch_items(t: pa.Table, prep: TextPrep, k: int) -> Items:
    """One line per distinct video, ranked by engagement. Strings travel as sorted codes: grouping and
    sorting 1M rows on integers is several times faster than on strings, and min(code) = min(string)."""
    if t.num_rows == 0:
        return Items.empty(1)
    vids, vid = sorted_codes(*encode(t["video_id"]))
    titles, title = prep.codes(t["video_title"])
    cats, cat = prep.codes(t["video_category"])  # platform taxonomy: redacted like all text, not wrapped
    g = pa.table({
        "code": t["code"], "vid": masked(vid), "ratio": pa.array(watch_ratio(t), from_pandas=True),
        "liked": t["liked"], "shared": t["shared"], "commented": t["commented"], "ts": t["ts"],
        "title": masked(title), "cat": masked(cat),
    }).group_by(["code", "vid"]).aggregate([
        ("ratio", "max"), ("liked", "any"), ("shared", "any"), ("commented", "any"), ([], "count_all"),
        ("ts", "max"), ("title", "min"), ("cat", "min"),
    ])
    flags = {f: pc.fill_null(g[f"{f}_any"], False).to_numpy(zero_copy_only=False) for f in ("liked", "shared", "commented")}
    ratio = g["ratio_max"].to_numpy(zero_copy_only=False).astype(float)
    views = g["count_all"].to_numpy()
    score = (np.nan_to_num(ratio) + W_LIKED * flags["liked"] + W_SHARED * flags["shared"]
             + W_COMMENTED * flags["commented"] + W_REPEAT * np.minimum(views - 1, MAX_REPEATS))
    g = g.append_column("score", pa.array(score))
    g = top_k(g, [("score", "descending"), ("ts_max", "descending"), ("vid", "ascending")], k)
    return items_of(1, g, watch_lines(g, titles, cats))


def watch_ratio(t: pa.Table) -> np.ndarray:
    """watch_seconds / video_seconds clipped to [0, 1]; NaN where the video length is unknown or zero."""
    w = t["watch_seconds"].to_numpy(zero_copy_only=False).astype(float)
    v = t["video_seconds"].to_numpy(zero_copy_only=False).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.clip(w / v, 0.0, 1.0), np.nan)


def watch_lines(g: pa.Table, titles: pa.Array, cats: pa.Array) -> pa.Array:
    """`- [category] ⟦title⟧ 87% liked shared commented`; unknown parts (nulls) are left out."""
    none = pa.scalar(None, pa.string())
    cat = pc.binary_join_element_wise("[", cats.take(g["cat_min"]), "]", "")
    pct = pc.cast(pc.round(pc.multiply(g["ratio_max"], 100.0)), pa.int64())
    pct = pc.binary_join_element_wise(pc.cast(pct, pa.string()), "%", "")
    flags = [pc.if_else(pc.fill_null(g[f"{f}_any"], False), f, none) for f in ("liked", "shared", "commented")]
    title = wrap(titles.take(g["title_min"]))
    return pc.binary_join_element_wise("-", cat, title, pct, *flags, " ", null_handling="skip")


def search_items(t: pa.Table, prep: TextPrep, k: int) -> Items:
    """Distinct queries (case-folded), most frequent, then most recent first."""
    queries, q = prep.codes(t["query"], fold_case=True)
    g = pa.table({"code": t["code"], "q": q, "ts": t["ts"]}).filter(pa.array(q >= 0))
    g = g.group_by(["code", "q"]).aggregate([([], "count_all"), ("ts", "max")])
    g = top_k(g, [("count_all", "descending"), ("ts_max", "descending"), ("q", "ascending")], k)
    return items_of(2, g, pc.binary_join_element_wise("- ", wrap(queries.take(g["q"])), ""))


def comment_items(t: pa.Table, prep: TextPrep, k: int) -> Items:
    """Distinct comments, most recent first, each already cut to `max_text_chars`."""
    texts, x = prep.codes(t["text"])
    g = pa.table({"code": t["code"], "x": x, "ts": t["ts"]}).filter(pa.array(x >= 0))
    g = g.group_by(["code", "x"]).aggregate([("ts", "max")])
    g = top_k(g, [("ts_max", "descending"), ("x", "ascending")], k)
    return items_of(3, g, pc.binary_join_element_wise("- ", wrap(texts.take(g["x"])), ""))


def purchase_items(t: pa.Table, prep: TextPrep, k: int) -> Items:
    """`- item_category price`, most expensive first (price says most about income and life stage)."""
    price = t["price"].to_numpy(zero_copy_only=False).astype(float)
    cats, cat = prep.codes(t["item_category"])
    g = pa.table({"code": t["code"], "cat": cat, "price": t["price"], "ts": t["ts"]})
    g = g.filter(pa.array(np.isfinite(price) & (price >= 0) & (cat >= 0)))
    g = top_k(g, [("price", "descending"), ("ts", "descending"), ("cat", "ascending")], k)
    return items_of(4, g, pc.binary_join_element_wise("- ", cats.take(g["cat"]), " ", money(g["price"]), ""))


def line_items(t: pa.Table, prep: TextPrep, columns: list[str], text: list[str], categories: list[str],
               k: int) -> Items:
    """The `lines` format (a table of the platform's own): one line per distinct item made of `columns` in
    order: free text redacted and wrapped in ⟦⟧, categories redacted as `[value]`, numbers as they are (two
    decimals at most), true flags by their column name; nulls left out. Most frequent first, then most recent."""
    if t.num_rows == 0 or not columns:
        return Items.empty(0)
    parts = []
    for col in columns:
        arr = t[col]
        if col in text:
            parts.append(wrap(prep(arr)))
        elif col in categories:
            parts.append(pc.binary_join_element_wise("[", prep(arr), "]", ""))
        elif pa.types.is_boolean(arr.type):
            parts.append(pc.if_else(pc.fill_null(arr, False), col, pa.scalar(None, pa.string())))
        elif pa.types.is_floating(arr.type):
            parts.append(pc.cast(pc.round(arr, 2), pa.string()))
        elif pa.types.is_integer(arr.type):
            parts.append(pc.cast(arr, pa.string()))
        else:
            parts.append(prep(pc.cast(arr, pa.string())))  # anything else is treated as platform text
    line = pc.binary_join_element_wise(*[_arr(p) for p in parts], " ", null_handling="skip")
    ok = pc.fill_null(pc.greater(pc.utf8_length(line), 0), False)
    g = pa.table({"code": t["code"], "line": line, "ts": t["ts"]}).filter(ok)
    g = g.group_by(["code", "line"]).aggregate([([], "count_all"), ("ts", "max")])
    g = top_k(g, [("count_all", "descending"), ("ts_max", "descending"), ("line", "ascending")], k)
    return items_of(0, g, pc.binary_join_element_wise("- ", g["line"], ""))


def money(price: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Two decimals ("35.50") without a Python format call per row."""
    cents = np.rint(np.asarray(price.to_numpy(zero_copy_only=False), dtype=float) * 100).astype(np.int64)
    whole = pa.array(cents // 100).cast(pa.string())
    frac = pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0")
    return pc.binary_join_element_wise(whole, ".", frac, "")


