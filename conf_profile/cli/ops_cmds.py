"""Operations commands: registry list|promote|rollback, doctor, taxonomy."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conf_profile.cli import Result, settings_from_args
from conf_profile.errors import ConfProfileError
from conf_profile.secrets import redact_url

REPO = Path(__file__).resolve().parents[2]


def register(sub, common) -> None:
    r = sub.add_parser("registry", help="list model versions, promote or roll back the champion",
                       description="The MLflow model registry of the student: versions with their aliases, "
                       "data intervals, metrics and promotion decisions; manual promotion and rollback (what the "
                       "conf_profile_promote DAG does).")
    rsub = r.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    x = rsub.add_parser("list", parents=[common], help="versions, aliases, metrics and decisions")
    x.add_argument("--limit", type=int, default=20, help="newest N versions (default 20)")
    x.set_defaults(handler=cmd_registry_list)
    x = rsub.add_parser("promote", parents=[common], help="make a named version the champion",
                        description="Promote a named version: the gate's metric checks are overridden (you "
                        "decided), its interval rule is not: a version trained on an older week than the champion "
                        "needs `rollback --to`.")
    x.add_argument("version", help="model version number")
    x.add_argument("--reason", required=True, help="why (kept in the version's tags and the champion history)")
    x.set_defaults(handler=cmd_registry_promote)
    x = rsub.add_parser("rollback", parents=[common], help="move champion back (previous champion or --to VERSION)")
    x.add_argument("--to", metavar="VERSION", help="version to roll back to (default: the previous champion)")
    x.add_argument("--reason", required=True, help="why (kept in the version's tags and the champion history)")
    x.set_defaults(handler=cmd_registry_rollback)

    d = sub.add_parser("doctor", parents=[common], help="check lake, MLflow, Airflow, taxonomy and stages",
                       description="Checks that the lake is reachable (S3: endpoint and bucket), MLflow answers, "
                       "Airflow is importable with the DAG folder present, the taxonomy is valid, and which "
                       "pipeline stages are installed. Exits non-zero when a required check fails.")
    d.set_defaults(handler=cmd_doctor)

    t = sub.add_parser("taxonomy", parents=[common], help="print the profiling taxonomy or its JSON schema",
                       description="The taxonomy in use (taxonomy_path): attributes, kinds and classes; with "
                       "--schema the JSON schema of a profile answer (used for structured decoding).")
    t.add_argument("--schema", action="store_true", help="print the JSON schema of a profile answer")
    t.add_argument("--confidence", choices=["level", "probability"], default="level",
                   help="confidence as a 1-5 hint level (teachers) or a probability (students)")
    t.set_defaults(handler=cmd_taxonomy)


# ---- registry ----------------------------------------------------------------------------------------------------
def cmd_registry_list(args: argparse.Namespace) -> Result:
    from conf_profile.registry import models, promotion, tracking

    settings = settings_from_args(args)
    tr = tracking.configure(settings)
    name = settings.mlflow.model_name
    versions = models.list_versions(tr.client, name, args.limit)
    hist = promotion.history(tr.client, name) if versions else []
    head = f"{'ver':>4} {'aliases':<21} {'interval':<23} {'F1':>6} {'ECE':>6}  decision"
    lines = [f"{name} at {redact_url(tr.tracking_uri)}", head, "-" * len(head)]
    for v in versions:
        f1 = f"{float(v['f1']):.1f}" if v["f1"] else "-"
        ece = f"{float(v['ece']):.3f}" if v["ece"] not in (None, "None") else "-"
        flag = " (rolled back)" if v["rolled_back"] else ""
        lines.append(f"{v['version']:>4} {','.join(v['aliases']) or '-':<21} {v['data_interval'] or '-':<23} "
                     f"{f1:>6} {ece:>6}  {v['decision'] or '-'}{flag}")
    if not versions:
        lines.append("(no versions yet: run `conf-profile run`)")
    return Result({"model_name": name, "versions": versions, "history": hist}, "\n".join(lines))


def cmd_registry_promote(args: argparse.Namespace) -> Result:
    return _manual(args, "promote", args.version)


def cmd_registry_rollback(args: argparse.Namespace) -> Result:
    return _manual(args, "rollback", args.to)


def _manual(args: argparse.Namespace, action: str, version: str | None) -> Result:
    from conf_profile.stages import runner

    user = os.environ.get("USER") or "cli"
    r = runner.run("promote_manual", config=args.config, lake=args.lake, model_version=version, action=action,
                   reason=args.reason, actor=f"cli:{user}")
    if action == "rollback":
        text = f"Rolled back {r['model_name']}: champion v{r['from_version']} -> v{r['model_version']} ({args.reason})"
    else:
        text = f"Promoted {r['model_name']} v{r['model_version']} to champion ({args.reason})"
    return Result(r, text)


# ---- doctor ------------------------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> Result:
    from conf_profile.stages.registry import available

    checks: dict[str, dict[str, Any]] = {}
    settings = settings_from_args(args)
    checks["config"] = {"ok": True, "detail": args.config or os.environ.get("CONF_PROFILE_CONFIG") or "embedded defaults"}
    checks["lake"] = _check_lake(settings)
    checks["mlflow"] = _check_mlflow(settings)
    checks["airflow"] = _check_airflow()
    checks["taxonomy"] = _check_taxonomy(settings)
    stages = available()
    checks["stages"] = {"ok": all(v is None for v in stages.values()), "required": False,
                        "detail": ", ".join(f"{s}{'' if e is None else ' (missing)'}" for s, e in stages.items())}
    lines = []
    for name, c in checks.items():
        mark = "ok " if c["ok"] else ("!! " if c.get("required", True) else "-- ")
        lines.append(f"{mark} {name:<9} {c['detail']}")
    failed = [n for n, c in checks.items() if not c["ok"] and c.get("required", True)]
    if failed:
        lines.append(f"\n{len(failed)} check(s) failed: {', '.join(failed)}.")
    return Result({"checks": checks, "failed": failed}, "\n".join(lines), exit_code=1 if failed else 0)


def _check_lake(settings) -> dict:
    uri = redact_url(settings.lake_uri)
    if uri.startswith(("s3://", "s3a://", "minio://")):
        from conf_profile.storage import health_check

        h = health_check(settings.lake_uri, settings.s3)
        if not h.get("reachable"):
            return {"ok": False, "detail": f"{uri}: object store unreachable ({h.get('error')}); check "
                    "CONF_PROFILE_S3__ENDPOINT_URL and the credentials"}
        if not h.get("bucket_exists"):
            return {"ok": False, "detail": f"{uri}: bucket {h['bucket']!r} does not exist; create it first"}
        return {"ok": True, "detail": f"{uri} (bucket {h['bucket']} reachable)"}
    try:
        from conf_profile.storage import Lake

        lake = Lake.from_settings(settings)  # a named lake folder must exist; the embedded default is created
        probe = ".doctor-probe"
        lake.write_bytes(probe, b"ok")
        lake.delete(probe)
        weeks = len(lake.partition_days("watch_events"))
        return {"ok": True, "detail": f"{lake.uri} (writable; {weeks} day partition(s) of watch_events)"}
    except Exception as exc:  # noqa: BLE001 - reported as text
        return {"ok": False, "detail": f"{uri}: {exc}"}


def _check_mlflow(settings) -> dict:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    uri = redact_url(settings.mlflow_tracking_uri)
    try:
        from conf_profile.registry import tracking

        tr = tracking.configure(settings)
        tr.client.search_experiments(max_results=1)
        return {"ok": True, "detail": f"{uri} (experiment {settings.mlflow.experiment!r} "
                f"id {tr.experiment_id})"}
    except ConfProfileError as exc:
        return {"ok": False, "detail": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported as text
        secret = urlsplit(settings.mlflow_tracking_uri).password
        text = str(exc)[:300].replace(secret, "***") if secret else str(exc)[:300]
        return {"ok": False, "detail": f"{uri}: {type(exc).__name__}: {text}"}


def _check_airflow() -> dict:
    if importlib.util.find_spec("airflow") is None:
        return {"ok": False, "required": False,
                "detail": "not installed (pip install -e '.[airflow]'); `conf-profile run --no-airflow` works without"}
    from importlib.metadata import version

    dags = sorted(p.name for p in (REPO / "dags").glob("conf_profile_*.py"))
    return {"ok": bool(dags), "required": False,
            "detail": f"apache-airflow {version('apache-airflow-core')}; DAGs: {', '.join(dags) or 'none found'}"}


def _check_taxonomy(settings) -> dict:
    try:
        from conf_profile.taxonomy import load_taxonomy

        tax = load_taxonomy(settings.taxonomy_path)
        tax.json_schema()
        n_classes = sum(len(a.classes) for a in tax.attributes)
        return {"ok": True, "detail": f"{settings.taxonomy_path} ({len(tax.attributes)} attributes, "
                f"{n_classes} classes)"}
    except ConfProfileError as exc:
        return {"ok": False, "detail": str(exc)}


# ---- taxonomy ----------------------------------------------------------------------------------------------------
def cmd_taxonomy(args: argparse.Namespace) -> Result:
    from conf_profile.taxonomy import load_taxonomy

    settings = settings_from_args(args)
    tax = load_taxonomy(settings.taxonomy_path)
    if args.schema:
        schema = tax.json_schema(confidence=args.confidence)
        return Result({"schema": schema}, json.dumps(schema, indent=2))
    lines = [f"Taxonomy {tax.name!r} ({settings.taxonomy_path}); '{tax.unknown}' = abstain"]
    for a in tax.attributes:
        kind = f"multi, up to {a.max_labels}" if a.is_multi else "single"
        lines.append(f"  {a.name:<18} ({kind}): {', '.join(a.classes)}")
    return Result({"taxonomy": tax.model_dump()}, "\n".join(lines))
