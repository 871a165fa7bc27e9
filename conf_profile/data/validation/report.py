"""Words and pages for validation results: failure messages, the one-screen summary, the HTML index.

The HTML index (`report.html`) is made here, small and self-contained: counts, failures, warnings and
excluded files, linking to one Great Expectations Data Docs page per suite (rendered by GX's own
`ValidationResultsPageRenderer` + `DefaultJinjaPageView`, the renderer the Data Docs site builder uses).
"""

from __future__ import annotations

import html
from typing import Any

_MAX_LISTED = 8


def pct(fraction: float) -> str:
    """0.031 -> '3.1%', 0.01 -> '1%', 0.00012 -> '0.012%': short, never rounded to a misleading 0%."""
    value = fraction * 100
    text = f"{value:.3g}" if 0 < abs(value) < 0.1 else f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def failure_text(table: str, rec: dict[str, Any]) -> str:
    """One critical GX failure in words, e.g. 'watch_events: watch_seconds >= 0 failed for 3.1% of rows
    (tolerance 1%)'."""
    label = rec.get("label") or rec["expectation"]
    if rec.get("error"):
        return f"{table}: {label} could not be evaluated ({rec['error']})"
    if rec.get("check") == "row_count":
        return f"{table}: {label} failed ({rec['observed']:,} rows)"
    if rec.get("check") == "columns":
        return f"{table}: {label} failed (columns {rec['observed']})"
    tolerance = rec.get("tolerance") or 0.0
    return (f"{table}: {label} failed for {pct(rec['observed'])} of rows "
            f"({rec.get('unexpected_count', 0):,} rows; tolerance {pct(tolerance)})")


def failure_message(summary: dict[str, Any]) -> tuple[str, str]:
    """(message, fix) for ValidationFailed: names every failed expectation with its counts, then the fix."""
    failures = summary["failed_expectations"]
    listed = "; ".join(f["message"] for f in failures[:_MAX_LISTED])
    more = f"; and {len(failures) - _MAX_LISTED} more" if len(failures) > _MAX_LISTED else ""
    message = f"Validation of {summary['interval']} failed: {listed}{more}."
    fixes = []
    empty = [t for t, v in summary["tables"].items() if v["rows_in"] == 0]
    if empty:
        fixes.append(f"check --lake and --interval ({', '.join(empty)} had no rows for {summary['interval']})")
    if any(f["source"] == "read" for f in failures):
        fixes.append("replace or remove the drifted/unreadable files named above")
    checks = {f["check"] for f in failures if f["source"] == "gx"}
    if checks - {"row_count", "columns"}:
        fixes.append("fix the bad rows upstream (each is in the quarantine with its reason) or, if this share "
                     "is expected, raise validation.critical_max_bad_fraction")
    if "row_count" in checks:
        fixes.append("write the missing data, or lower validation.min_rows if such a small week is expected")
    if "columns" in checks:
        fixes.append("align the raw tables with conf_profile/schema.py")
    fix = (f"To fix: {'; '.join(fixes)}; then rerun. Report: {summary['report_uri']}; "
           f"quarantine: {summary['quarantine_dir']}.")
    return message, fix


def format_summary(summary: dict[str, Any]) -> str:
    """A one-screen human summary of `validate_interval`'s result."""
    status = "PASSED" if summary["success"] else "FAILED"
    lines = [f"Validation of {summary['interval']}: {status}",
             f"  {'table':<13} {'rows in':>11} {'kept':>11} {'quarantined':>12} {'files excl.':>12}"]
    for name, t in summary["tables"].items():
        lines.append(f"  {name:<13} {t['rows_in']:>11,} {t['rows_kept']:>11,} {t['rows_quarantined']:>12,} "
                     f"{len(t['files_excluded']):>12}")
    lines += _listed("Critical failures", [f["message"] for f in summary["failed_expectations"]])
    # What was excluded is always listed (the bad-input contract), in order, with the first few other warnings;
    # the rest are counted and left to the report.
    lines += _listed("Warnings", summary["warnings"], always=lambda w: " quarantined (" in w or "excluded" in w)
    lines.append(f"Report: {summary['report_uri']}  (HTML: {summary['html_uri']})")
    lines.append(f"Quarantine: {summary['quarantine_dir']}")
    if summary.get("clean_uris"):
        lines.append(f"Clean tables: {summary['clean_dir']}")
    return "\n".join(lines)


def _listed(title: str, items: list[str], always=lambda item: False) -> list[str]:
    if not items:
        return []
    shown, others = [], 0
    for x in items:
        if always(x) or others < _MAX_LISTED:
            others += not always(x)
            shown.append(x)
    out = [f"{title} ({len(items)}):"] + [f"  - {x}" for x in shown]
    if len(items) > len(shown):
        out.append(f"  ... and {len(items) - len(shown)} more (see the report)")
    return out


def index_html(report: dict[str, Any], docs: dict[str, str], docs_error: str | None) -> str:
    """The small self-made HTML index: counts per table, failures, warnings, links to the GX pages."""
    e = html.escape
    status = "PASSED" if report["success"] else "FAILED"
    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{t['rows_in']:,}</td><td>{t['rows_kept']:,}</td>"
        f"<td>{t['rows_quarantined']:,}</td><td>{e(_reasons(t['quarantined_by_reason']))}</td>"
        f"<td>{len(t['files_read'])}</td><td>{_files(t['files_excluded'])}</td></tr>"
        for name, t in report["tables"].items()
    )
    links = "".join(f'<li><a href="{e(href)}">{e(suite)}</a></li>' for suite, href in docs.items())
    docs_note = f"<p>GX Data Docs rendering failed: {e(docs_error)}</p>" if docs_error else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Validation {e(report['interval'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
.FAILED{{color:#b00}}.PASSED{{color:#070}}</style></head><body>
<h1>Validation of {e(report['interval'])}: <span class="{status}">{status}</span></h1>
<table><tr><th>table</th><th>rows in</th><th>kept</th><th>quarantined</th><th>by reason</th>
<th>files read</th><th>files excluded</th></tr>{rows}</table>
<h2>Critical failures</h2>{_ul([f['message'] for f in report['failed_expectations']])}
<h2>Warnings</h2>{_ul(report['warnings'])}
<h2>Great Expectations Data Docs (one page per suite)</h2><ul>{links}</ul>{docs_note}
</body></html>
"""


def _ul(items: list[str]) -> str:
    if not items:
        return "<p>none</p>"
    return "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>"


def _reasons(by_reason: dict[str, int]) -> str:
    return ", ".join(f"{r}: {n:,}" for r, n in by_reason.items()) or "-"


def _files(excluded: list[dict[str, str]]) -> str:
    if not excluded:
        return "0"
    return "<br>".join(f"{html.escape(x['path'])}: {html.escape(x['error'])}" for x in excluded)
