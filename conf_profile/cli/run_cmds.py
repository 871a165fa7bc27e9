"""`conf-profile run`: the whole weekly refresh on this machine — Airflow's `dag.test()` by default, or the stage
runner in-process (`--no-airflow`). Both run the stages of `conf_profile.stages.registry` through the same
runner; this module only prints progress and the summary."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conf_profile.cli import Result, settings_from_args
from conf_profile.cli.data_cmds import add_interval_arg
from conf_profile.errors import ConfProfileError
from conf_profile.secrets import redact_url
from conf_profile.stages.registry import BY_NAME, REFRESH

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "conf_profile_refresh"
SHOWN = [s for s in REFRESH if s != "finish"]  # the stages the summary lists
# Airflow task id -> stage (plan_label and label_done belong to label; record_* to their training stage).
TASK_STAGE = {t: name for name in REFRESH for t in BY_NAME[name].task_ids()}
TASK_STAGE.update({f"record_{BY_NAME[n].task_id}": n for n in ("train_sft", "train_rl")})
_QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
          "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def register(sub, common) -> None:
    p = sub.add_parser(
        "run", parents=[common], help="run the whole weekly pipeline (Airflow DAG in-process, embedded defaults)",
        description="The weekly refresh end to end: on the embedded default data folder (or with --simulate) "
        "simulate logs if the lake has none, then run the "
        "conf_profile_refresh DAG for the newest week in-process with `dag.test()` (a project-local Airflow under "
        "<data_dir>/airflow; SQLite), and print the report card, the promotion decision and how to open the "
        "MLflow and Airflow UIs. Stages whose code is not installed are reported as not run.")
    add_interval_arg(p)
    p.add_argument("--no-airflow", action="store_true",
                   help="run the same stages in-process with the stage runner, without Airflow")
    p.add_argument("--stages", metavar="STAGE", choices=SHOWN,
                   help=f"stop after this stage ({', '.join(SHOWN)}); later stages are reported as not run")
    p.add_argument("--teachers", metavar="A,B", help="comma-separated teacher names (default: all configured)")
    p.add_argument("--force-promote", action="store_true",
                   help="override the gate's metric checks (never its interval rule)")
    p.add_argument("--simulate", action="store_true",
                   help="simulate logs into the lake when it has none (default only for the embedded data folder: "
                        "a lake you name is never filled with simulated data)")
    p.set_defaults(handler=cmd_run)


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
    if stage == "documents" and "shard" in out:
        return f"✓ documents shard-{out['shard']}: {out.get('status')}, {out.get('documents') or 0:,} users"
    if stage == "documents":
        skipped = f", {out['users_skipped']:,} users without a document" if out.get("users_skipped") else ""
        return (f"✓ documents: {out['documents']:,} users (median {out['median_chars']} chars){skipped} "
                f"-> {out['path']}")
    if stage == "label" and out.get("committed"):
        left = f"; LEFT OUT (incomplete): {', '.join(out['left_out'])}" if out.get("left_out") else ""
        return f"✓ label committed: {', '.join(out['teachers'])}{left}"
    if stage == "label":
        return (f"✓ label {out['teacher']}/shard-{out['shard']}: {out.get('status')}, "
                f"{out.get('users') or 0:,} users, {out.get('errors') or 0} errors")
    if stage == "aggregate":
        dropped = sum((out.get("excluded_error_rows") or {}).values()) + sum(
            (out.get("excluded_invalid_rows") or {}).values())
        return (f"✓ aggregate: {out['users']:,} users, {out['distill_records']:,} distillation records, "
                f"{out['rl_prompts']:,} RL prompts (calibration: {out['calibration']}, "
                f"{out.get('calibration_points') or 0:,} points); {dropped:,} teacher answers dropped as errors"
                + (f"; LEFT OUT teachers: {', '.join(out['left_out_teachers'])}" if out.get("left_out_teachers")
                   else ""))
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
    return any(lake.listdir(f"raw/{t}") for t in lake.listdir("raw")) if lake.exists("raw") else False


def _may_simulate(args: argparse.Namespace, settings) -> bool:
    """Only when asked, or on the embedded default lake (<data_dir>/lake): never into a lake the user named."""
    return bool(args.simulate) or settings.lake is None


def cmd_run(args: argparse.Namespace) -> Result:
    from conf_profile.cli.data_cmds import resolve_interval
    from conf_profile.stages import events
    from conf_profile.storage import Lake

    for var, value in _QUIET.items():  # the stage lines are the progress display
        os.environ.setdefault(var, value)
    settings = settings_from_args(args)
    lake = Lake.from_settings(settings)
    stream = _terminal_stream(sys.stderr if args.json else sys.stdout)
    simulated = None
    if not _has_raw(lake):
        if not _may_simulate(args, settings):
            raise ConfProfileError(
                f"The lake {lake.uri} holds no raw tables (nothing under raw/).",
                "Point --lake (or `lake:` in the settings) at your logs, bring them in with `conf-profile import`, "
                "or pass --simulate to fill this lake with simulated logs.")
        from conf_profile.simulate import simulate

        print(f"The lake {lake.uri} is empty: simulating {settings.simulate.users:,} users x "
              f"{settings.simulate.weeks} week(s) (simulate.* settings)...", file=stream, flush=True)
        simulated = simulate(lake, settings.simulate)
    interval = resolve_interval(lake, args.interval, settings)

    runnable = SHOWN[: SHOWN.index(args.stages) + 1] if args.stages else list(SHOWN)
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
    events.subscribe(printer)
    t0 = time.perf_counter()
    try:
        if use_airflow:
            statuses, extra = _run_airflow(args, settings, interval, overrides, printer)
        else:
            statuses, extra = _run_in_process(args, interval, overrides)
    finally:
        events.unsubscribe(printer)
    for s in SHOWN:
        if s not in runnable:
            statuses[s] = f"not run: --stages {args.stages}"
    return _run_result(settings, lake, interval, statuses, printer, extra, simulated, note,
                       round(time.perf_counter() - t0, 1), use_airflow)


def _run_in_process(args: argparse.Namespace, interval, overrides: dict) -> tuple[dict, dict]:
    from conf_profile.stages import runner

    run_id = f"local__{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%S}"
    statuses = runner.run_pipeline(str(interval), config=args.config, lake=args.lake, run_id=run_id,
                                   params=overrides)
    statuses.pop("_run_id", None)
    return statuses, {"dag_run_id": run_id}


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
    results = printer.results
    lines = ["", f"Stages for {interval}:"]
    for s in SHOWN:
        lines.append(f"  {s:<10} {statuses.get(s, 'not run')}")
    summary: dict[str, Any] = {"interval": str(interval), "lake": lake.uri, "mode": "airflow" if use_airflow else
                               "in-process", "stages": {s: statuses.get(s, "not run") for s in SHOWN},
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
    from conf_profile.layout import RunLayout

    report_rel = RunLayout(interval).report
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


