"""Validate one interval's raw tables with Great Expectations 1.x; write clean tables, quarantine and report.

Why `mostly`: real logs (and the simulator, on purpose) always hold a few null user ids, out-of-range values
and late events. Every such row is quarantined with its reason, but the run fails only when a critical
expectation fails: the bad share is above `validation.critical_max_bad_fraction`, the schema drifted, or
a table is below its row floor. Warnings (duplicates, over-long text, unknown categories) quarantine rows
and never fail the run.

Why GX and Arrow side by side: GX results decide pass/fail and give the observed values and Data Docs;
the same rules as pyarrow masks (`validation.checks`) split the rows, since GX does not return row sets
cheaply. Every row goes to exactly one place: rows_in = rows_kept + rows_quarantined, checked per table.

Outputs under runs/<interval>/: validation/report.json, validation/report.html (+ data_docs/ pages),
validation/quarantine/<table>.parquet (always), clean/<table>/ (committed, only when nothing critical failed).
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile import progress
from conf_profile.config import Settings, TableSpec, ValidationSettings, row_floor
from conf_profile.data.extract import ReadResult, read_raw
from conf_profile.data.validation import checks as ck
from conf_profile.data.validation.gx_engine import batch_definition as _batch_definition
from conf_profile.data.validation.gx_engine import gx_context as _gx_context
from conf_profile.data.validation.gx_engine import lean_gx as _lean_gx
from conf_profile.data.validation.gx_engine import na_as_nan as _na_as_nan
from conf_profile.data.validation.report import failure_message, failure_text, format_summary, index_html
from conf_profile.errors import ValidationFailed
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.storage import Lake

__all__ = ["validate_interval", "format_summary", "split_rows"]

log = logging.getLogger(__name__)
# Counts + a few example values (and their counts, for Data Docs). Not the pandas "index query": a string
# listing every bad row's index, built with one more filter of the whole frame per expectation.
RESULT_FORMAT = {"result_format": "SUMMARY", "return_unexpected_index_query": False}
_MAX_EXAMPLES, _MAX_EXAMPLE_CHARS = 5, 120


@dataclass
class TableOutcome:
    """What validation learned about one table: the row split, GX results and the messages."""

    name: str
    read: ReadResult
    kept: pa.Table
    quarantined: pa.Table
    by_reason: dict[str, int]
    expectations: list[dict[str, Any]]
    gx_results: list[Any]  # ExpectationSuiteValidationResult per suite, for Data Docs
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---- public API ---------------------------------------------------------------------------------------------
def validate_interval(lake: Lake, interval: Interval, settings: Settings) -> dict[str, Any]:
    """Validate every configured raw table (`source.tables`) of the interval, write the outputs, return the
    summary; raise ValidationFailed (after writing report and quarantine) when a critical expectation failed."""
    vs = settings.validation
    gx, ctx = _gx_context()
    tables = settings.source.tables
    outcomes = [_validate_table(gx, ctx, lake, name, interval, vs, tables[name], row_floor(settings, name))
                for name in progress.progress(list(tables), desc="validate", unit="table")]
    summary = _write_outputs(lake, interval, outcomes, vs, gx.__version__)
    if not summary["success"]:
        message, fix = failure_message(summary)
        raise ValidationFailed(message, fix, report=summary)
    return summary


def split_rows(table: pa.Table, masks: dict[str, pa.Array]) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """(kept, quarantined + `reason`, count per reason). A row's reason lists every check it fails,
    joined by '; ' in check order (critical first), so the first one is the most serious."""
    n = table.num_rows
    bad = pa.array(np.zeros(n, dtype=bool))
    for m in masks.values():
        bad = pc.or_(bad, m)
    kept = table.filter(pc.invert(bad))
    quarantined = table.filter(bad)
    reasons = _reason_column({r: m.filter(bad) for r, m in masks.items()}, quarantined.num_rows)
    quarantined = quarantined.append_column("reason", reasons)
    if kept.num_rows + quarantined.num_rows != n:  # the invariant the whole design rests on
        raise RuntimeError(f"row split lost rows: {n} in, {kept.num_rows} kept, {quarantined.num_rows} quarantined")
    counts = {r: int(pc.sum(m).as_py() or 0) for r, m in masks.items()}
    return kept, quarantined, {r: c for r, c in counts.items() if c}


def _reason_column(masks: dict[str, pa.Array], n: int) -> pa.Array:
    """Join the names of the failed checks per row, vectorised over the (few) quarantined rows.
    Not `binary_join_element_wise(null_handling="skip")`: in pyarrow 25 it drops all-null rows."""
    acc = pa.nulls(n, pa.string())
    for reason, m in masks.items():
        joined = pc.binary_join_element_wise(acc, reason, "; ")  # null where nothing failed yet
        acc = pc.if_else(m, pc.coalesce(joined, pa.scalar(reason)), acc)
    return acc


# ---- GX -------------------------------------------------------------------------------------------------------
def _judge(gx: Any, ctx: Any, name: str, table: pa.Table, checks: list[ck.RowCheck], vs: ValidationSettings,
           columns: list[str], min_rows: int, extra_ok: bool) -> tuple[list[Any], pa.Table, np.ndarray]:
    """GX's verdict on one table's rows: (one result per suite, the text-encoded table, the row key).

    The row hashes serve twice: the exact row key of the duplicate rule (GX judges it, the quarantine
    splits on it) and the batch's data fingerprint in GX's batch markers (`arrow_row_hash_md5`, in place of
    GX's own `pandas_data_fingerprint`, which hashes the whole frame in pandas a second time)."""
    encoded = ck.encode_text(table)
    hashes = ck.row_hashes(encoded)
    row_key = ck.first_identical_row(encoded, hashes)
    fingerprint = hashlib.md5(hashes.tobytes(), usedforsecurity=False).hexdigest()
    strings = tuple(c.column for c in checks if c.kind in ck.STRING_KINDS)
    results = _run_suites(gx, ctx, name, ck.gx_frame(encoded, row_key, strings), checks, vs, columns, min_rows,
                          extra_ok, fingerprint)
    return results, encoded, row_key


def _run_suites(gx: Any, ctx: Any, name: str, frame: Any, checks: list[ck.RowCheck], vs: ValidationSettings,
                columns: list[str], min_rows: int, extra_ok: bool, fingerprint: str | None = None) -> list[Any]:
    """Build the critical and warning suites for one table and validate the interval's rows against them.

    Why one validation for both suites: each `validate_expectation_suite` call resolves its own metric graph
    (table row count, column types, null counts, the whole-frame filters ...) and pays GX's per-call
    overhead. Validating the two suites' expectations as one graph computes every shared metric once; the
    results are then split back into one GX `ExpectationSuiteValidationResult` per suite (same results,
    statistics and batch meta as validating each suite alone), which the report and Data Docs read."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.validator.v1_validator import Validator
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    critical = list(ck.table_expectations(gx, name, min_rows, columns, extra_ok))
    critical += [ck.expectation(gx, c, vs.critical_max_bad_fraction) for c in checks if c.critical]
    warning = [ck.expectation(gx, c, vs.critical_max_bad_fraction) for c in checks if not c.critical]
    both = gx.ExpectationSuite(name=f"{name}.all")  # critical first, then warnings: split back below
    for exp in critical + warning:
        both.add_expectation(exp)
    suites = [(f"{name}.critical", len(critical)), (f"{name}.warning", len(warning))]
    validator = Validator(batch_definition=_batch_definition(ctx, name), batch_parameters={"dataframe": frame},
                          result_format=RESULT_FORMAT)
    with _lean_gx(fingerprinted=fingerprint is not None):
        combined = validator.validate_expectation_suite(both)
    _na_as_nan(combined.results)
    if fingerprint is not None:  # GX's batch markers (a dict), shown on the Data Docs pages
        markers = combined.meta.get("batch_markers")
        if markers is None:
            markers = combined.meta["batch_markers"] = {}
        markers["arrow_row_hash_md5"] = fingerprint
    # GX returns the results in its own order: back to the suites' order (each check names one expectation)
    order = {(e.expectation_type, e.meta["check"]): i for i, e in enumerate(critical + warning)}
    ranked = sorted(combined.results, key=lambda r: order[(r.expectation_config.type, r.expectation_config.meta["check"])])
    out, start = [], 0
    for suite_name, size in suites:
        results = ranked[start:start + size]
        start += size
        stats = calc_validation_statistics(results)
        out.append(ExpectationSuiteValidationResult(
            results=results, success=stats.success, suite_name=suite_name, meta=dict(combined.meta),
            statistics={"evaluated_expectations": stats.evaluated_expectations,
                        "successful_expectations": stats.successful_expectations,
                        "unsuccessful_expectations": stats.unsuccessful_expectations,
                        "success_percent": stats.success_percent},
            batch_id=combined.batch_id))
    return out


def _record(result: Any, suite: str, masks: dict[str, pa.Array], tolerance: float,
            table: pa.Table | None = None) -> dict[str, Any]:
    """One expectation's GX result as a JSON-safe dict, with the rows its mask quarantined. The duplicate
    rule's examples are the duplicated rows themselves (from `table`), not their row-key values."""
    cfg, res = result.expectation_config, result.result or {}
    meta = cfg.meta or {}
    on_key = cfg.kwargs.get("column") == ck.ROW_KEY
    rec: dict[str, Any] = {
        "suite": suite, "check": meta.get("check"), "expectation": cfg.type, "label": meta.get("label"),
        "column": None if on_key else cfg.kwargs.get("column"), "critical": bool(meta.get("critical")),
        "success": bool(result.success), "tolerance": None,
    }
    if "unexpected_count" in res:
        examples = res.get("partial_unexpected_list") or []
        if on_key and table is not None:
            examples = [{k: v.isoformat() if isinstance(v, datetime) else v
                         for k, v in table.slice(int(i), 1).to_pylist()[0].items()} for i in examples[:_MAX_EXAMPLES]]
        rec["unexpected_count"] = int(res["unexpected_count"] or 0)
        rec["observed"] = round(float(res.get("unexpected_percent") or 0.0) / 100, 6)
        rec["examples"] = _examples(examples)
        rec["tolerance"] = tolerance if rec["critical"] else None
    else:
        rec["observed"] = _json_safe(res.get("observed_value"))
    if rec["check"] in masks:
        rec["rows_quarantined"] = int(pc.sum(masks[rec["check"]]).as_py() or 0)
    error = _gx_error(result)
    if error:
        rec["success"], rec["error"] = False, error
    return rec


def _gx_error(result: Any) -> str | None:
    """GX reports an exception inside the result instead of raising; an expectation that raised failed."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


# ---- one table ------------------------------------------------------------------------------------------------
def _validate_table(gx: Any, ctx: Any, lake: Lake, name: str, interval: Interval,
                    vs: ValidationSettings, spec: TableSpec, min_rows: int) -> TableOutcome:
    schema = spec.schema()
    read = read_raw(lake, name, interval, schema, spec.optional, spec.keep_extra_columns)
    table, utf8_bad, utf8_cols = ck.repair_utf8(read.table)
    checks = ck.row_checks(name, interval, vs, spec)
    results, encoded, row_key = _judge(gx, ctx, name, table, checks, vs, schema.names, min_rows,
                                       spec.keep_extra_columns)
    masks = {c.reason: ck.mask(c, table, encoded, row_key) for c in checks if not c.keep}
    masks[ck.INVALID_UTF8] = utf8_bad
    kept, quarantined, by_reason = split_rows(table, masks)
    records = [_record(r, res.suite_name, masks, vs.critical_max_bad_fraction, table)
               for res in results for r in res.results]
    records.append(_utf8_record(name, utf8_bad, utf8_cols))
    _warn_on_disagreement(name, records)
    out = TableOutcome(name, read, kept, quarantined, by_reason, records, results)
    out.failures = _gx_failures(name, records) + _read_failures(name, read)
    out.warnings = _warnings(name, read, records)
    return out


def _utf8_record(name: str, bad: pa.Array, columns: list[str]) -> dict[str, Any]:
    """The UTF-8 rule in the report's shape. Arrow alone judges it: GX reads pandas, and bytes that are not
    text never become a pandas string (that is what crashed before this check)."""
    n, rows = int(pc.sum(bad).as_py() or 0), len(bad)
    return {"suite": f"{name}.warning", "check": ck.INVALID_UTF8, "expectation": "arrow: utf8 validation",
            "label": "text is valid UTF-8", "column": ", ".join(columns) or None, "critical": False,
            "success": n == 0, "tolerance": None, "observed": round(n / rows, 6) if rows else 0.0,
            "unexpected_count": n, "rows_quarantined": n, "judge": "arrow"}


def _warn_on_disagreement(name: str, records: list[dict[str, Any]]) -> None:
    """GX's unexpected count and the Arrow mask must agree for per-value checks (duplicates differ by
    design: GX counts every copy, the quarantine all but the first)."""
    for r in records:
        if (r["check"] != ck.DUPLICATE and "rows_quarantined" in r and "unexpected_count" in r
                and r["rows_quarantined"] != r["unexpected_count"]):
            log.warning("%s: %s: GX counted %s bad rows, the mask %s", name, r["check"],
                        r.get("unexpected_count"), r["rows_quarantined"])


def _gx_failures(name: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"table": name, "check": r["check"], "expectation": r["label"], "column": r["column"], "observed": r["observed"],
         "tolerance": r["tolerance"], "source": "gx", "message": failure_text(name, r)}
        for r in records if r["critical"] and not r["success"]
    ]


def _read_failures(name: str, read: ReadResult) -> list[dict[str, Any]]:
    """Critical problems found while reading: drifted schemas, or no readable file at all."""
    out = []
    drifted = read.schema_errors
    if drifted:
        listed = "; ".join(f"{e.path} ({e.error})" for e in drifted[:3])
        more = f"; and {len(drifted) - 3} more" if len(drifted) > 3 else ""
        out.append({"table": name, "check": "schema", "expectation": "required columns and types present", "column": None,
                    "observed": [e.to_dict() for e in drifted], "tolerance": None, "source": "read",
                    "message": f"{name}: {len(drifted)} file(s) drifted from the schema and were excluded: "
                               f"{listed}{more}"})
    elif read.all_files_unreadable:
        out.append({"table": name, "check": "readable_files", "expectation": "readable files present", "column": None,
                    "observed": [e.to_dict() for e in read.excluded], "tolerance": None, "source": "read",
                    "message": f"{name}: none of its {len(read.excluded)} file(s) in the interval could be read"})
    return out


def _warnings(name: str, read: ReadResult, records: list[dict[str, Any]]) -> list[str]:
    """Everything recorded but not fatal: quarantined rows within tolerance, unreadable files, day gaps."""
    out = [f"{name}: {r['rows_quarantined']:,} row(s) quarantined ({r['check']})"
           for r in records if r.get("rows_quarantined") and (r["success"] or not r["critical"])]
    out += [f"{name}: {r['unexpected_count']:,} row(s) with a {r['column']} value outside its declared vocabulary "
            f"(kept; e.g. {', '.join(r.get('examples') or [])[:120]})"
            for r in records if r.get("check", "").endswith("_unknown") and "rows_quarantined" not in r
            and r.get("unexpected_count")]
    out += [f"{name}: excluded unreadable file {e.path} ({e.error})" for e in read.excluded if e.kind == "corrupt"]
    if read.missing_days:
        out.append(f"{name}: no partition for day(s) {', '.join(read.missing_days)}")
    if read.empty_days:
        out.append(f"{name}: empty partition(s) for day(s) {', '.join(read.empty_days)}")
    out += [f"{name}: {note}" for note in read.notes]
    out += [f"{name}: ignored {path} (not a dt=YYYY-MM-DD day partition; no interval reads it)"
            for path in read.bad_partitions]
    return out


# ---- outputs --------------------------------------------------------------------------------------------------
def _write_outputs(lake: Lake, interval: Interval, outcomes: list[TableOutcome], vs: ValidationSettings,
                   gx_version: str) -> dict[str, Any]:
    """Quarantine first (always), clean tables only on success, then HTML, then report.json last."""
    lay = RunLayout(interval)
    run, vdir = lay.root, lay.validation
    success = not any(o.failures for o in outcomes)
    quarantine = {o.name: lake.uri_of(lake.write_table(posixpath.join(vdir, "quarantine", f"{o.name}.parquet"),
                                                       o.quarantined)) for o in outcomes}
    clean: dict[str, str] = {}
    if success:
        for o in outcomes:
            rel = posixpath.join(run, "clean", o.name)
            meta = {"interval": str(interval), "rows": o.kept.num_rows, "stage": "validate"}
            clean[o.name] = lake.uri_of(lake.write_committed_table(rel, o.kept, meta=meta))
    else:
        lake.delete(posixpath.join(run, "clean"))  # a failed rerun must not leave an older clean table readable
    report = _report(interval, outcomes, success, vs, gx_version)
    docs, docs_error = _write_data_docs(lake, vdir, outcomes)
    html_rel = lake.write_bytes(posixpath.join(vdir, "report.html"), index_html(report, docs, docs_error).encode())
    summary = {
        "interval": str(interval), "success": success,
        "tables": {o.name: {"rows_in": o.read.table.num_rows, "rows_kept": o.kept.num_rows,
                            "rows_quarantined": o.quarantined.num_rows,
                            "files_excluded": [e.to_dict() for e in o.read.excluded]} for o in outcomes},
        "failed_expectations": report["failed_expectations"], "warnings": report["warnings"],
        "report_uri": lake.uri_of(vdir, "report.json"), "html_uri": lake.uri_of(html_rel),
        "html_kind": "index + GX Data Docs pages" if not docs_error else "index only (GX rendering failed)",
        "quarantine_uris": quarantine, "quarantine_dir": lake.uri_of(vdir, "quarantine"),
        "clean_uris": clean, "clean_dir": lake.uri_of(run, "clean") if success else None,
    }
    report["uris"] = {k: summary[k] for k in ("report_uri", "html_uri", "quarantine_uris", "clean_uris")}
    lake.write_json(posixpath.join(vdir, "report.json"), report)
    return summary


def _report(interval: Interval, outcomes: list[TableOutcome], success: bool, vs: ValidationSettings,
            gx_version: str) -> dict[str, Any]:
    return {
        "interval": str(interval), "success": success, "great_expectations": gx_version,
        "settings": vs.model_dump(),
        "tables": {o.name: {
            "rows_in": o.read.table.num_rows, "rows_kept": o.kept.num_rows,
            "rows_quarantined": o.quarantined.num_rows, "quarantined_by_reason": o.by_reason,
            "files_read": o.read.files_read, "files_excluded": [e.to_dict() for e in o.read.excluded],
            "missing_days": o.read.missing_days, "empty_days": o.read.empty_days, "notes": o.read.notes,
            "bad_partitions": o.read.bad_partitions,
            "expectations": o.expectations,
        } for o in outcomes},
        "failed_expectations": [f for o in outcomes for f in o.failures],
        "warnings": [w for o in outcomes for w in o.warnings],
    }


def _write_data_docs(lake: Lake, vdir: str, outcomes: list[TableOutcome]) -> tuple[dict[str, str], str | None]:
    """One GX Data Docs page per suite under validation/data_docs/. Best effort: the JSON report is the
    record; if GX's renderer fails, the index says so and the run goes on."""
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        renderer, view = ValidationResultsPageRenderer(), DefaultJinjaPageView()
        links = {}
        for o in outcomes:
            for res in o.gx_results:
                rel = f"data_docs/{res.suite_name}.html"
                lake.write_bytes(posixpath.join(vdir, rel), view.render(renderer.render(res)).encode())
                links[res.suite_name] = rel
        return links, None
    except Exception as exc:  # noqa: BLE001 - rendering is optional; the failure is reported in the index
        log.warning("GX Data Docs rendering failed: %s", exc)
        return {}, f"{type(exc).__name__}: {exc}"


def _examples(values: list[Any]) -> list[str]:
    return [_clip(str(v)) for v in values[:_MAX_EXAMPLES]]


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_EXAMPLE_CHARS else text[: _MAX_EXAMPLE_CHARS - 3] + "..."


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)
