"""Import a platform's own export (CSV, Parquet or JSON lines) into a raw table of the lake (docs/import.md).

Why a mapping file: exports never use our column names or formats. The mapping says which source column
fills each column of the table's description (`source.tables.<table>`), gives constants for columns the
export lacks, and the timestamp format. Rows are cast to the table's schema column by column (vectorised;
only a column whose cast fails is retried value by value to find the bad rows), partitioned by the UTC day of
`ts` and written with `Lake.write_partition` (atomic; re-importing the same file replaces its parts).

Bad input loses nothing: a row that cannot be cast, or has no `ts`, is not written but counted per reason and
saved aside, with its original values and a `reason`, under `raw/_rejected/<table>/` (named in the summary).
"""

from __future__ import annotations

import csv
import hashlib
import posixpath
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conf_profile.config import Settings, source_schemas
from conf_profile.errors import ConfProfileError
from conf_profile.storage import Lake

REJECTED_ROOT = "raw/_rejected"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


class ImportFailed(ConfProfileError):
    """The source file, the mapping or the table does not fit (named, with the fix)."""


class Mapping(BaseModel):
    """The mapping YAML: target column -> source column, constants, and how timestamps are written."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict)  # target column -> source column
    constants: dict[str, Any] = Field(default_factory=dict)  # target column -> one value for every row
    timestamp_format: str | None = None  # strptime format (e.g. "%d/%m/%Y %H:%M"); None: ISO 8601
    timezone: str = "UTC"  # zone of timestamps written without an offset


def load_mapping(path: str | Path) -> Mapping:
    p = Path(path)
    if not p.is_file():
        raise ImportFailed(f"Mapping file {p} does not exist.", "Pass a YAML mapping with --mapping (docs/import.md).")
    try:
        return Mapping(**(yaml.safe_load(p.read_text()) or {}))
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        text = " ".join(str(exc).split())[:400]
        raise ImportFailed(f"Mapping file {p} is not a valid mapping ({text}).",
                           "Use keys columns / constants / timestamp_format / timezone (docs/import.md).") from None


def read_source(path: str | Path) -> pa.Table:
    """CSV (every column read as text, cast later), Parquet, or JSON lines, by the file's suffix."""
    p = Path(path)
    if not p.is_file():
        raise ImportFailed(f"Source file {p} does not exist.", "Pass an existing file with --source.")
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            import pyarrow.csv as pacsv

            delimiter = "\t" if suffix == ".tsv" else ","
            with p.open(newline="", encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh, delimiter=delimiter), [])
            return pacsv.read_csv(p, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                  convert_options=pacsv.ConvertOptions(
                                      column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True))
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(p)
        if suffix in (".jsonl", ".ndjson", ".json"):
            import pyarrow.json as pajson

            return pajson.read_json(p)
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"Could not read {p}: {' '.join(str(exc).split())[:300]}.",
                           "Check the file's format (CSV with a header row, Parquet, or JSON lines).") from None
    raise ImportFailed(f"Unknown source format {suffix!r} ({p}).", "Use .csv, .tsv, .parquet or .jsonl files.")


def import_file(lake: Lake, settings: Settings, table: str, source: str | Path, mapping: Mapping) -> dict:
    """Import one file into raw/<table>/; return the summary (rows read, written, rejected by reason)."""
    schemas = source_schemas(settings)
    if table not in schemas:
        raise ImportFailed(f"Table {table!r} is not configured (source.tables has {', '.join(schemas)}).",
                           "Describe it under source.tables in the settings file first (docs/import.md).")
    spec, schema = settings.source.tables[table], schemas[table]
    data = read_source(source)
    columns, bad = {}, {}
    for f in schema:
        arr = _source_column(data, f.name, mapping, spec.columns, table)
        if arr is None:
            columns[f.name] = pa.nulls(data.num_rows, f.type)
            continue
        columns[f.name], rows = cast_column(arr, f.type, mapping if _is_ts(f.type) else None)
        if rows.any():
            bad[f"{f.name}_not_{_type_word(f.type)}"] = rows
    out = pa.table(columns, schema=schema)
    no_ts = pc.is_null(out["ts"]).to_numpy(zero_copy_only=False)
    bad["ts_missing"] = no_ts & ~bad.get("ts_not_timestamp", np.zeros(out.num_rows, bool))
    reject = np.any(list(bad.values()), axis=0) if bad else np.zeros(out.num_rows, bool)
    tag = _file_tag(Path(source))
    written = _write_days(lake, table, out.filter(pa.array(~reject)), tag)
    summary = {"table": table, "source": str(source), "rows_read": data.num_rows,
               "rows_written": int((~reject).sum()), "rows_rejected": int(reject.sum()),
               "rejected_by_reason": {r: int(m.sum()) for r, m in bad.items() if m.any()},
               "days": sorted(written), "files": [lake.uri_of(p) for p in written.values()], "rejected_path": None}
    if reject.any():
        rel = posixpath.join(REJECTED_ROOT, table, f"{tag}.parquet")
        lake.write_table(rel, _rejected_rows(data, reject, bad))
        summary["rejected_path"] = lake.uri_of(rel)
    return summary


def format_summary(s: dict) -> str:
    lines = [f"Imported {s['source']} into {s['table']}: {s['rows_written']:,} of {s['rows_read']:,} rows written "
             f"to {len(s['days'])} day partition(s)" + (f" ({s['days'][0]}..{s['days'][-1]})" if s["days"] else "")]
    if s["rows_rejected"]:
        reasons = ", ".join(f"{r}: {n:,}" for r, n in s["rejected_by_reason"].items())
        lines.append(f"{s['rows_rejected']:,} row(s) rejected ({reasons}), saved to {s['rejected_path']}")
    return "\n".join(lines)


