"""The promotion gate (method.md, "Promotion") and the alias moves: challenger, champion, rollback.

Rules, in order:
1. Every registered student becomes `challenger`.
2. Interval rule: a candidate whose data interval is older than the champion's never becomes champion
   (backfills never demote a newer model). `force_promote` does NOT override this: going back to an older
   model is a deliberate act, done with `rollback` to a named version.
3. Metric rules (overridable by `force_promote`, and the override is written down): on the same gold set,
   headline F1 >= champion F1 + f1_margin; ECE <= ece_limit; no attribute's F1 drops by more than
   attribute_drop_tolerance points. "Same gold set" means the champion re-evaluated on this interval's gold
   eval users (the evaluate step does that), or the champion's registered metrics when it was trained on the
   same interval with the same gold labels. Without either, the metric check fails: we do not compare
   numbers measured on different users.
4. No champion yet: the first model becomes champion when its ECE is within the limit.
5. No gold set for the interval (the report card's reference is the quasi-labels): `without_gold: hold` (the
   default) keeps the champion (and a first model does not become champion either); `quasi_labels` applies
   rules 3 and 4 to the rows scored on the quasi-labels (candidate and champion on the same reference: the
   champion re-evaluated in the same card). `force_promote` overrides `hold` like any metric rule.

Every decision is written to the version's tags (`promotion_decision`, `promotion_reasons`, ...) and logged.
The alias is re-read right before it is set; if another promotion moved it meanwhile, the decision is made
again against the new champion (the Airflow pool of one slot makes that rare; this makes it safe).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from conf_profile.config import PromotionSettings
from conf_profile.errors import ConfProfileError
from conf_profile.gold import GOLD
from conf_profile.intervals import Interval

log = logging.getLogger("conf_profile.registry")

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
_HISTORY_KEEP = 25
_MAX_ATTEMPTS = 3


class PromotionError(ConfProfileError):
    """A promotion or rollback that cannot be done as asked."""


@dataclass
class Candidate:
    version: str
    interval: Interval
    row: dict[str, Any]  # report-card row (f1, ece, coverage, per_attribute)
    gold_hash: str | None = None
    reference: str = GOLD  # what the row was scored against: "gold" or "quasi-labels" (the report card's)


@dataclass
class ChampionView:
    version: str
    interval: Interval | None
    row: dict[str, Any] | None  # metrics on the candidate's gold set; None = not comparable
    source: str = "none"


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    checks: dict[str, bool] = field(default_factory=dict)
    forced: bool = False
    champion_before: str | None = None

    @property
    def label(self) -> str:
        return CHAMPION if self.promote else CHALLENGER


def decide(candidate: Candidate, champion: ChampionView | None, rules: PromotionSettings,
           force: bool = False) -> Decision:
    """The gate as a pure function (unit-tested without MLflow)."""
    reasons: list[str] = []
    checks: dict[str, bool] = {}
    if champion is not None and champion.version == candidate.version:
        return Decision(True, [f"version {candidate.version} is already the champion"], {"already": True},
                        force, champion.version)

    # Interval rule (never overridden).
    if champion is None:
        reasons.append("no champion yet")
        checks["interval"] = True
    elif champion.interval is None:
        checks["interval"] = True
        reasons.append(f"champion v{champion.version} has no data_interval tag; interval rule not applicable")
    else:
        older = candidate.interval.start < champion.interval.start
        checks["interval"] = not older
        reasons.append(
            f"interval {candidate.interval} is older than champion v{champion.version}'s {champion.interval}: "
            "a backfill never replaces a newer champion" if older else
            f"interval {candidate.interval} is not older than champion v{champion.version}'s {champion.interval}")

    # Without gold: the label-free rule (a metric rule: force_promote overrides it, and says so).
    if candidate.reference != GOLD:
        where = f"no gold set for {candidate.interval}"
        if rules.without_gold == "hold":
            checks["gold"] = False
            reasons.append(f"{where}: the label-free rule 'hold' keeps the champion" + (
                " (there is no champion yet: this first model stays challenger until a week with gold or "
                "`mlflow.promotion.without_gold: quasi_labels`)" if champion is None else ""))
        else:
            reasons.append(f"{where}: the label-free rule 'quasi_labels' applies the metric rules to rows "
                           f"scored on the {candidate.reference}")

    # Metric rules.
    f1, ece = _num(candidate.row.get("f1")), _num(candidate.row.get("ece"))
    if ece is None:
        checks["ece"] = False
        reasons.append(f"ECE undefined (no confident predictions) > limit {rules.ece_limit:.3f}: fail")
    else:
        checks["ece"] = ece <= rules.ece_limit
        reasons.append(f"ECE {ece:.3f} {'<=' if checks['ece'] else '>'} limit {rules.ece_limit:.3f}: "
                       f"{'pass' if checks['ece'] else 'fail'}")
    if champion is not None:
        if champion.row is None:
            checks["f1"] = checks["attributes"] = False
            reasons.append(f"champion v{champion.version} has no metrics on this gold set (needs re-evaluation "
                           f"on {candidate.interval}): F1 and attribute checks fail")
        else:
            cf1 = _num(champion.row.get("f1")) or 0.0
            need = cf1 + rules.f1_margin
            checks["f1"] = f1 is not None and f1 >= need
            reasons.append(f"F1 {_fmt(f1)} {'>=' if checks['f1'] else '<'} champion {cf1:.2f} + margin "
                           f"{rules.f1_margin:.2f} ({champion.source}): {'pass' if checks['f1'] else 'fail'}")
            drops = attribute_drops(candidate.row, champion.row, rules.attribute_drop_tolerance)
            checks["attributes"] = not drops
            reasons.append("no attribute drops more than "
                           f"{rules.attribute_drop_tolerance:.1f} points: pass" if not drops else
                           "attribute drops beyond "
                           f"{rules.attribute_drop_tolerance:.1f} points: "
                           + ", ".join(f"{a} {d:+.2f}" for a, d in drops) + ": fail")
    metrics_ok = all(v for k, v in checks.items() if k != "interval")
    promote = checks["interval"] and (metrics_ok or force)
    if force and not metrics_ok and checks["interval"]:
        reasons.append("force_promote: metric checks overridden" + (
            " (and the label-free rule 'hold')" if checks.get("gold") is False else ""))
    elif force and not checks["interval"]:
        reasons.append("force_promote does not override the interval rule")
    return Decision(promote, reasons, checks, force and not metrics_ok,
                    champion.version if champion else None)


def attribute_drops(row: dict, champion_row: dict, tolerance: float) -> list[tuple[str, float]]:
    mine, theirs = row.get("per_attribute") or {}, champion_row.get("per_attribute") or {}
    out = []
    for attr, c in theirs.items():
        cf1 = _num((c or {}).get("f1"))
        nf1 = _num((mine.get(attr) or {}).get("f1"))
        if cf1 is None:
            continue
        delta = (nf1 or 0.0) - cf1
        if -delta > tolerance:
            out.append((attr, delta))
    return out


# ---- MLflow side ---------------------------------------------------------------------------------------------
def get_alias(client: Any, name: str, alias: str):
    """The ModelVersion behind an alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower() \
                or "does not exist" in str(exc).lower():
            return None
        raise


