"""The one stage runner, used identically by Airflow tasks (`airflow_support`), `conf-profile run` and the CLI.

It owns what every stage needs around its own work: the context, `stop_after`, the stage manifest
(invalidated before, written last), the MLflow child run, progress events, and the mapping of errors to
what the orchestrator does next:
- **skip**: the stage is not run on purpose or cannot be (stop_after, rl steps 0, no champion, missing extra);
- **fail**: bad data or configuration, or an upstream that has not committed — a retry cannot help;
- **retry**: anything else (object store, teacher servers, a crash): Airflow retries the task, the in-process
  run retries it `compute.retries` times.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Any

from conf_profile.errors import ConfProfileError
from conf_profile.stages import events, manifest
from conf_profile.stages.context import StageContext, make_context
from conf_profile.stages.registry import BY_NAME, REFRESH, Stage, get, load

log = logging.getLogger("conf_profile.stages")
FAILED_TAG = "conf_profile.failed_stage"  # on the DAG run's parent MLflow run while a stage has failed


class StageSkipped(ConfProfileError):
    """The stage was not run on purpose (stop_after, rl steps = 0)."""

    exit_code = 0
    outcome = "skip"


class StageUnavailable(ConfProfileError):
    """The stage's code is not importable (an optional dependency is missing)."""

    outcome = "skip"


class NothingToDo(ConfProfileError):
    """Nothing to do for this run (e.g. no champion to profile with)."""

    exit_code = 0
    outcome = "skip"


def outcome(exc: BaseException) -> str:
    """skip | fail | retry (see the module docstring)."""
    explicit = getattr(exc, "outcome", None)
    if explicit in ("skip", "fail", "retry"):
        return explicit
    if isinstance(exc, ConfProfileError):
        return "fail"
    if isinstance(exc, ImportError):
        return "skip"
    return "retry"


def _check_stop(stage: Stage, ctx: StageContext) -> None:
    stop = ctx.controls.get("stop_after")
    if stage.dag != "refresh" or not stop or stop == "all" or stage.name == "finish":
        return
    if stop not in REFRESH:
        raise ConfProfileError(f"stop_after {stop!r} is not a stage.", f"Use one of: {', '.join(REFRESH)}.")
    if REFRESH.index(stage.name) > REFRESH.index(stop):
        raise StageSkipped(f"Stage {stage.name} not run: the run stops after {stop}.", "Unset stop_after to run it.")


# Libraries whose INFO lines drown a task log (GX logs every expectation it registers).
_NOISY = ("great_expectations", "mlflow", "urllib3", "httpx", "filelock", "datasets", "transformers", "alembic")


def quiet_libraries() -> None:
    """Task logs that read well: library chatter at WARNING and above, our own lines at INFO."""
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))


def execute(stage: Stage, ctx: StageContext, part: str = "fn", **kwargs: Any) -> Any:
    """Run one part of a stage (`fn`, or `plan` / `commit` of a mapped stage) with everything around it."""
    quiet_libraries()
    _check_stop(stage, ctx)
    ref = getattr(stage, part)
    try:
        fn = load(ref)
    except ImportError as exc:
        raise StageUnavailable(f"Stage {stage.name} is not available ({ref}: {exc}).",
                               "Install the package with its extras (`make setup`).") from None
    commits = bool(stage.writes) and (part == "commit" if stage.mapped else part == "fn")
    label = stage.name
    try:
        if commits:
            manifest.invalidate(ctx.lake, ctx.layout, stage.name)
        if stage.tracked and part == "fn":
            with ctx.child_run(stage.name):
                out = fn(ctx, **kwargs)
        else:
            out = fn(ctx, **kwargs)
        if commits:
            m = manifest.write(ctx.lake, ctx.layout, stage.name, dict(ctx.inputs),
                               [getattr(ctx.layout, w) for w in stage.writes], ctx.run_id)
            out = {**out, "fingerprint": m.fingerprint[:16]}
    except BaseException as exc:
        kind = outcome(exc)
        text = exc.message if isinstance(exc, ConfProfileError) else f"{type(exc).__name__}: {exc}"
        events.emit(label, "skipped" if kind == "skip" else "failed", {"error": text, "outcome": kind})
        if kind != "skip":
            _mark_parent(ctx, stage.name)
        raise
    if part == "plan":
        return json.loads(json.dumps(out, default=str))
    out = json.loads(json.dumps(out, default=str))  # XCom-safe: plain JSON types only
    _mark_parent(ctx, stage.name, clear=True)
    events.emit(label, "done", out)
    return out


