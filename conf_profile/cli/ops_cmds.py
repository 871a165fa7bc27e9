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


<<<<<<< HEAD
=======
# ---- run -------------------------------------------------------------------------------------------------------
class _Printer:
    """Stage lines as tasks finish, on the terminal even while Airflow's own logs go to a file."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.results: dict[str, list[dict]] = {}
        self.events: list[tuple[str, str, dict]] = []
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, status: str, out: dict) -> None:
        self.events.append((stage, status, out))
        if status == "done":
            self.results.setdefault(stage, []).append(out)
        line = _stage_line(stage, status, out)
        if line:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {line}", file=self.stream, flush=True)


def _stage_line(stage: str, status: str, out: dict) -> str:
    if status == "skipped":
        return f"- {stage}: skipped — {out.get('error', '')}"
    if status == "failed":
        return f"x {stage}: FAILED — {out.get('error', '')}"
    if stage == "validate":
        return (f"✓ validate {out['interval']}: {out['rows_in']:,} rows in, {out['rows_kept']:,} kept, "
                f"{out['rows_quarantined']:,} quarantined, {out['warnings']} warning(s)")
    if stage == "documents":
        return f"✓ documents: {out['documents']:,} users (median {out['median_chars']} chars) -> {out['path']}"
    if stage == "label":
        return (f"✓ label {out['teacher']}/shard-{out['shard']}: {out.get('status')}, "
                f"{out.get('users') or 0:,} users, {out.get('errors') or 0} errors")
    if stage == "aggregate":
        return (f"✓ aggregate: {out['users']:,} users, {out['distill_records']:,} distillation records, "
                f"{out['rl_prompts']:,} RL prompts (calibration: {out['calibration']})")
    if stage in ("train_sft", "train_rl"):
        loss = out.get("final_loss")
        return (f"✓ {stage}: {out.get('steps')} steps" + (f", final loss {loss:.3f}" if isinstance(loss, float) else "")
                + f", {out.get('seconds')} s -> {out.get('path')}")
    if stage == "evaluate":
        rows = ", ".join(f"{r['name']} F1 {r['f1']:.1f}" for r in out["rows"] if r["name"].startswith(("student", "champion")))
        return f"✓ evaluate: {rows}"
    if stage == "register":
        return (f"✓ register: {out['model_name']} v{out['model_version']}"
                + (" (reused: same interval, code and data)" if out["reused"] else " (new version)"))
    if stage == "promote":
        return f"✓ promote: v{out['model_version']} -> {out['decision']}"
    return f"✓ {stage}"


def _has_raw(lake) -> bool:
    return bool(lake.partition_days("watch_events"))


def cmd_run(args: argparse.Namespace) -> Result:
    from conf_profile import pipeline
    from conf_profile.cli.data_cmds import resolve_interval
    from conf_profile.storage import Lake

    for var, value in _QUIET.items():  # the stage lines are the progress display
        os.environ.setdefault(var, value)
    settings = settings_from_args(args)
    lake = Lake.from_settings(settings)
    stream = _terminal_stream(sys.stderr if args.json else sys.stdout)
    simulated = None
    if not _has_raw(lake):
        from conf_profile.simulate import simulate

        print(f"The lake {lake.uri} is empty: simulating {settings.simulate.users:,} users x "
              f"{settings.simulate.weeks} week(s) (simulate.* settings)...", file=stream, flush=True)
        simulated = simulate(lake, settings.simulate)
    interval = resolve_interval(lake, args.interval)

    available = pipeline.available_stages()
    wanted = list(pipeline.STAGES[: pipeline.STAGES.index(args.stages) + 1]) if args.stages else list(pipeline.STAGES)
    missing = [s for s in wanted if available.get(s)]
    runnable = wanted[: wanted.index(missing[0])] if missing else wanted
    if not runnable:
        raise ConfProfileError(f"No stage can run: {missing[0]} is not available ({available[missing[0]]}).",
                               "Install the package with its extras (`make setup`).")
    overrides: dict[str, Any] = {"stop_after": runnable[-1], "force_promote": bool(args.force_promote)}
    if args.teachers:
        overrides["teachers"] = [t.strip() for t in args.teachers.split(",") if t.strip()]

    use_airflow = not args.no_airflow
    note = None
    if use_airflow and importlib.util.find_spec("airflow") is None:
        use_airflow, note = False, "Airflow is not installed: ran the pipeline functions in-process instead."
    printer = _Printer(stream)
    print(f"Weekly refresh of {interval} ({'Airflow dag.test' if use_airflow else 'in-process, no Airflow'}); "
          f"stages: {', '.join(runnable)}", file=stream, flush=True)
    pipeline.add_listener(printer)
    t0 = time.perf_counter()
    try:
        if use_airflow:
            statuses, extra = _run_airflow(args, settings, interval, overrides, printer)
        else:
            statuses, extra = _run_in_process(args, interval, overrides)
    finally:
        pipeline.remove_listener(printer)
    for s in pipeline.STAGES:
        if s in missing or (s not in runnable and s in wanted):
            statuses[s] = f"not run: stage not available ({available[s]})" if available.get(s) else \
                "not run: an earlier stage is not available"
        elif s not in wanted:
            statuses[s] = f"not run: --stages {args.stages}"
    return _run_result(settings, lake, interval, statuses, printer, extra, simulated, note,
                       round(time.perf_counter() - t0, 1), use_airflow)


def _run_in_process(args: argparse.Namespace, interval, overrides: dict) -> tuple[dict, dict]:
    from conf_profile import pipeline

    dag_run_id = f"local__{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S}"
    kw = {"interval": str(interval), "config": args.config, "lake": args.lake, "dag_run_id": dag_run_id,
          "overrides": overrides}
    statuses: dict[str, str] = {}
    registered = None
    for stage in pipeline.STAGES:
        try:
            if stage == "label":
                for item in pipeline.plan_label_shards(**kw):
                    pipeline.label_shard(teacher=item["teacher"], shard=item["shard"], **kw)
            elif stage == "promote":
                pipeline.promote(model_version=registered, **kw)
            else:
                out = getattr(pipeline, STAGE_FN[stage])(**kw)
                if stage == "register":
                    registered = out["model_version"]
            statuses[stage] = "ran"
        except (pipeline.StageSkipped, pipeline.StageUnavailable) as exc:
            statuses[stage] = f"skipped: {exc.message}"
            pipeline._emit(stage, "skipped", {"error": exc.message})
        except ConfProfileError as exc:
            statuses[stage] = f"failed: {exc}"
            pipeline._emit(stage, "failed", {"error": str(exc)})
            break
        except Exception as exc:
            statuses[stage] = f"failed: {type(exc).__name__}: {exc}"
            pipeline._emit(stage, "failed", {"error": f"{type(exc).__name__}: {exc}"})
            break
    return statuses, {"dag_run_id": dag_run_id}


def airflow_env(settings) -> dict[str, str]:
    home = (settings.data_dir / "airflow").resolve()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


def _run_airflow(args, settings, interval, overrides: dict, printer: _Printer) -> tuple[dict, dict]:
    if not (REPO / "dags" / f"{DAG_ID}.py").is_file():
        raise ConfProfileError(f"The DAG file {REPO / 'dags' / (DAG_ID + '.py')} is missing.",
                               "Run from a source checkout, or use `conf-profile run --no-airflow`.")
    env = airflow_env(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    # The DAG's tasks run in this process and read the same settings; fail fast (no retry waits) and compute
    # locally (this command is the laptop path; GPU pods are for a deployed Airflow).
    env.update({"CONF_PROFILE_DATA_DIR": str(settings.data_dir.resolve()), "CONF_PROFILE_LAKE": settings.lake_uri,
                "CONF_PROFILE_COMPUTE__RETRIES": "0", "CONF_PROFILE_COMPUTE__MODE": "local"})
    if args.config:
        env["CONF_PROFILE_CONFIG"] = str(Path(args.config).resolve())
    os.environ.update(env)
    log_path = Path(env["AIRFLOW_HOME"]) / "logs" / f"conf-profile-run-{interval.key}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise ConfProfileError(f"`airflow db migrate` failed in {env['AIRFLOW_HOME']}: "
                               f"{(proc.stderr or proc.stdout).strip()[-600:]}",
                               "Delete that folder to start over, or run `conf-profile run --no-airflow`.")
    print(f"[{time.perf_counter() - printer.t0:6.1f}s] Airflow metadata DB ready ({env['AIRFLOW_HOME']}, "
          f"{time.perf_counter() - t:.0f} s); task logs: {log_path}", file=printer.stream, flush=True)
    with _redirect_fds(log_path):
        dr = _dag_test(settings, interval, overrides)
        tis = list(dr.get_task_instances())
        run_id = dr.run_id
    statuses = _statuses_from_tis(tis, printer)
    return statuses, {"dag_run_id": run_id, "airflow_log": str(log_path), "dag_run_state": str(dr.state)}


def _dag_test(settings, interval, overrides: dict):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name=settings.compute.promote_pool, slots=1,
                               description="conf-profile: one promotion at a time", include_deferred=False)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise ConfProfileError(f"The DAG files do not import: {json.dumps(bag.import_errors)[:800]}",
                               "Fix the DAG file (see the error) or use --no-airflow.")
    dag = bag.get_dag(DAG_ID)
    end = dt.datetime(interval.end.year, interval.end.month, interval.end.day, tzinfo=dt.UTC)
    # A CronDataIntervalTimetable run with logical date END covers [END - 1 week, END): this interval.
    return dag.test(logical_date=end, run_conf={k: v for k, v in overrides.items() if v is not None})


@contextlib.contextmanager
def _redirect_fds(path: Path):
    """Send everything written to fd 1/2 (Airflow's and the trainers' logs) to a file; our printer keeps a
    duplicate of the real terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _terminal_stream(stream):
    """A stream on a duplicate of `stream`'s fd, unaffected by later dup2 of fd 1/2."""
    try:
        return os.fdopen(os.dup(stream.fileno()), "w", buffering=1, encoding="utf-8", closefd=True)
    except (AttributeError, OSError, ValueError):  # pytest's capture objects have no real fd
        return stream