# ---- columns ---------------------------------------------------------------------------------------------
def _source_column(data: pa.Table, target: str, mapping: Mapping, required: dict[str, str],
                   table: str) -> pa.Array | None:
    """The source values for one target column: mapped, constant, same-named, or None (null, optional)."""
    if target in mapping.columns:
        name = mapping.columns[target]
        if name not in data.column_names:
            raise ImportFailed(f"The mapping fills {table}.{target} from column {name!r}, which the source lacks "
                               f"(it has {', '.join(data.column_names)}).", "Fix `columns` in the mapping file.")
        return _flat(data[name])
    if target in mapping.constants:
        return pa.array([mapping.constants[target]] * data.num_rows)
    if target in data.column_names:
        return _flat(data[target])
    if target in required:
        raise ImportFailed(f"Nothing fills the required column {table}.{target}: the source has no such column "
                           "and the mapping names none.",
                           f"Add `{target}: <source column>` under columns (or a constant) in the mapping file.")
    return None


def cast_column(arr: pa.Array, typ: pa.DataType, ts: Mapping | None = None) -> tuple[pa.Array, np.ndarray]:
    """(values of type `typ`, mask of rows whose non-null value could not be cast; those become null)."""
    n = len(arr)
    if arr.type == typ:
        return arr, np.zeros(n, bool)
    if pa.types.is_timestamp(typ) and ts is not None and pa.types.is_string(arr.type):
        out = _parse_ts(arr, typ, ts)
    elif pa.types.is_boolean(typ) and pa.types.is_string(arr.type):
        low = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        out = pc.if_else(pc.is_in(low, pa.array(_TRUE)), True,
                         pc.if_else(pc.is_in(low, pa.array(_FALSE)), False, pa.scalar(None, pa.bool_())))
    else:
        src = pc.utf8_trim_whitespace(arr) if pa.types.is_string(arr.type) else arr
        try:
            out = src.cast(typ, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = _cast_each(src, typ)
    bad = (pc.is_valid(arr).to_numpy(zero_copy_only=False) & pc.is_null(out).to_numpy(zero_copy_only=False))
    if pa.types.is_string(arr.type):  # an empty cell is a missing value, not a bad one
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), False).to_numpy(zero_copy_only=False)
        bad &= ~empty
    return out, bad


def _parse_ts(arr: pa.Array, typ: pa.DataType, m: Mapping) -> pa.Array:
    if m.timestamp_format:
        parsed = pc.strptime(arr, format=m.timestamp_format, unit="us", error_is_null=True)
    else:
        try:
            parsed = arr.cast(pa.timestamp("us"))  # ISO 8601 without an offset
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = _cast_each(arr, typ)
    if parsed.type.tz is None:
        parsed = pc.assume_timezone(parsed, m.timezone, ambiguous="earliest", nonexistent="earliest")
    return parsed.cast(typ)


def _cast_each(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """The slow path, for a column whose vectorised cast failed: each value alone (bad ones -> null)."""
    from datetime import UTC, datetime

    out = []
    for v in arr.to_pylist():
        if v is None:
            out.append(None)
            continue
        try:
            if pa.types.is_timestamp(typ) and isinstance(v, str):
                t = datetime.fromisoformat(v.strip())
                out.append(t if t.tzinfo else t.replace(tzinfo=UTC))
            else:
                out.append(pa.scalar(v).cast(typ, safe=True).as_py())
        except (ValueError, TypeError, pa.ArrowException):
            out.append(None)
    return pa.array(out, typ)


def _is_ts(typ: pa.DataType) -> bool:
    return pa.types.is_timestamp(typ)


def _type_word(typ: pa.DataType) -> str:
    return "timestamp" if pa.types.is_timestamp(typ) else "bool" if pa.types.is_boolean(typ) else str(typ)


def _flat(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


# ---- output ---------------------------------------------------------------------------------------------
def _file_tag(path: Path) -> str:
    """A stable part name per source file: re-importing the same file replaces its parts, never doubles them."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in path.stem)[:40] or "import"
    return f"{stem}-{digest}"


def _write_days(lake: Lake, table: str, rows: pa.Table, tag: str) -> dict[str, str]:
    """One file per UTC day of `ts`: raw/<table>/dt=YYYY-MM-DD/part-<tag>.parquet."""
    if rows.num_rows == 0:
        return {}
    days = pc.strftime(rows["ts"], format="%Y-%m-%d", locale="C")
    out = {}
    for day in sorted(pc.unique(days).to_pylist()):
        part = rows.filter(pc.equal(days, day))
        out[day] = lake.write_partition(table, date.fromisoformat(day), part, part=f"part-{tag}.parquet")
    return out


def _rejected_rows(data: pa.Table, reject: np.ndarray, bad: dict[str, np.ndarray]) -> pa.Table:
    """The rejected rows as they came (every value as text) plus `reason` (every failed rule, '; ')."""
    rows = data.filter(pa.array(reject))
    text = pa.table({c: pc.cast(rows[c], pa.string()) if _castable(rows[c].type) else rows[c]
                     for c in rows.column_names})
    reasons = ["; ".join(r for r, m in bad.items() if m[i]) for i in np.flatnonzero(reject)]
    return text.append_column("reason", pa.array(reasons, pa.string()))


def _castable(typ: pa.DataType) -> bool:
    return not (pa.types.is_nested(typ) or pa.types.is_dictionary(typ))
