"""MLflow bookkeeping for one DAG run: one parent run per (DAG run, interval), one child run per stage.

Why find-or-create by tag: the tasks of a DAG run execute in different processes (or pods) and may be retried;
each looks the parent up by its `dag_run_id` tag, so every stage of one DAG run lands under the same parent and
a retried task adds a new child instead of a second parent. Children are attached with the `mlflow.parentRunId`
tag rather than `start_run(parent_run_id=...)`, which refuses a parent that is no longer RUNNING (a task
cleared and rerun after the DAG run finished).

Also here: the identities the registry keys on — dataset hashes (content of committed lake folders), the git
sha and code version, and a hash of the settings that shape the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from conf_profile import __version__
from conf_profile.config import Settings
from conf_profile.intervals import Interval
from conf_profile.storage import MANIFEST, Lake

log = logging.getLogger("conf_profile.registry")

TAG_DAG_RUN = "dag_run_id"
TAG_INTERVAL = "data_interval"
TAG_ROLE = "conf_profile.role"
TAG_STAGE = "conf_profile.stage"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
_HASH_CONTENT_LIMIT = 512 * 1024 * 1024  # above this a folder is hashed by (name, size) instead of content


@dataclass
class Tracking:
    """A configured MLflow client plus the experiment every run goes to."""

    client: Any
    experiment_id: str
    settings: Settings

    @property
    def tracking_uri(self) -> str:
        return self.settings.mlflow_tracking_uri


def configure(settings: Settings) -> Tracking:
    """Point MLflow at the configured (or embedded sqlite) store and make sure the experiment exists, with its
    artifacts under settings.mlflow_artifact_root for the embedded store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    preflight(settings)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    if settings.mlflow.registry_uri:
        mlflow.set_registry_uri(settings.mlflow.registry_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=settings.mlflow.registry_uri)
    exp = client.get_experiment_by_name(settings.mlflow.experiment)
    if exp is None:
        location = None
        if not uri.startswith(("http://", "https://", "databricks")):
            root = Path(settings.mlflow_artifact_root)
            root.mkdir(parents=True, exist_ok=True)
            location = root.as_uri()
        try:
            exp_id = client.create_experiment(settings.mlflow.experiment, artifact_location=location)
        except Exception:  # noqa: BLE001 - created concurrently by a sibling task: read it back
            exp = client.get_experiment_by_name(settings.mlflow.experiment)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    return Tracking(client, exp_id, settings)


def _check_local_store(settings: Settings) -> None:
    """A local store (sqlite file, or the file store MLflow 3 refuses) must be writable before MLflow touches
    it: otherwise sqlite retries for minutes and a plain path ends in MLflow's "maintenance mode" text."""
    from conf_profile.errors import ConfigError
    from conf_profile.secrets import redact_url

    uri = settings.mlflow_tracking_uri
    fix = ("Set mlflow.tracking_uri (CONF_PROFILE_MLFLOW__TRACKING_URI) to sqlite:///<a writable folder>/mlflow.db "
           "or a tracking server's http:// URL; unset it to use the embedded SQLite store under data_dir.")
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if db in ("", ":memory:"):
            return
        paths = [(Path(db), "file")]
    elif "://" not in uri or uri.startswith("file:"):
        folder = Path(uri.removeprefix("file://") if uri.startswith("file:") else uri)
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise ConfigError(f"mlflow.tracking_uri {redact_url(uri)} is a folder (MLflow's file store), which "
                              "MLflow 3 refuses.", fix)
        paths = [(folder, "folder")]
    else:
        return  # a database server (postgresql://, mysql://): its client reports its own errors
    paths.append((Path(settings.mlflow_artifact_root), "folder"))
    for path, kind in paths:
        folder = path if kind == "folder" else path.parent
        try:
            if path.exists() and path.is_dir() != (kind == "folder"):
                raise NotADirectoryError(f"{path} is a {'file' if kind == 'folder' else 'folder'}")
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
            if kind == "file" and path.exists() and not os.access(path, os.W_OK):
                raise PermissionError("permission denied")
        except OSError as exc:
            bad = exc.filename or path
            why = ("a file is where a folder must be" if isinstance(exc, FileExistsError | NotADirectoryError)
                   else (exc.strerror or str(exc)).lower())
            where = "MLflow's artifact folder" if path == paths[-1][0] else f"MLflow store {redact_url(uri)}"
            raise ConfigError(f"{where} cannot be written: {bad}: {why}.", fix) from None


