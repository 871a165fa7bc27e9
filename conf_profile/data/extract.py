"""Read one interval's raw partitions from the lake, robustly.

Why robust: real logs hold the odd corrupt file, and producers change schemas without warning. Neither may
crash a weekly run or lose data silently: a bad file is excluded and named (path + error), the good files
are kept, and the caller (validation) decides whether what was excluded is fatal.

Why the footers are read first: an Arrow scan with an explicit schema null-fills a missing column and drops
extra ones without a word, so each file's own schema is checked against `RAW_SCHEMAS` before the scan.
Then all files that match exactly are read in one multi-threaded scan (the fast path); only if that scan
fails are they read one by one to find the culprit.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.dataset as ds

from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.schema import RAW_SCHEMAS
from conf_profile.storage import Lake

# What a bad file can raise while its footer or pages are read (ArrowInvalid is a ValueError, IO an OSError).
READ_ERRORS = (pa.ArrowException, OSError, ValueError)
_DT = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")
_MAX_ERROR_CHARS = 300
PARTITION = "dt"  # kept as the last column (string): which day's partition a row came from


@dataclass
class ExcludedFile:
    """A file of the interval that was not read: `kind` is "corrupt" (unreadable) or "schema" (drifted)."""

    path: str  # relative to the lake root
    error: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "error": self.error, "kind": self.kind}


@dataclass
class ReadResult:
    """One table's rows for an interval (`RAW_SCHEMAS[table]` plus the `dt` partition column) plus what
    was left out, and why."""

    table_name: str
    interval: Interval
    table: pa.Table
    files_read: list[str] = field(default_factory=list)
    excluded: list[ExcludedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing_days: list[str] = field(default_factory=list)  # no dt= folder for the day
    empty_days: list[str] = field(default_factory=list)  # a folder, but no rows in it
    bad_partitions: list[str] = field(default_factory=list)  # raw/<table>/ entries that are no dt=YYYY-MM-DD day

    @property
    def schema_errors(self) -> list[ExcludedFile]:
        """Drifted files: a required column missing or of a type that cannot be cast safely."""
        return [e for e in self.excluded if e.kind == "schema"]

    @property
    def all_files_unreadable(self) -> bool:
        """Files existed for the interval but none could be used: never a normal week."""
        return bool(self.excluded) and not self.files_read


@dataclass
class _FileCheck:
    """What one file's footer says about it, before any data page is read."""

    fragment: ds.ParquetFileFragment
    path: str
    day: str
    rows: int = 0
    status: str = "exact"  # exact | cast | corrupt | schema
    error: str = ""
    casts: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    keep_extra: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("exact", "cast")


# ---- public API ------------------------------------------------------------------------------------------
def raw_schema(table: str) -> pa.Schema:
    """The contract schema of a raw table; a clear error for a name that is not one."""
    try:
        return RAW_SCHEMAS[table]
    except KeyError:
        raise LakeError(f"Unknown raw table {table!r}.", f"Use one of: {', '.join(RAW_SCHEMAS)}.") from None


def read_raw(lake: Lake, table: str, interval: Interval, schema: pa.Schema | None = None,
             optional: Collection[str] = (), keep_extra: bool = False) -> ReadResult:
    """Rows of `raw/<table>/` for the interval's days only (partition pruning on `dt`; other days'
    files are never opened). Bad files are excluded and reported, never raised.

    `schema` is the table's contract (default `RAW_SCHEMAS[table]`; `config.source_schemas` gives the configured
    one); its `optional` columns are null-filled where a file lacks them; `keep_extra` keeps columns outside the
    contract (after the contract's, before `dt`) instead of dropping them with a note."""
    target = raw_schema(table) if schema is None else schema
    checks = [_inspect(lake, frag, target, set(optional), keep_extra)
              for frag in _interval_fragments(lake, table, target, interval)]
    exact = [c for c in checks if c.status == "exact"]
    cast = [c for c in checks if c.status == "cast"]
    parts = _read_exact(exact, target) + [t for t in (_read_one(c, target, keep_extra) for c in cast)
                                          if t is not None]
    data = _concat(parts, target, keep_extra) if parts else _with_dt(target).empty_table()
    missing, empty = _day_gaps(lake, table, interval, checks)
    return ReadResult(
        table_name=table,
        interval=interval,
        table=data,
        files_read=[c.path for c in checks if c.ok],
        excluded=[ExcludedFile(c.path, c.error, c.status) for c in checks if not c.ok],
        notes=_notes(checks),
        missing_days=missing,
        empty_days=empty,
        bad_partitions=bad_partitions(lake, table),
    )


