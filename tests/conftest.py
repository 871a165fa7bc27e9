"""Shared fixtures. Keep them cheap: anything slow is opt-in by name.

- `tmp_settings`: Settings whose data_dir (lake, MLflow sqlite store, artefacts) lives in tmp_path;
- `mlflow_tracking`: that MLflow store configured (experiment created), as a registry.tracking.Tracking;
- `airflow_home`: a migrated, project-local AIRFLOW_HOME for the session (DAGs folder = repo dags/), with the
  environment set before anything imports Airflow. Tests that use it import Airflow inside the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def tmp_settings(tmp_path, monkeypatch):
    from conf_profile.config import Settings

    for var in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(var, raising=False)
    return Settings.load(data_dir=tmp_path / "data")


@pytest.fixture()
def mlflow_tracking(tmp_settings):
    from conf_profile.registry import tracking

    return tracking.configure(tmp_settings)


def airflow_env(home: Path) -> dict[str, str]:
    """The environment a project-local Airflow needs (what `conf-profile run` sets too)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_env(home)
    os.environ.update(env)
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return home