def preflight(settings: Settings) -> None:
    """Bound MLflow's HTTP (timeout and retries from mlflow.http_*, unless MLFLOW_HTTP_REQUEST_* are set) and,
    for a tracking server, check in one short TCP connect that it listens: a server that is down then fails
    within seconds in one paragraph instead of minutes of retries and a traceback-style message."""
    import socket
    from urllib.parse import urlsplit

    from conf_profile.errors import ConfigError
    from conf_profile.secrets import redact_url

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(1, settings.mlflow.http_timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.mlflow.http_max_retries))
    uri = settings.mlflow_tracking_uri
    if not uri.startswith(("http://", "https://")):
        _check_local_store(settings)
        return
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=min(5.0, settings.mlflow.http_timeout_s)):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(
            f"The MLflow tracking server at {redact_url(uri)} cannot be reached ({reason}).",
            "Start it, or fix mlflow.tracking_uri (CONF_PROFILE_MLFLOW__TRACKING_URI); unset it to use the "
            "embedded SQLite store under data_dir.",
        ) from None


def find_parent(tr: Tracking, dag_run_id: str) -> str | None:
    runs = tr.client.search_runs(
        [tr.experiment_id],
        filter_string=f"tags.{TAG_DAG_RUN} = '{_q(dag_run_id)}' and tags.`{TAG_ROLE}` = 'dag_run'",
        order_by=["attributes.start_time ASC"],
        max_results=5,
    )
    return runs[0].info.run_id if runs else None


def parent_run(tr: Tracking, dag_run_id: str, interval: Interval, params: dict | None = None) -> str:
    """The DAG run's parent MLflow run, created on first use (run name = `<dag_run_id> <interval>`)."""
    run_id = find_parent(tr, dag_run_id)
    if run_id:
        return run_id
    tags = {TAG_DAG_RUN: dag_run_id, TAG_INTERVAL: str(interval), TAG_ROLE: "dag_run",
            "git_sha": git_sha(), "code_version": code_version(), RUN_NAME_TAG: f"{dag_run_id} {interval}"}
    run = tr.client.create_run(tr.experiment_id, tags=tags, run_name=f"{dag_run_id} {interval}")
    run_id = run.info.run_id
    if params:
        _log_params(tr.client, run_id, params)
    # Two tasks racing to create the parent (e.g. a manual rerun while the first is alive): keep the oldest.
    first = find_parent(tr, dag_run_id)
    if first and first != run_id:
        tr.client.delete_run(run_id)
        return first
    return run_id


@contextmanager
def stage_run(tr: Tracking, dag_run_id: str, interval: Interval, stage: str,
              params: dict | None = None) -> Iterator[Any]:
    """A child run for one stage under the DAG run's parent, active (fluent API) inside the block; marked
    FAILED when the block raises."""
    import mlflow

    parent = parent_run(tr, dag_run_id, interval)
    tags = {PARENT_TAG: parent, TAG_DAG_RUN: dag_run_id, TAG_INTERVAL: str(interval), TAG_STAGE: stage,
            TAG_ROLE: "stage"}
    while mlflow.active_run() is not None:  # a leftover from a failed task in the same process
        mlflow.end_run("FAILED")
    run = mlflow.start_run(experiment_id=tr.experiment_id, run_name=stage, tags=tags)
    try:
        if params:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
        yield run
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


def finish_parent(tr: Tracking, dag_run_id: str, status: str = "FINISHED") -> None:
    run_id = find_parent(tr, dag_run_id)
    if run_id:
        tr.client.set_terminated(run_id, status)


def log_parent_metrics(tr: Tracking, parent_id: str, metrics: dict[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(metric_key(k), float(v), now, 0) for k, v in metrics.items() if _is_number(v)]
    for i in range(0, len(items), 900):
        tr.client.log_batch(parent_id, metrics=items[i:i + 900])


def _log_params(client: Any, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(k, _param(v)) for k, v in params.items()])


# ---- lake artefacts into MLflow --------------------------------------------------------------------------------
def log_lake_file(lake: Lake, rel: str, artifact_path: str | None = None) -> bool:
    """Copy one lake file into the active run's artifacts (works for local and S3 lakes)."""
    import mlflow

    if not lake.exists(rel):
        return False
    with tempfile.TemporaryDirectory(prefix="conf-profile-art-") as tmp:
        local = Path(tmp) / posixpath.basename(rel)
        local.write_bytes(lake.read_bytes(rel))
        mlflow.log_artifact(str(local), artifact_path=artifact_path)
    return True


def log_lake_folder(lake: Lake, rel_dir: str, artifact_path: str, suffix: str = "") -> int:
    n = 0
    for rel in lake.list_files(rel_dir, suffix=suffix):
        if posixpath.basename(rel).startswith((".", "_")):
            continue
        sub = posixpath.dirname(posixpath.relpath(rel, rel_dir))
        n += log_lake_file(lake, rel, posixpath.join(artifact_path, sub) if sub else artifact_path)
    return n