def run(name: str, *, interval: str | None = None, config: str | None = None, lake: str | None = None,
        run_id: str | None = None, params: dict[str, Any] | None = None, part: str | None = None,
        tracking: bool = True, **kwargs: Any) -> Any:
    """One stage (or one part of a mapped stage) by name: what an Airflow task and a CLI command call.
    Without `part`, a mapped stage called without item arguments runs whole (plan -> items -> commit)."""
    stage = get(name)
    ctx = make_context(interval, config, lake, run_id, params, tracking=tracking)
    if part is None and stage.mapped and not kwargs:
        return run_mapped(stage, ctx)
    return execute(stage, ctx, part or "fn", **kwargs)


def run_mapped(stage: Stage, ctx: StageContext, **commit_kwargs: Any) -> Any:
    """A mapped stage in this process: plan, every planned item, then the commit (its output is returned)."""
    for item in _attempt(ctx, partial(execute, stage, ctx, "plan")):
        _attempt(ctx, partial(execute, stage, ctx, "fn", **item))
    return _attempt(ctx, partial(execute, stage, ctx, "commit", **commit_kwargs))


def run_pipeline(interval: str, *, config: str | None = None, lake: str | None = None, run_id: str | None = None,
                 params: dict[str, Any] | None = None) -> dict[str, str]:
    """The refresh DAG's stages in order, in this process (no Airflow): each stage through `execute`, mapped
    stages as plan -> items -> commit, retries as configured; then the MLflow parent run is ended."""
    ctx = make_context(interval, config, lake, run_id or f"local__{time.strftime('%Y-%m-%dT%H:%M:%S')}", params)
    statuses: dict[str, str] = {}
    failed = False
    for name in REFRESH:
        stage = BY_NAME[name]
        try:
            if name == "finish":
                continue  # the parent run is ended below, after every stage
            if stage.mapped:
                run_mapped(stage, ctx)
            else:
                kwargs = {"model_version": statuses.get("_version")} if name == "promote" else {}
                out = _attempt(ctx, partial(execute, stage, ctx, "fn", **kwargs))
                if name == "register":
                    statuses["_version"] = out["model_version"]
            statuses[name] = "ran"
        except BaseException as exc:  # noqa: BLE001 - reported per stage
            kind = outcome(exc)
            text = exc.message if isinstance(exc, ConfProfileError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, StageUnavailable):  # later stages need this one: say so and stop, no failure
                statuses[name] = f"not run: stage not available ({text})"
                for later in REFRESH[REFRESH.index(name) + 1:]:
                    statuses[later] = "not run: an earlier stage is not available"
                break
            if kind == "skip":
                statuses[name] = f"skipped: {text}"
                continue
            statuses[name] = f"failed: {text}"
            failed = True
            if isinstance(exc, KeyboardInterrupt):
                raise
            break
    statuses.pop("_version", None)
    if ctx.tracking:
        finish(ctx, failed)
    statuses["_run_id"] = ctx.run_id
    return statuses


def _attempt(ctx: StageContext, call):
    tries = ctx.settings.compute.retries
    for attempt in range(tries + 1):
        try:
            return call()
        except Exception as exc:
            if outcome(exc) != "retry" or attempt == tries:
                raise
            delay = min(ctx.settings.compute.retry_delay_s * 2 ** attempt, ctx.settings.compute.max_retry_delay_s)
            log.warning("retrying after %s (attempt %d of %d, in %.0f s)", exc, attempt + 1, tries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _mark_parent(ctx: StageContext, stage: str, clear: bool = False) -> None:
    """Tag (or, after a successful retry, untag) the DAG run's parent MLflow run with a failed stage, so the
    finish task knows the run's outcome in any process. Best effort; only where a parent run exists."""
    if not ctx.tracking or ctx._tr is None and clear:
        return
    try:
        from conf_profile.registry import tracking

        parent = tracking.find_parent(ctx.tr, ctx.run_id)
        if parent is None:
            return
        tags = ctx.tr.client.get_run(parent).data.tags
        if clear and tags.get(FAILED_TAG) == stage:
            ctx.tr.client.delete_tag(parent, FAILED_TAG)
        elif not clear:
            ctx.tr.client.set_tag(parent, FAILED_TAG, stage)
    except Exception:  # noqa: BLE001 - bookkeeping must not hide the stage's own error
        log.debug("could not tag the parent run", exc_info=True)


def finish(ctx: StageContext, failed: bool) -> None:
    """End the DAG run's MLflow parent run, whatever stage the run stopped at (never left RUNNING)."""
    from conf_profile.registry import tracking

    try:
        tracking.finish_parent(ctx.tr, ctx.run_id, "FAILED" if failed else "FINISHED")
    except Exception:  # noqa: BLE001 - bookkeeping must not fail the run
        log.warning("could not end the MLflow parent run of %s", ctx.run_id)