def version_row(mv: Any) -> dict[str, Any] | None:
    """A report-card row from a version's `metric.*` tags (written at registration)."""
    tags = mv.tags or {}
    if "metric.f1" not in tags:
        return None
    row: dict[str, Any] = {"f1": _num(tags.get("metric.f1")), "ece": _num(tags.get("metric.ece")),
                           "coverage": _num(tags.get("metric.coverage")), "per_attribute": {}}
    for k, v in tags.items():
        parts = k.split(".")
        if len(parts) == 3 and parts[0] == "metric":
            row["per_attribute"].setdefault(parts[2], {})[parts[1]] = _num(v)
    return row


def version_interval(mv: Any) -> Interval | None:
    text = (mv.tags or {}).get("data_interval")
    try:
        return Interval.parse(text) if text else None
    except ConfProfileError:
        return None


def champion_view(mv: Any, candidate: Candidate, reevaluated: dict[str, dict]) -> ChampionView | None:
    """What the gate compares against: the champion's metrics on the candidate's gold set, if known."""
    if mv is None:
        return None
    interval = version_interval(mv)
    if str(mv.version) in reevaluated:
        return ChampionView(str(mv.version), interval, reevaluated[str(mv.version)],
                            f"re-evaluated on {candidate.interval}")
    tags = mv.tags or {}
    same_gold = candidate.gold_hash not in (None, "none") and tags.get("gold_hash") == candidate.gold_hash
    if interval == candidate.interval and same_gold:
        return ChampionView(str(mv.version), interval, version_row(mv), "registered metrics, same interval")
    return ChampionView(str(mv.version), interval, None, "none")