def bad_partitions(lake: Lake, table: str) -> list[str]:
    """Lake-relative paths under raw/<table>/ that no interval can ever read (dt=2026-13-45, dt=foo, a
    stray file): listed so that a producer's typo is seen instead of silently skipped. Hidden and temporary
    entries (`.x`, `_x`) are the lake's own and not listed."""
    root = lake.raw_dir(table)
    out = []
    for name in lake.listdir(root):
        if name.startswith((".", "_")):
            continue
        day = name[len(PARTITION) + 1:] if name.startswith(f"{PARTITION}=") else ""
        if not _is_day(day):
            out.append(posixpath.join(root, name))
    return out


def _is_day(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def latest_interval(lake: Lake, table: str = "watch_events") -> Interval:
    """The newest full Monday-aligned week (Mon..next Mon, END exclusive) whose seven days all have files
    under raw/<table> (the source's first event table): what `--interval latest` means."""
    days = days_with_files(lake, table)
    for monday in sorted({d - timedelta(days=d.weekday()) for d in days}, reverse=True):
        week = Interval.week_starting(monday)
        if all(d in days for d in week.days()):
            return week
    found = f"{len(days)} day partition(s), {min(days)}..{max(days)}" if days else "no day partitions"
    raise LakeError(
        f"The lake {lake.uri_of(f'raw/{table}')} holds no full Monday-to-Sunday week of {table} "
        f"({found}).",
        "Run `conf-profile simulate` to write one, point --lake at your data, or pass --interval START..END.",
    )


def days_with_files(lake: Lake, table: str) -> set[date]:
    """Days of `raw/<table>/dt=.../` that hold at least one Parquet file (one recursive listing)."""
    days: set[date] = set()
    for rel in lake.list_files(lake.raw_dir(table), ".parquet"):
        if posixpath.basename(rel).startswith((".", "_")):
            continue
        m = _DT.search(rel)
        if m:
            try:
                days.add(date.fromisoformat(m.group(1)))
            except ValueError:
                continue  # dt=2026-13-01: not a day, not ours to judge here
    return days


# ---- discovery and per-file checks ----------------------------------------------------------------------
def _interval_fragments(lake: Lake, table: str, target: pa.Schema, interval: Interval) -> list:
    """Files of the interval's partitions. The explicit schema means discovery opens no file; the
    `dt` filter prunes fragments by path alone (predicate pushdown)."""
    if not lake.exists(lake.raw_dir(table)):
        return []
    dataset = lake.dataset(lake.raw_dir(table), schema=_with_dt(target))
    wanted = [d.isoformat() for d in interval.days()]
    fragments = dataset.get_fragments(filter=ds.field(PARTITION).isin(wanted))
    # A stray file outside any dt= folder has no partition value, so the filter cannot prune it: skip it.
    return sorted((f for f in fragments if _day_of(f.path) in wanted), key=lambda f: f.path)


def _inspect(lake: Lake, fragment: ds.ParquetFileFragment, target: pa.Schema, optional: set[str] = frozenset(),
             keep_extra: bool = False) -> _FileCheck:
    """Read one footer and compare the file's schema with the contract. A file that lacks an optional
    column, or holds extra ones that are kept, is read on its own (status "cast")."""
    rel = posixpath.relpath(fragment.path, lake.root)
    check = _FileCheck(fragment, rel, _day_of(rel))
    try:
        physical = fragment.physical_schema
        check.rows = fragment.metadata.num_rows
    except READ_ERRORS as exc:
        check.status, check.error = "corrupt", _short(exc, fragment.path, rel)
        return check
    problems = []
    for f in target:
        idx = physical.get_field_index(f.name)
        if idx < 0:
            if f.name in optional:
                check.missing_optional.append(f.name)
            else:
                problems.append(f"missing required column {f.name!r}")
            continue
        src = physical.field(idx).type
        if src == f.type:
            continue
        if safe_cast_possible(src, f.type):
            check.casts.append(f"{f.name} {src}->{f.type}")
        else:
            problems.append(f"column {f.name!r} is {src}, expected {f.type} (no safe cast)")
    check.extra = [n for n in physical.names if n not in target.names and n != PARTITION]
    check.keep_extra = keep_extra
    if problems:
        check.status, check.error = "schema", "; ".join(problems)
    elif check.casts or check.missing_optional or (keep_extra and check.extra):
        check.status = "cast"
    return check


def safe_cast_possible(src: pa.DataType, dst: pa.DataType) -> bool:
    """Widening casts only. String -> number is parsing, not casting: a column that turned into text is
    schema drift. Values that still do not fit (overflow, lost precision) fail the safe cast later."""
    if pa.types.is_null(src):
        return True
    if pa.types.is_dictionary(src):
        return safe_cast_possible(src.value_type, dst)
    if pa.types.is_string(dst):  # raw bytes count as text (old writers drop the UTF8 annotation); validation
        # checks every value's UTF-8 and quarantines the rows that are not text
        return any(is_(src) for is_ in (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view,
                                        pa.types.is_binary, pa.types.is_large_binary))
    if pa.types.is_floating(dst):
        return pa.types.is_floating(src) or pa.types.is_integer(src)
    if pa.types.is_integer(dst):
        return pa.types.is_integer(src)
    if pa.types.is_timestamp(dst):
        return pa.types.is_timestamp(src)  # a naive timestamp is read as UTC
    return False


# ---- reading ----------------------------------------------------------------------------------------------
def _read_exact(checks: list[_FileCheck], target: pa.Schema) -> list[pa.Table]:
    """Fast path: one scan over all files whose schema matches; per file only if that scan fails."""
    if not checks:
        return []
    try:
        frags = [c.fragment for c in checks]
        dataset = ds.FileSystemDataset(frags, _with_dt(target), ds.ParquetFileFormat(), frags[0].filesystem)
        return [dataset.to_table(columns=[*target.names, PARTITION])]
    except READ_ERRORS:
        return [t for t in (_read_one(c, target) for c in checks) if t is not None]


def _read_one(check: _FileCheck, target: pa.Schema, keep_extra: bool = False) -> pa.Table | None:
    """One file, cast safely to the contract (missing optional columns null-filled, kept extra columns as
    they are); on failure the check records why and None comes back."""
    present = [n for n in target.names if n not in check.missing_optional]
    extra = check.extra if keep_extra else []
    try:
        raw = _bytes_as_text(check.fragment.to_table(columns=[*present, *extra]))
        for name in check.missing_optional:
            raw = raw.append_column(name, pa.nulls(raw.num_rows, target.field(name).type))
        table = raw.select(target.names).cast(target, safe=True)
        for name in extra:
            table = table.append_column(raw.schema.field(name), raw.column(name))
        return table.append_column(PARTITION, pa.repeat(pa.scalar(check.day, pa.string()), table.num_rows))
    except READ_ERRORS as exc:
        # A file that passed the footer check but fails here is corrupt in its pages, or its values do not fit.
        check.status = "schema" if check.casts else "corrupt"
        check.error = _short(exc, check.fragment.path, check.path)
        return None


def _concat(parts: list[pa.Table], target: pa.Schema, keep_extra: bool) -> pa.Table:
    """All parts in one table: the contract, extra columns (null where a file lacked them), `dt` last."""
    if not keep_extra:
        return pa.concat_tables(parts)
    table = pa.concat_tables(parts, promote_options="permissive")
    extra = [n for n in table.column_names if n not in target.names and n != PARTITION]
    return table.select([*target.names, *extra, PARTITION])


def _bytes_as_text(table: pa.Table) -> pa.Table:
    """Binary columns the contract calls text, reinterpreted without a UTF-8 check (a cast would fail the
    whole file on one bad byte; validation quarantines just that row)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            text = pa.string() if pa.types.is_binary(f.type) else pa.large_string()
            col = pa.chunked_array([c.view(text) for c in table.column(i).chunks], text)
            table = table.set_column(i, pa.field(f.name, text), col)
    return table


# ---- reporting ---------------------------------------------------------------------------------------------
def _day_gaps(lake: Lake, table: str, interval: Interval, checks: list[_FileCheck]) -> tuple[list[str], list[str]]:
    """Missing days (no dt= folder) and empty days (a folder whose readable files hold no rows and
    nothing was excluded there; an excluded file is reported on its own)."""
    folders = set(lake.partition_days(table))
    rows = Counter({c.day: 0 for c in checks})
    for c in checks:
        rows[c.day] += c.rows if c.ok else 0
    bad_days = {c.day for c in checks if not c.ok}
    wanted = [d.isoformat() for d in interval.days()]
    missing = [d for d in wanted if d not in folders]
    empty = [d for d in wanted if d in folders and rows.get(d, 0) == 0 and d not in bad_days]
    return missing, empty


def _notes(checks: list[_FileCheck]) -> list[str]:
    """Harmless differences, aggregated over files: casts done and extra columns dropped."""
    casts = Counter(x for c in checks if c.status == "cast" for x in c.casts)
    extra = Counter(x for c in checks if c.ok for x in c.extra)
    notes = [f"cast {what} in {n} file(s)" for what, n in sorted(casts.items())]
    kept = Counter(x for c in checks if c.ok and c.keep_extra for x in c.extra)
    absent = Counter(x for c in checks if c.ok for x in c.missing_optional)
    notes += [f"{'kept' if col in kept else 'dropped'} extra column {col!r} in {n} file(s)"
              for col, n in sorted(extra.items())]
    notes += [f"optional column {col!r} absent (null) in {n} file(s)" for col, n in sorted(absent.items())]
    return notes


def _day_of(path: str) -> str:
    m = _DT.search(path)
    return m.group(1) if m else ""


def _with_dt(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(PARTITION, pa.string()))


def _short(exc: BaseException, full_path: str, rel: str) -> str:
    """The error in one line, with the file named by its lake-relative path (the report names it anyway)."""
    text = " ".join(str(exc).replace(full_path, rel).split()) or type(exc).__name__
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."
