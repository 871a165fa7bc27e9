"""Airflow plugin for conf-profile: links from tasks to MLflow, and macros for lake paths.

- Operator extra links "MLflow run" and "MLflow model version" on TaskFlow tasks: the API server reads the
  task's return value (XCom) — `register`, `promote` and `promote_manual` return `experiment_id`,
  `mlflow_run_id`, `model_name`, `model_version` — and builds the MLflow UI URL from `mlflow.ui_url` (or the
  tracking URI when it is http(s), else http://127.0.0.1:5000 for `mlflow ui`). Other tasks get no link.
- Macros, e.g. `{{ macros.conf_profile.run_dir(data_interval_start, data_interval_end) }}` (the run's lake
  folder), `{{ macros.conf_profile.interval(data_interval_start, data_interval_end) }}` (`START..END`),
  `{{ macros.conf_profile.lake_uri() }}`, `{{ macros.conf_profile.report_uri(...) }}`.

Kept light: no MLflow import; settings are read when a link or macro is evaluated.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink

DAG_PREFIX = "conf_profile_"
LOCAL_UI = "http://127.0.0.1:5000"


def _settings():
    from conf_profile.config import Settings

    return Settings.load()


# ---- URLs -----------------------------------------------------------------------------------------------------
def mlflow_ui_base(settings: Any = None) -> str:
    settings = settings or _settings()
    if settings.mlflow.ui_url:
        return settings.mlflow.ui_url.rstrip("/")
    uri = settings.mlflow_tracking_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(base: str, name: str, version: str) -> str:
    return f"{base}/#/models/{quote(str(name), safe='')}/versions/{version}"


def links_for(result: Any, base: str) -> dict[str, str]:
    """Link name -> URL for one task's return value (empty when it carries no MLflow identifiers)."""
    if not isinstance(result, dict):
        return {}
    out = {}
    if result.get("mlflow_run_id") and result.get("experiment_id"):
        out[MlflowRunLink.name] = run_url(base, str(result["experiment_id"]), str(result["mlflow_run_id"]))
    if result.get("model_name") and result.get("model_version"):
        out[MlflowModelVersionLink.name] = model_version_url(base, result["model_name"], result["model_version"])
    return out


def _task_result(ti_key: Any) -> Any:
    """The task instance's return value, read from the metadata DB (links are resolved by the API server)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key="return_value", run_id=ti_key.run_id, dag_ids=ti_key.dag_id,
                               task_ids=ti_key.task_id, map_indexes=ti_key.map_index)
            .with_only_columns(XComModel.value)
        ).first()
    if not row:
        return None
    value = row.value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


class _MlflowLink(BaseOperatorLink):
    operators = [_PythonDecoratedOperator]

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if not str(ti_key.dag_id).startswith(DAG_PREFIX):
            return ""
        try:
            return links_for(_task_result(ti_key), mlflow_ui_base()).get(self.name, "")
        except Exception:  # noqa: BLE001 - a broken link must not break the task page
            return ""


class MlflowRunLink(_MlflowLink):
    name = "MLflow run"


class MlflowModelVersionLink(_MlflowLink):
    name = "MLflow model version"


# ---- macros ---------------------------------------------------------------------------------------------------
def _key(start: Any, end: Any) -> str:
    return f"{start:%Y-%m-%d}_{end:%Y-%m-%d}"


def interval(data_interval_start: Any, data_interval_end: Any) -> str:
    """`START..END` (END exclusive), the form every conf-profile command and pipeline function takes."""
    return f"{data_interval_start:%Y-%m-%d}..{data_interval_end:%Y-%m-%d}"


def lake_uri() -> str:
    return _settings().lake_uri


def run_dir(data_interval_start: Any, data_interval_end: Any) -> str:
    """The lake folder of the run's interval: <lake>/runs/<START>_<END>."""
    return posixpath.join(lake_uri(), "runs", _key(data_interval_start, data_interval_end))


def report_uri(data_interval_start: Any, data_interval_end: Any) -> str:
    return posixpath.join(run_dir(data_interval_start, data_interval_end), "report.json")


class ConfProfilePlugin(AirflowPlugin):
    name = "conf_profile"
    operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink()]
    macros = [interval, lake_uri, run_dir, report_uri]