def _statuses_from_tis(tis: list, printer: _Printer) -> dict[str, str]:
    skipped_reasons = {s: o.get("error", "") for s, st, o in printer.events if st == "skipped"}
    failed_reasons = {s: o.get("error", "") for s, st, o in printer.events if st == "failed"}
    by_stage: dict[str, list[str]] = {}
    for ti in tis:
        stage = TASK_STAGE.get(ti.task_id)
        if stage:
            by_stage.setdefault(stage, []).append(str(ti.state.value if hasattr(ti.state, "value") else ti.state))
    out = {}
    for stage, states in by_stage.items():
        if all(s == "success" for s in states):
            out[stage] = "ran"
        elif any(s == "failed" for s in states):
            out[stage] = f"failed: {failed_reasons.get(stage, 'see the task log')}"
        elif any(s == "upstream_failed" for s in states):
            out[stage] = "not run: an upstream stage failed"
        elif all(s in ("skipped", "success") for s in states) and "skipped" in states:
            out[stage] = f"skipped: {skipped_reasons.get(stage) or 'an upstream stage was skipped'}"
        else:
            out[stage] = f"not run ({', '.join(sorted(set(states)))})"
    return out


def _run_result(settings, lake, interval, statuses: dict, printer: _Printer, extra: dict, simulated, note,
                seconds: float, use_airflow: bool) -> Result:
    from conf_profile import pipeline

    results = printer.results
    lines = ["", f"Stages for {interval}:"]
    for s in pipeline.STAGES:
        lines.append(f"  {s:<10} {statuses.get(s, 'not run')}")
    summary: dict[str, Any] = {"interval": str(interval), "lake": lake.uri, "mode": "airflow" if use_airflow else
                               "in-process", "stages": {s: statuses.get(s, "not run") for s in pipeline.STAGES},
                               "seconds": seconds, **extra}
    if simulated:
        summary["simulated"] = {k: simulated.get(k) for k in ("users", "weeks", "start", "intervals")}
    if note:
        lines.insert(0, note)
    if "validate" in results:
        v = results["validate"][-1]
        summary["validation"] = {k: v.get(k) for k in ("rows_in", "rows_kept", "rows_quarantined", "warnings",
                                                      "report_uri", "html_uri")}
        lines += ["", v.get("summary_text") or f"Validation: {v['rows_in']:,} rows in, {v['rows_kept']:,} kept"]
    if "documents" in results:
        d = results["documents"][-1]
        summary["documents"] = d.get("documents")
        lines.append(f"Documents: {d['documents']:,} users -> {d['path']}")
    report_rel = lake.run_dir(interval, "report.json")
    if statuses.get("evaluate") == "ran" and lake.exists(report_rel):
        from conf_profile.evaluate.report import format_report

        card = lake.read_json(report_rel)
        summary["report"] = card
        lines += ["", format_report(card)]
    if "register" in results:
        r = results["register"][-1]
        summary["model"] = {k: r.get(k) for k in ("model_name", "model_version", "reused", "model_uri")}
    if "promote" in results:
        p = results["promote"][-1]
        summary["promotion"] = {k: p.get(k) for k in ("model_version", "decision", "promoted", "reasons", "champion")}
        lines += ["", f"Promotion: {p['model_name']} v{p['model_version']} -> {p['decision']}"
                  f" (champion: v{p['champion']})" if p.get("champion") else
                  f"Promotion: {p['model_name']} v{p['model_version']} -> {p['decision']} (no champion)"]
        lines += [f"  - {r}" for r in p.get("reasons", [])]
    uri = redact_url(settings.mlflow_tracking_uri)
    mlflow_cmd = (f"open {uri}" if uri.startswith("http") else
                  f"mlflow ui --backend-store-uri {uri} --port 5000   # then http://127.0.0.1:5000")
    env = airflow_env(settings)
    airflow_cmd = (" ".join(f"{k}={v}" for k, v in env.items() if k != "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
                   + " airflow standalone   # then http://127.0.0.1:8080")
    summary["mlflow_ui"], summary["airflow_ui"] = mlflow_cmd, airflow_cmd
    lines += ["", "MLflow UI:  " + mlflow_cmd, "Airflow UI: " + airflow_cmd]
    if extra.get("airflow_log"):
        lines.append(f"Airflow task logs: {extra['airflow_log']}")
    failed = [s for s, st in statuses.items() if st.startswith("failed")]
    code = 0
    if failed:
        lines.append(f"\nFailed: {', '.join(failed)}. Fix the cause and rerun `conf-profile run`: finished work "
                     "is reused (shards, checkpoints, registered versions).")
        code = 3 if "validate" in failed else 1
    lines.append(f"({seconds:.0f} s)")
    return Result(summary, "\n".join(lines), exit_code=code)


>>>>>>> faults
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