def promote(client: Any, name: str, candidate: Candidate, rules: PromotionSettings, *, force: bool = False,
            reevaluated: dict[str, dict] | None = None, actor: str = "pipeline", run_id: str | None = None,
            mlflow_run_id: str | None = None) -> dict:
    """Set `challenger`, decide, and move `champion` when the gate says so. Returns the decision as a dict."""
    version = str(candidate.version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    reevaluated = reevaluated or {}
    for _ in range(_MAX_ATTEMPTS):
        before = get_alias(client, name, CHAMPION)
        decision = decide(candidate, champion_view(before, candidate, reevaluated), rules, force)
        now = get_alias(client, name, CHAMPION)  # re-read right before acting
        if _ver(now) != _ver(before):
            log.warning("champion moved from %s to %s while deciding; deciding again", _ver(before), _ver(now))
            continue
        if decision.promote and _ver(before) != version:
            client.set_registered_model_alias(name, CHAMPION, version)
            _set_state(client, name, version, previous=_ver(before))
            _append_history(client, name, {"version": version, "action": "promote", "by": actor,
                                           "from": _ver(before), "run": run_id, "forced": decision.forced})
        break
    else:
        raise PromotionError(f"The champion alias of {name} kept changing during promotion of v{version}.",
                             "Another promotion is running; make sure the promote tasks share the 1-slot pool "
                             "and rerun this task.")
    _write_decision(client, name, version, decision, actor, run_id, mlflow_run_id)
    return _decision_dict(name, version, decision)


def promote_manual(client: Any, name: str, version: str, rules: PromotionSettings, reason: str,
                   actor: str = "manual", run_id: str | None = None) -> dict:
    """Manual promotion of a named version: metric checks are overridden (a person decided), the interval rule
    is not: moving champion to an older model is a rollback and must be asked for as one."""
    mv = _get_version(client, name, version)
    interval = version_interval(mv)
    if interval is None:
        raise PromotionError(f"{name} v{version} has no data_interval tag.", "Only versions registered by the "
                             "pipeline can be promoted; use rollback to name any version explicitly.")
    tags = mv.tags or {}
    cand = Candidate(str(version), interval, version_row(mv) or {}, tags.get("gold_hash"), tags.get("reference", GOLD))
    result = promote(client, name, cand, rules, force=True, actor=actor, run_id=run_id)
    client.set_model_version_tag(name, str(version), "promotion_manual_reason", reason[:1000])  # part of the record
    if not result["promoted"]:
        raise PromotionError(f"{name} v{version} was not promoted: {'; '.join(result['reasons'])}.",
                             f"To move champion back to an older model, run the rollback action with "
                             f"model_version={version}.")
    return result


def rollback(client: Any, name: str, to_version: str | None = None, reason: str = "",
             actor: str = "manual", run_id: str | None = None) -> dict:
    """Move `champion` back to the previous champion (recorded when the current one was promoted) or to a
    named version. The demoted version is tagged `rolled_back`."""
    current = get_alias(client, name, CHAMPION)
    if current is None:
        raise PromotionError(f"{name} has no champion to roll back.", "Promote a version first.")
    target = str(to_version) if to_version else (current.tags or {}).get("previous_champion")
    if not target:
        raise PromotionError(f"Champion v{current.version} of {name} records no previous champion.",
                             "Name the version to roll back to (model_version).")
    if target == str(current.version):
        raise PromotionError(f"v{target} is already the champion of {name}.", "Name another version.")
    _get_version(client, name, target)
    if _ver(get_alias(client, name, CHAMPION)) != str(current.version):
        raise PromotionError(f"The champion of {name} changed during the rollback.", "Check and rerun.")
    client.set_registered_model_alias(name, CHAMPION, target)
    stamp = _now()
    for k, v in (("rolled_back", "true"), ("rolled_back_at", stamp), ("rolled_back_reason", reason[:1000] or "-")):
        client.set_model_version_tag(name, str(current.version), k, v)
    _record(client, name, str(current.version), {
        "promotion_decision": "rolled back", "promotion_reasons": f"rolled back to v{target} by {actor}: "
        f"{reason or 'no reason given'}", "promotion_at": stamp, "promotion_by": actor,
        **({"promotion_dag_run_id": run_id} if run_id else {})})
    _record(client, name, target, {
        "promotion_decision": "champion (rollback)", "promotion_reasons":
        f"rollback from v{current.version} by {actor}: {reason or 'no reason given'}", "promotion_at": stamp,
        "promotion_by": actor, "champion_before": str(current.version),
        **({"promotion_dag_run_id": run_id} if run_id else {})})
    _set_state(client, name, target, previous=str(current.version))  # so the rollback itself can be undone
    _append_history(client, name, {"version": target, "action": "rollback", "by": actor,
                                   "from": str(current.version), "run": run_id, "reason": reason[:200]})
    log.info("rollback of %s: champion v%s -> v%s (%s)", name, current.version, target, reason)
    return {"model_name": name, "action": "rollback", "from_version": str(current.version),
            "model_version": target, "champion": target, "reason": reason}


def history(client: Any, name: str) -> list[dict]:
    rm = client.get_registered_model(name)
    try:
        return json.loads((rm.tags or {}).get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        return []


def _append_history(client: Any, name: str, entry: dict) -> None:
    entries = history(client, name)
    entries.append({"at": _now(), **{k: v for k, v in entry.items() if v is not None}})
    text = json.dumps(entries[-_HISTORY_KEEP:])
    while len(text) > 4900 and len(entries) > 1:
        entries = entries[1:]
        text = json.dumps(entries[-_HISTORY_KEEP:])
    client.set_registered_model_tag(name, HISTORY_TAG, text)


# The tags of one decision record: every action writes a whole record and removes what an earlier one left.
DECISION_TAGS = ("promotion_decision", "promotion_reasons", "promotion_forced", "promotion_at", "promotion_by",
                 "promotion_checks", "champion_before", "promotion_dag_run_id", "promotion_mlflow_run_id",
                 "promotion_manual_reason", "promotion_run_id")


def _record(client: Any, name: str, version: str, tags: dict[str, str]) -> None:
    """One decision record per action: set these tags, delete decision tags of earlier actions."""
    old = client.get_model_version(name, version).tags or {}
    for k in DECISION_TAGS:
        if k in old and k not in tags:
            client.delete_model_version_tag(name, version, k)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)


def _set_state(client: Any, name: str, version: str, previous: str | None) -> None:
    """`version` just became champion: it records the one it replaced, and is no longer `rolled_back`."""
    old = client.get_model_version(name, version).tags or {}
    for k in ("rolled_back", "rolled_back_at", "rolled_back_reason"):
        if k in old:
            client.delete_model_version_tag(name, version, k)
    if previous is not None:
        client.set_model_version_tag(name, version, "previous_champion", previous)


def _write_decision(client: Any, name: str, version: str, d: Decision, actor: str, dag_run_id: str | None,
                    mlflow_run_id: str | None = None, manual_reason: str | None = None) -> None:
    current = get_alias(client, name, CHAMPION)
    label = CHAMPION if _ver(current) == version else CHALLENGER
    tags = {"promotion_decision": label, "promotion_reasons": "; ".join(d.reasons)[:4900],
            "promotion_at": _now(), "promotion_by": actor, "promotion_checks": json.dumps(d.checks),
            "champion_before": d.champion_before or ""}
    if d.forced and d.promote:  # forced means a check was overridden *and* the version was promoted
        tags["promotion_forced"] = "true"
    if dag_run_id:
        tags["promotion_dag_run_id"] = dag_run_id
    if mlflow_run_id:
        tags["promotion_mlflow_run_id"] = mlflow_run_id
    if manual_reason is not None:
        tags["promotion_manual_reason"] = manual_reason[:1000]
    _record(client, name, version, tags)
    log.info("promotion of %s v%s: %s (%s)", name, version, label, "; ".join(d.reasons))


def _decision_dict(name: str, version: str, d: Decision) -> dict:
    out = asdict(d)
    out.update({"model_name": name, "model_version": version, "promoted": d.promote, "decision": d.label,
                "champion": version if d.promote else d.champion_before})
    return out


def _get_version(client: Any, name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise PromotionError(f"{name} has no version {version}.",
                             "List versions with `conf-profile registry list`.") from None


def _ver(mv: Any) -> str | None:
    return None if mv is None else str(mv.version)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def current_champion(tr: Any, name: str):
    """The version behind `champion`, or None (no registered model, no alias)."""
    try:
        return get_alias(tr.client, name, CHAMPION)
    except Exception:  # noqa: BLE001 - no registered model yet
        return None
