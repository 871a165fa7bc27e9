"""The validation contract (data.md) as data: one `RowCheck` per rule, read twice.

GX judges: `expectation()` turns a check into a Great Expectations 1.x expectation whose result decides
pass/fail and reports observed values. Arrow splits: `mask()` evaluates the *same* rule as a vectorised
pyarrow mask, because GX does not return full row sets cheaply and every row must land either in the clean
table or in the quarantine. Both read the same fields, so judge and splitter cannot drift apart; the report
carries both counts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import TableSpec, ValidationSettings
from conf_profile.config.sections import default_table
from conf_profile.data.extract import PARTITION
from conf_profile.intervals import Interval
from conf_profile.schema import RAW_SCHEMAS, TS


# Numeric ranges come from the source description (`source.tables.<table>.ranges`): (column, lower bound, lower
# bound excluded, required). Critical. Every one must also be finite (+-inf is quarantined); a null is
# "unknown" unless the number is required. NaN counts as null, as it does in pandas and so in GX: the two
# judges cannot tell them apart, so neither does the contract.
def numeric_ranges(spec: TableSpec) -> list[tuple[str, float | None, bool, bool]]:
    return [(col, r.min, r.strict_min, r.required) for col, r in spec.ranges.items()]


NUMERIC_RANGES = {n: numeric_ranges(TableSpec(**default_table(n)))  # the built-in tables' (bench/ reads it)
                  for n in ("watch_events", "purchases")}
# User ids made only of whitespace (or empty) would merge strangers into one fake user. The class lists
# every character `str.isspace()` accepts, literally, so Python's `re` (GX on pandas) and RE2 (Arrow) read
# the same pattern the same way (RE2 has no \u escapes, `re` no POSIX classes).
_SPACES = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace())
BLANK_PATTERN = f"^[{_SPACES}]*$"
_FLOAT_MAX = sys.float_info.max
# Free text (`text_columns`, over-long values quarantined as a warning) and categorical columns
# (`category_columns`, checked against `validation.vocabularies`) are per table in `source.tables`.
DUPLICATE = "duplicate"
# The column GX validates the duplicate rule on: each row's index of the first row identical to it (its own
# index when it has no earlier copy). Unique values <=> no exact duplicate rows, and GX's unexpected count (every
# copy) is the same as `ExpectCompoundColumnsToBeUnique` over all columns gives; see `first_identical_row`.
ROW_KEY = "__first_identical_row"
INVALID_UTF8 = "invalid_utf8"
_UTF8_BLOCK = 4096  # values validated per call when a column holds invalid UTF-8 somewhere


@dataclass(frozen=True)
class RowCheck:
    """One row-level rule. `reason` is the quarantine code; `label` the human wording in messages."""

    reason: str
    label: str
    column: str | None
    critical: bool
    kind: str  # not_null | not_blank | between | finite | unique | max_length | in_set
    min_value: Any = None
    max_value: Any = None
    strict_min: bool = False
    strict_max: bool = False
    value_set: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # for `unique`: the whole row
    keep: bool = False  # record and warn only: the rows stay (unknown category values, by default)


def ts_bounds(interval: Interval, skew_hours: float) -> tuple[datetime, datetime]:
    """[start - skew, end + skew): late or early clocks within the skew are tolerated, not quarantined."""
    skew = timedelta(hours=skew_hours)
    start = datetime.combine(interval.start, time(), tzinfo=UTC)
    end = datetime.combine(interval.end, time(), tzinfo=UTC)
    return start - skew, end + skew


def row_checks(table: str, interval: Interval, settings: ValidationSettings,
               spec: TableSpec | None = None) -> list[RowCheck]:
    """Every row-level rule for one raw table, critical first (quarantine reasons keep this order). `spec`
    (the table's `source.tables` entry) names its columns, free text and categories; default: the built-in one."""
    spec = spec or TableSpec(**default_table(table))
    schema = spec.schema()
    lo, hi = ts_bounds(interval, settings.ts_skew_hours)
    skew = f"{settings.ts_skew_hours:g}h"
    checks = [
        RowCheck("user_id_null", "user_id not null", "user_id", True, "not_null"),
        RowCheck("user_id_blank", "user_id not blank", "user_id", True, "not_blank"),
        RowCheck("ts_null", "ts not null", "ts", True, "not_null"),
        RowCheck("ts_outside_interval", f"ts inside {interval} (±{skew})", "ts", True, "between",
                 min_value=lo, max_value=hi, strict_max=True),
    ]
    for col, bound, strict, required in numeric_ranges(spec):
        if col not in schema.names:
            continue
        if required:
            checks.append(RowCheck(f"{col}_null", f"{col} not null (NaN counts as null)", col, True, "not_null"))
        checks.append(RowCheck(f"{col}_not_finite", f"{col} finite (not +-inf)", col, True, "finite"))
        if bound is None:
            continue
        op = ">" if strict else ">="
        reason = f"{col}_{_range_word(bound, strict)}"
        checks.append(RowCheck(reason, f"{col} {op} {bound:g}", col, True, "between",
                               min_value=bound, strict_min=strict))
    for col, top in _upper_bounds(schema, settings):
        checks.append(RowCheck(f"{col}_too_large", f"{col} <= {top:g}", col, True, "between", max_value=top))
    checks.append(RowCheck(DUPLICATE, "no exact duplicate rows (first copy kept)", None, False, "unique",
                           columns=tuple(schema.names)))
    for col in spec.text_columns:
        checks.append(RowCheck(f"{col}_too_long", f"len({col}) <= {settings.max_text_chars}", col, False,
                               "max_length", max_value=settings.max_text_chars))
    for col in spec.category_columns:
        vocab = settings.vocabularies.get(f"{table}.{col}")
        if vocab is None:
            continue  # observed, not checked
        checks.append(RowCheck(f"{col}_unknown", f"{col} in the declared vocabulary", col, False, "in_set",
                               keep=settings.unknown_categories == "warn",
                               value_set=tuple(vocab)))
    return checks


def _upper_bounds(schema: pa.Schema, settings: ValidationSettings) -> list[tuple[str, float]]:
    """`validation.max_values` (column -> plausible maximum) for this table's numeric columns. Opt-in: no
    bound fits every platform's prices or durations, but an operator knows theirs."""
    return [(col, float(top)) for col, top in settings.max_values.items()
            if col in schema.names and (pa.types.is_integer(schema.field(col).type)
                                        or pa.types.is_floating(schema.field(col).type))]


def _range_word(bound: float, strict: bool) -> str:
    if bound == 0:
        return "not_positive" if strict else "negative"
    return "out_of_range"


# ---- GX side -----------------------------------------------------------------------------------------------
def expectation(gx: Any, check: RowCheck, tolerance: float) -> Any:
    """The GX 1.x expectation for a check. Critical ones carry `mostly` (a few bad rows are normal in real
    logs; the run fails only above the tolerance); warnings are strict, so any bad row shows as a failure."""
    kw: dict[str, Any] = {"meta": {"check": check.reason, "critical": check.critical, "label": check.label}}
    if check.critical:
        kw["mostly"] = max(0.0, min(1.0, 1.0 - tolerance))
    e = gx.expectations
    if check.kind == "not_null":
        return e.ExpectColumnValuesToNotBeNull(column=check.column, **kw)
    if check.kind == "not_blank":
        return e.ExpectColumnValuesToNotMatchRegex(column=check.column, regex=BLANK_PATTERN, **kw)
    if check.kind == "finite":  # +-inf lie outside the largest finite double; null/NaN are not judged here
        return e.ExpectColumnValuesToBeBetween(column=check.column, min_value=-_FLOAT_MAX, max_value=_FLOAT_MAX,
                                               **kw)
    if check.kind == "between":
        return e.ExpectColumnValuesToBeBetween(
            column=check.column, min_value=_gx_value(check.min_value), max_value=_gx_value(check.max_value),
            strict_min=check.strict_min, strict_max=check.strict_max, **kw)
    if check.kind == "unique":  # on `gx_frame`'s row key: one int64 column instead of a whole-row hash in pandas
        return e.ExpectColumnValuesToBeUnique(column=ROW_KEY, **kw)
    if check.kind == "max_length":
        return e.ExpectColumnValueLengthsToBeBetween(column=check.column, max_value=check.max_value, **kw)
    if check.kind == "in_set":
        return e.ExpectColumnValuesToBeInSet(column=check.column, value_set=list(check.value_set), **kw)
    raise ValueError(f"unknown check kind {check.kind!r}")


def table_expectations(gx: Any, table: str, min_rows: int, columns: list[str] | None = None,
                       extra_ok: bool = False) -> list[Any]:
    """Critical table-level expectations: the contract's columns (+ `dt` and `gx_frame`'s row key; kept extra
    columns may follow), and the row-count floor."""
    e = gx.expectations
    columns = list(RAW_SCHEMAS[table].names) if columns is None else columns
    return [
        e.ExpectTableColumnsToMatchSet(column_set=[*columns, PARTITION, ROW_KEY], exact_match=not extra_ok,
                                       meta={"check": "columns", "critical": True, "label": "required columns"}),
        e.ExpectTableRowCountToBeBetween(min_value=min_rows,
                                         meta={"check": "row_count", "critical": True,
                                               "label": f"row count >= {min_rows}"}),
    ]


STRING_KINDS = ("not_blank", "max_length")  # checks GX runs as `.astype(str).str...` on the column


def gx_frame(encoded: pa.Table, row_key: np.ndarray, string_columns: tuple[str, ...] = ()) -> Any:
    """The pandas frame GX validates, from `encode_text`'s table (text columns become categoricals; those in
    `string_columns` Arrow dictionary arrays) plus the row key (`first_identical_row`) as column `ROW_KEY`.

    Why categoricals: GX filters the whole frame once per column expectation (`df[df[col].notnull()]`), and
    pandas copies every column to do it. A categorical copies int32 codes instead of strings (~3x less time
    per filter). Why Arrow dictionaries for the columns GX reads as strings (regex, lengths): GX first runs
    `column.astype(str)`, which turns a categorical into a million Python strings (~0.13 s per 1M rows); a
    dictionary array casts in Arrow and still filters as int32 indices. Every value, null and NaN reads as
    before: GX's string expectations (`.str`, `isin`, regex) work on both unchanged. Why the row key: GX's
    whole-row uniqueness check factorizes every column in pandas (a third of the suites' time on 1M rows);
    uniqueness of one int64 column is ~15x cheaper, and the key is the one the quarantine splits on."""
    import pandas as pd

    if ROW_KEY in encoded.column_names:
        raise ValueError(f"column {ROW_KEY!r} is reserved for the duplicate check")
    table = encoded.append_column(ROW_KEY, pa.array(row_key))
    arrow = [c for c in table.column_names if c in string_columns and pa.types.is_dictionary(table.schema.field(c).type)]
    frame = table.drop_columns(arrow).to_pandas()
    for c in sorted(arrow, key=table.column_names.index):  # back in place, left to right
        frame.insert(table.column_names.index(c), c, pd.arrays.ArrowExtensionArray(table.column(c)))
    return frame


def _gx_value(value: Any) -> Any:
    """GX compares pandas timestamps with ISO strings; numbers pass through."""
    return value.isoformat() if isinstance(value, datetime) else value


# ---- Arrow side ---------------------------------------------------------------------------------------------
def mask(check: RowCheck, table: pa.Table, encoded: pa.Table | None = None,
         row_key: np.ndarray | None = None) -> pa.Array:
    """True where a row violates the check (never null). Same null semantics as GX on pandas: a null (or
    NaN) value is "missing" and only `not_null` flags it. `encoded` (`encode_text(table)`) or `row_key`
    (`first_identical_row`), when given, save the duplicate check its own work."""
    if check.kind == "unique":
        if row_key is None:
            row_key = first_identical_row(table if encoded is None else encoded)
        return pa.array(row_key != np.arange(len(row_key)))
    col = table.column(check.column)
    if check.kind == "not_null":
        out = pc.is_null(col, nan_is_null=True)
    elif check.kind == "not_blank":
        out = pc.match_substring_regex(col, BLANK_PATTERN)
    elif check.kind == "finite":
        out = pc.is_inf(col)
    elif check.kind == "between":
        out = _outside(col, check)
    elif check.kind == "max_length":
        out = pc.greater(pc.utf8_length(col), check.max_value)
    elif check.kind == "in_set":
        out = pc.invert(pc.is_in(col, value_set=pa.array(check.value_set, col.type)))
        out = pc.and_(out, pc.is_valid(col))
    else:
        raise ValueError(f"unknown check kind {check.kind!r}")
    return _flat(pc.fill_null(out, False))


def _outside(col: pa.ChunkedArray, check: RowCheck) -> pa.ChunkedArray:
    parts = []
    if check.min_value is not None:
        lo = _scalar(check.min_value, col.type)
        parts.append(pc.less_equal(col, lo) if check.strict_min else pc.less(col, lo))
    if check.max_value is not None:
        hi = _scalar(check.max_value, col.type)
        parts.append(pc.greater_equal(col, hi) if check.strict_max else pc.greater(col, hi))
    out = parts[0]
    for p in parts[1:]:
        out = pc.or_kleene(out, p)
    return out


def repair_utf8(table: pa.Table) -> tuple[pa.Table, pa.Array, list[str]]:
    """(table with every invalid UTF-8 value made valid, mask of the rows that had one, the columns).

    Why before both judges: bytes that are not text crash pandas (so GX) and every string kernel, and Arrow
    does not check UTF-8 when it reads Parquet. Arrow alone judges this rule. A bad value is kept with its
    bytes escaped (`\\xff`, Python's backslashreplace), so the quarantined row still shows what was sent.
    The usual week costs one fast validation pass per string column; only a column that fails it is
    searched, block by block, and only a failing block value by value."""
    bad = np.zeros(table.num_rows, dtype=bool)
    columns = []
    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        col = table.column(i)
        try:
            col.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        fixed, rows = _repair_column(col.combine_chunks())
        table = table.set_column(i, f, fixed)
        bad |= rows
        columns.append(f.name)
    return table, pa.array(bad), columns


def _repair_column(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    rows = np.zeros(len(arr), dtype=bool)
    fixes: list[str] = []
    for start in range(0, len(arr), _UTF8_BLOCK):
        block = arr.slice(start, _UTF8_BLOCK)
        try:
            block.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        for j, raw in enumerate(block.view(pa.binary() if pa.types.is_string(arr.type) else pa.large_binary())
                                .to_pylist()):
            if raw is None:
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                rows[start + j] = True
                fixes.append(raw.decode("utf-8", "backslashreplace"))
    fixed = pc.replace_with_mask(arr, pa.array(rows), pa.array(fixes, arr.type))
    return fixed, rows


def duplicate_mask(table: pa.Table) -> pa.Array:
    """True for every exact copy of an earlier row (the first occurrence is kept)."""
    key = first_identical_row(table)
    return pa.array(key != np.arange(len(key)))


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit hash of every row (uint64), vectorised numpy over dictionary codes and value bits. Never
    finer than Arrow's equality: -0.0 hashes as 0.0, every NaN as one NaN, every null as one pattern."""
    h = np.zeros(table.num_rows, dtype=np.uint64)
    for col in table.columns:
        h = _mix(h, _value_bits(col))
    return h


def first_identical_row(table: pa.Table, hashes: np.ndarray | None = None) -> np.ndarray:
    """For each row, the index of the first row equal to it in every column (nulls compare equal, as in
    pandas); a row without an earlier copy gets its own index.

    Exact, in two passes: the row hashes (`row_hashes`, or `hashes` when given) find the candidates, the
    rows whose hash occurs more than once (the copies, plus a collision now and then); an Arrow hash
    group-by on those rows alone then groups them by their real values, so no copy is missed and no
    collision merges two different rows. String columns are dictionary-encoded first (`encode_text`
    output is read as is)."""
    n = table.num_rows
    key = np.arange(n, dtype=np.int64)
    if n == 0 or table.num_columns == 0:
        return key
    h = row_hashes(table) if hashes is None else hashes
    import pandas as pd  # GX's engine, so already loaded where this runs; its hash table beats a sort

    candidates = np.flatnonzero(pd.Series(h).duplicated(keep=False).to_numpy())
    if len(candidates) == 0:
        return key
    sub = table.take(pa.array(candidates))
    keys = {name: _codes(sub.column(name)) for name in sub.column_names}
    keys["__row"] = pa.array(candidates)
    groups = pa.table(keys).group_by(sub.column_names).aggregate([("__row", "min"), ("__row", "list")])
    members = groups.column("__row_list").combine_chunks()
    rows = pc.list_flatten(members).to_numpy()
    key[rows] = np.repeat(groups.column("__row_min").to_numpy(), pc.list_value_length(members).to_numpy())
    return key


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NULL_BITS = np.uint64(0xA24BAED4963EE407)


def _mix(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Fold one column's 64-bit values into the row hashes (multiply-xorshift; uint64 wraps around)."""
    h = (h ^ x) * _GOLDEN
    return h ^ (h >> np.uint64(31))


def _value_bits(col: pa.ChunkedArray) -> np.ndarray:
    """64 bits per value such that values Arrow's group-by calls equal get equal bits (nulls one pattern)."""
    typ = col.type
    if pa.types.is_dictionary(typ) or _is_text(typ):
        codes = _codes(col)
        return pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
    if pa.types.is_floating(typ):
        vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # -0.0 -> 0.0; null -> NaN
        vals[np.isnan(vals)] = np.nan
        bits = vals.view(np.uint64)
    elif pa.types.is_boolean(typ) or pa.types.is_integer(typ) or pa.types.is_timestamp(typ):
        ints = pc.fill_null(col.cast(pa.int64(), safe=False), 0)  # a timestamp's int64 is its count of units
        bits = ints.to_numpy(zero_copy_only=False).view(np.uint64)
    else:  # anything else: one code per distinct value
        return _value_bits(pc.dictionary_encode(_flat(col)).indices)
    if col.null_count:
        bits = np.where(pc.is_valid(col).to_numpy(zero_copy_only=False), bits, _NULL_BITS)
    return bits


def encode_text(table: pa.Table) -> pa.Table:
    """Text columns dictionary-encoded, one dictionary per column over all chunks (null stays null)."""
    cols = [pc.dictionary_encode(col.combine_chunks()) if _is_text(col.type) else col for col in table.columns]
    return pa.table(cols, names=table.column_names)


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _codes(col: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    """Equal strings -> equal int32 codes (one dictionary over all chunks; null stays null)."""
    if _is_text(col.type):
        return pc.dictionary_encode(col.combine_chunks()).indices
    if pa.types.is_dictionary(col.type):  # already encoded by `encode_text`: one dictionary
        return col.indices if isinstance(col, pa.Array) else col.combine_chunks().indices
    return col


def _scalar(value: Any, typ: pa.DataType) -> pa.Scalar:
    if isinstance(value, datetime):
        return pa.scalar(value, type=TS).cast(typ)
    return pa.scalar(value).cast(typ)


def _flat(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