def log_dataset(lake: Lake, name: str, rel: str, context: str, digest: str | None = None,
                parent_run_id: str | None = None) -> str:
    """Dataset lineage: log_input of a MetaDataset whose source is the lake URI and whose digest is the
    content hash of the (committed) folder; into the active run, or into `parent_run_id` when given."""
    import mlflow
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.meta_dataset import MetaDataset

    digest = digest or dataset_hash(lake, rel)
    uri = lake.uri_of(rel)
    kind = "s3" if lake.is_s3 else "local"  # the artifact source classes are generated, found by type
    source_cls = next(c for c in get_registered_sources() if c._get_source_type() == kind)
    source = source_cls(uri)
    dataset = MetaDataset(source, name=name, digest=digest[:32])
    if parent_run_id:
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        tr_client = mlflow.MlflowClient()
        tr_client.log_inputs(parent_run_id, datasets=[DatasetInput(
            dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])
    else:
        mlflow.log_input(dataset, context=context)
    return digest


# ---- identities -----------------------------------------------------------------------------------------------
def dataset_hash(lake: Lake, rel_dir: str) -> str:
    """Content hash of a committed lake folder: its manifest's file list and the bytes of every listed file
    (the manifest's `meta` is left out, since it may carry timings). Uncommitted folders hash their files."""
    h = hashlib.sha256()
    if lake.is_committed(rel_dir):
        files = sorted(lake.manifest(rel_dir)["files"])
    else:
        files = sorted(posixpath.relpath(f, rel_dir) for f in lake.list_files(rel_dir)
                       if not posixpath.basename(f).startswith((".", "_")))
    sizes = _sizes(lake, rel_dir, files)
    by_content = sum(sizes.values()) <= _HASH_CONTENT_LIMIT
    for name in files:
        h.update(name.encode() + b"\0")
        if by_content:
            h.update(hashlib.sha256(lake.read_bytes(posixpath.join(rel_dir, name))).digest())
        else:
            h.update(str(sizes.get(name, -1)).encode())
    return h.hexdigest()


def raw_hash(lake: Lake, interval: Interval, tables: list[str] | None = None) -> str:
    """Raw partitions have no manifest: hash (path, size) of every file of the interval's days."""
    import pyarrow.fs as pafs

    from conf_profile.schema import RAW_TABLES

    days = {d.isoformat() for d in interval.days()}
    h = hashlib.sha256()
    for table in tables or RAW_TABLES:
        sel = pafs.FileSelector(lake.path(Lake.raw_dir(table)), allow_not_found=True, recursive=True)
        infos = sorted((i for i in lake.fs.get_file_info(sel) if i.type == pafs.FileType.File),
                       key=lambda i: i.path)
        for info in infos:
            rel = posixpath.relpath(info.path, lake.root)
            part = next((p for p in rel.split("/") if p.startswith("dt=")), "")
            if part[3:] in days and not posixpath.basename(rel).startswith((".", "_")):
                h.update(f"{rel}\0{info.size}\n".encode())
    return h.hexdigest()


def _sizes(lake: Lake, rel_dir: str, files: list[str]) -> dict[str, int]:
    import pyarrow.fs as pafs

    infos = lake.fs.get_file_info([lake.path(rel_dir, f) for f in files])
    return {f: (i.size if i.type == pafs.FileType.File else -1) for f, i in zip(files, infos, strict=True)}


@lru_cache(maxsize=1)
def git_sha() -> str:
    """CONF_PROFILE_GIT_SHA, else `git rev-parse HEAD` of the source checkout, else "unknown"."""
    env = os.environ.get("CONF_PROFILE_GIT_SHA")
    if env:
        return env.strip()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) >= 7 else "unknown"


def code_version() -> str:
    sha = git_sha()
    return f"{__version__}+{sha[:12]}" if sha != "unknown" else f"{__version__}+unknown"


# Settings that shape the trained student (a change means a different model for the same data).
_MODEL_SECTIONS = ("documents", "labels", "train")
_NOT_MODEL = {"train": {"work_dir", "threads", "eval"}, "labels": {"shards"}}


def config_hash(settings: Settings) -> str:
    data: dict[str, Any] = {}
    for section in _MODEL_SECTIONS:
        dump = getattr(settings, section).model_dump(mode="json")
        for k in _NOT_MODEL.get(section, set()):
            dump.pop(k, None)
        if section == "train":
            dump["sft"].pop("save_steps", None)
        data[section] = dump
    for t in data["labels"].get("teachers", []):
        for k in ("max_concurrency", "timeout_s", "max_retries", "retry_backoff_s", "batch_size", "base_url"):
            t.pop(k, None)
    taxonomy = Path(settings.taxonomy_path)
    data["taxonomy"] = hashlib.sha256(taxonomy.read_bytes()).hexdigest() if taxonomy.is_file() else None
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def combined_hash(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def short(h: str, n: int = 16) -> str:
    return h[:n]


# ---- helpers --------------------------------------------------------------------------------------------------
def metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and space: `student:rl` becomes `student.rl`."""
    return "".join(c if c.isalnum() or c in "_-./ " else "." for c in name)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


def _param(v: Any) -> str:
    text = json.dumps(v, default=str) if isinstance(v, list | dict) else str(v)
    return text[:500]


def _q(text: str) -> str:
    return text.replace("'", "\\'")


def uri_of_manifest(lake: Lake, rel_dir: str) -> str:
    return lake.uri_of(posixpath.join(rel_dir, MANIFEST))
