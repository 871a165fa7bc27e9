"""Report-card rows as MLflow metrics, tables and version tags (one naming scheme for all of them)."""

from __future__ import annotations

from conf_profile.registry.tracking import metric_key


def row_metrics(row: dict, prefix: str | None = None) -> dict[str, float]:
    p = metric_key(prefix if prefix is not None else row["name"])
    out: dict[str, float] = {}
    for k in ("f1", "coverage", "ece", "valid_rate"):
        if isinstance(row.get(k), int | float):
            out[f"{p}.{k}"] = float(row[k])
    for attr, m in (row.get("per_attribute") or {}).items():
        for k in ("f1", "coverage", "ece"):
            if isinstance((m or {}).get(k), int | float):
                out[f"{p}.{k}.{attr}"] = float(m[k])
    lf = row.get("label_free") or {}
    for k in ("coverage", "mean_confidence"):
        if isinstance(lf.get(k), int | float):
            out[f"{p}.label_free.{k}"] = float(lf[k])
    return out


def card_metrics(card: dict) -> dict[str, float]:
    """Every row's metrics, except the row that is the reference itself (vote:calibrated without gold)."""
    out: dict[str, float] = {}
    for row in card.get("rows", []):
        if not row.get("is_reference"):
            out.update(row_metrics(row))
    return out


def card_table(card: dict) -> dict[str, list]:
    rows = card.get("rows", [])
    attrs = sorted({a for r in rows for a in (r.get("per_attribute") or {})})
    table: dict[str, list] = {k: [] for k in ("name", "f1", "coverage", "ece", "valid_rate")}
    for a in attrs:
        table[f"f1.{a}"] = []
    for r in rows:
        for k in ("name", "f1", "coverage", "ece", "valid_rate"):
            table[k].append(r.get(k))
        for a in attrs:
            table[f"f1.{a}"].append(((r.get("per_attribute") or {}).get(a) or {}).get("f1"))
    return table


def version_metric_tags(row: dict) -> dict[str, str]:
    tags = {}
    for k in ("f1", "ece", "coverage", "valid_rate"):
        if row.get(k) is not None:
            tags[f"metric.{k}"] = str(row[k])
    for attr, m in (row.get("per_attribute") or {}).items():
        for k in ("f1", "ece", "coverage"):
            if (m or {}).get(k) is not None:
                tags[f"metric.{k}.{attr}"] = str(m[k])
    return tags
