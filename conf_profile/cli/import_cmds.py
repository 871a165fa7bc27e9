"""`conf-profile import`: a platform's own export (CSV, Parquet, JSON lines) into a raw table (docs/import.md)."""

from __future__ import annotations

import argparse

from conf_profile.cli import Result, settings_from_args


def register(sub, common) -> None:
    p = sub.add_parser(
        "import", parents=[common], help="import a CSV / Parquet / JSON-lines export into a raw table",
        description="Read FILE, fill the columns of the raw table described under source.tables (the mapping "
        "YAML names the source column of each, constants and the timestamp format), cast them to the table's "
        "schema and write one partition per UTC day of ts under raw/<table>/dt=YYYY-MM-DD/. Rows that cannot be "
        "cast or have no ts are not written: they are counted and saved under raw/_rejected/<table>/.")
    p.add_argument("--source", required=True, metavar="FILE", help="the export: .csv, .tsv, .parquet or .jsonl")
    p.add_argument("--mapping", required=True, metavar="MAPPING.yaml", help="target column -> source column, ...")
    p.add_argument("--table", required=True, metavar="TABLE", help="a raw table of source.tables (e.g. watch_events)")
    p.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace) -> Result:
    from conf_profile.data.importer import format_summary, import_file, load_mapping
    from conf_profile.storage import Lake

    settings = settings_from_args(args)
    mapping = load_mapping(args.mapping)
    lake = Lake.from_settings(settings)
    summary = import_file(lake, settings, args.table, args.source, mapping)
    return Result(summary, format_summary(summary))
