"""The source description: which raw tables a platform has, their columns, numeric ranges and row floors.

Why a section of its own: everything that knows a table (validation, documents, the default teachers) reads
it from here, so a platform with other tables describes them in settings (`source.tables.<table>`) instead of
code; the defaults describe the video platform of `make run`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from conf_profile.config.strict import Strict

ColumnType = Literal["string", "int32", "int64", "float64", "bool", "timestamp"]


def arrow_type(name: str) -> Any:
    """The Arrow type of a column type name (pyarrow imported here only: DAG files parse without it)."""
    import pyarrow as pa

    from conf_profile.schema import TS

    return {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64(),
            "bool": pa.bool_(), "timestamp": TS}[name]


SECTION_FORMATS = ("profile", "watch", "searches", "comments", "purchases")  # built-in section layouts
FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {  # what each built-in layout reads (required or optional columns)
    "profile": ("nickname", "bio", "declared_gender", "declared_birth_year", "device_model", "ip_city"),
    "watch": ("video_id", "video_title", "video_category", "watch_seconds", "video_seconds", "liked", "shared",
              "commented"),
    "searches": ("query",), "comments": ("text",), "purchases": ("item_category", "price"),
}
# The built-in description (today's five tables): document section, free-text and categorical columns, floor.
_DEFAULT_TABLES: dict[str, dict[str, Any]] = {
    "profiles": {"kind": "profile", "section": "profile", "format": "profile", "min_rows": 1,
                 "text_columns": ["nickname", "bio"]},
    "watch_events": {"section": "watch", "format": "watch", "min_rows": 100, "text_columns": ["video_title"],
                     "category_columns": ["video_category"],
                     "ranges": {"watch_seconds": {"min": 0.0, "required": True},
                                "video_seconds": {"min": 0.0, "strict_min": True}}},
    "searches": {"section": "searches", "format": "searches", "min_rows": 1, "text_columns": ["query"]},
    "comments": {"section": "comments", "format": "comments", "min_rows": 1, "text_columns": ["text"]},
    "purchases": {"section": "purchases", "format": "purchases", "min_rows": 0,
                  "category_columns": ["item_category"], "ranges": {"price": {"min": 0.0}}},
}


# Today's five tables' columns, as type names: `schema.RAW_SCHEMAS` written without pyarrow (settings load at
# DAG parse time). tests/test_source_domain.py checks that the two never disagree.
_DEFAULT_COLUMNS: dict[str, dict[str, str]] = {
    "profiles": {"user_id": "string", "ts": "timestamp", "nickname": "string", "bio": "string",
                 "declared_gender": "string", "declared_birth_year": "int32", "device_model": "string",
                 "ip_city": "string", "registered_at": "timestamp"},
    "watch_events": {"user_id": "string", "ts": "timestamp", "video_id": "string", "video_title": "string",
                     "video_category": "string", "creator_id": "string", "watch_seconds": "float64",
                     "video_seconds": "float64", "liked": "bool", "shared": "bool", "commented": "bool"},
    "searches": {"user_id": "string", "ts": "timestamp", "query": "string"},
    "comments": {"user_id": "string", "ts": "timestamp", "video_id": "string", "text": "string"},
    "purchases": {"user_id": "string", "ts": "timestamp", "item_category": "string", "price": "float64"},
}


def default_table(name: str) -> dict[str, Any]:
    """The built-in description of one of today's raw tables (the columns of `schema.RAW_SCHEMAS`)."""
    return {"columns": dict(_DEFAULT_COLUMNS[name]), **_DEFAULT_TABLES[name]}


class RangeSpec(Strict):
    """A numeric column's plausible range (critical: rows outside are quarantined). Every ranged column must
    also be finite; a null is "unknown" unless `required`."""

    min: float | None = None  # lower bound; None: none
    strict_min: bool = False  # the bound itself is outside (a video length of 0 s is not a length)
    required: bool = False  # a null (NaN counts as null) is quarantined too


class TableSpec(Strict):
    """One raw table of the source (docs/import.md): its columns, row floor and document section."""

    columns: dict[str, ColumnType]  # required: a file without one of them is schema drift (excluded)
    optional: dict[str, ColumnType] = Field(default_factory=dict)  # null-filled where a file lacks them
    keep_extra_columns: bool = True  # columns outside the description stay in the clean table (else dropped)
    min_rows: int = Field(0, ge=0)  # fewer rows in an interval fail validation
    kind: Literal["profile", "events"] = "events"  # events count towards n_events; profile rows are snapshots
    section: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")  # document section; None: not in documents
    # Section layout: a built-in one (the default tables') or `lines`: one line per distinct item made of the
    # `line` columns (text wrapped in ⟦⟧, categories as [value], numbers, true flags by name), most frequent first.
    format: Literal["profile", "watch", "searches", "comments", "purchases", "lines"] = "lines"
    line: list[str] = Field(default_factory=list)
    max_items: int = Field(8, ge=0)  # `lines` format: items per user
    text_columns: list[str] = Field(default_factory=list)  # user-written text: redacted, wrapped, length-checked
    category_columns: list[str] = Field(default_factory=list)  # checked against validation.vocabularies
    ranges: dict[str, RangeSpec] = Field(default_factory=dict)  # numeric column -> range (validation)

    @model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        names = {**self.columns, **self.optional}
        not_numeric = sorted(c for c in self.ranges if names.get(c) not in ("int32", "int64", "float64"))
        if not_numeric:
            raise ValueError(f"ranges: columns {not_numeric} are not numeric columns of the table")
        for need, typ in (("user_id", "string"), ("ts", "timestamp")):
            if self.columns.get(need) != typ:
                raise ValueError(f"every table needs the required column {need!r} of type {typ}")
        both = sorted(set(self.columns) & set(self.optional))
        if both:
            raise ValueError(f"columns {both} are both required and optional")
        listed = [*self.line, *self.text_columns, *self.category_columns]
        unknown = sorted({c for c in listed if c not in names})
        if unknown:
            raise ValueError(f"columns {unknown} are not among the table's columns")
        if self.format in SECTION_FORMATS:
            absent = [c for c in FORMAT_COLUMNS[self.format] if c not in names]
            if absent:
                raise ValueError(f"format {self.format!r} needs columns {absent} (required or optional)")
        elif self.section and not self.line:
            raise ValueError("format 'lines' needs `line`: the columns shown on an item line")
        return self

    def schema(self) -> Any:
        """The contract (a `pyarrow.Schema`): required then optional columns, as Arrow types."""
        import pyarrow as pa

        return pa.schema([(c, arrow_type(t)) for c, t in {**self.columns, **self.optional}.items()])


class SourceSettings(Strict):
    """Which raw tables the platform provides (any subset of today's five, or tables of its own)."""

    tables: dict[str, TableSpec] = Field(default_factory=lambda: {n: TableSpec(**default_table(n))
                                                                  for n in _DEFAULT_TABLES})

    @model_validator(mode="before")
    @classmethod
    def _fill_known(cls, data: Any) -> Any:
        """A table named like one of today's five starts from its built-in description (override any key)."""
        if isinstance(data, dict) and isinstance(data.get("tables"), dict):
            tables = {}
            for name, spec in data["tables"].items():
                if name in _DEFAULT_TABLES and (spec is None or isinstance(spec, dict)):
                    spec = {**default_table(name), **(spec or {})}
                tables[name] = spec
            data = {**data, "tables": tables}
        return data

    @model_validator(mode="after")
    def _usable(self) -> SourceSettings:
        bad = [n for n in self.tables if not n.replace("_", "").isalnum() or n.startswith("_")]
        if bad:
            raise ValueError(f"table names {bad} must be letters, digits and '_' (not leading)")
        if not any(t.kind == "events" for t in self.tables.values()):
            raise ValueError("source.tables needs at least one event table (kind: events)")
        sections = [t.section for t in self.tables.values() if t.section]
        dup = sorted({s for s in sections if sections.count(s) > 1})
        if dup:
            raise ValueError(f"document sections {dup} are given by more than one table")
        return self

    def sections(self) -> dict[str, str]:
        """Document section -> the table it is built from, in document order."""
        return {t.section: name for name, t in self.tables.items() if t.section}

    def event_tables(self) -> list[str]:
        return [n for n, t in self.tables.items() if t.kind == "events"]


DEFAULT_SECTION_TABLES = {d["section"]: n for n, d in _DEFAULT_TABLES.items()}


def source_schemas(settings: Any) -> dict[str, Any]:
    """The configured raw tables' contract schemas (`Settings` or `SourceSettings`): the one place to ask."""
    source = getattr(settings, "source", settings)
    return {name: spec.schema() for name, spec in source.tables.items()}


def row_floor(settings: Any, table: str) -> int:
    """The row floor of a configured table (`validation.min_rows`, when set, is the deprecated override)."""
    legacy = settings.validation.min_rows
    if legacy is not None:
        return int(legacy.get(table, 0))
    spec = settings.source.tables.get(table)
    return spec.min_rows if spec else 0
