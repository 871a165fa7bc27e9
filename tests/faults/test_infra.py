"""C10: the object store, the local lake folder and the MLflow server failing, through the CLI."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from . import assert_json_error, assert_one_paragraph, clean_env, cli, closed_port

KEYS = {"CONF_PROFILE_S3__ACCESS_KEY": "testing", "CONF_PROFILE_S3__SECRET_KEY": "testing"}


def _moto(port: int, enforce_auth: bool) -> subprocess.Popen:
    """moto's S3 in a process of its own (its auth switch is process-global)."""
    code = ("import sys, time; from moto.server import ThreadedMotoServer; "
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False); s.start(); "
            "time.sleep(3600)")
    env = clean_env(**({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if enforce_auth else {}))
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("moto did not start")


@pytest.fixture(scope="module")
def moto_open():
    port = closed_port()
    proc = _moto(port, enforce_auth=False)
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def moto_auth():
    port = closed_port()
    proc = _moto(port, enforce_auth=True)
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def test_object_store_down_names_the_endpoint_setting(tmp_path):
    env = clean_env(CONF_PROFILE_S3__ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}", **KEYS)
    r = cli("validate", "--lake", "s3://bucket/x", cwd=tmp_path, env=env)
    assert_one_paragraph(r, "CONF_PROFILE_S3__ENDPOINT_URL", "cannot be reached")
    r = cli("validate", "--lake", "s3://bucket/x", "--json", cwd=tmp_path, env=env)
    assert assert_json_error(r, "CONF_PROFILE_S3__ENDPOINT_URL")["error"] == "LakeError"


def test_object_store_down_with_debug_shows_the_traceback(tmp_path):
    env = clean_env(CONF_PROFILE_S3__ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}", **KEYS)
    r = cli("validate", "--lake", "s3://bucket/x", "--debug", cwd=tmp_path, env=env)
    assert r.code != 0 and "Traceback" in r.err


def test_missing_bucket_is_named_not_reported_as_no_full_week(tmp_path, moto_open):
    env = clean_env(CONF_PROFILE_S3__ENDPOINT_URL=moto_open, **KEYS)
    r = cli("validate", "--lake", "s3://no-such-bucket/x", cwd=tmp_path, env=env)
    flat = assert_one_paragraph(r, "'no-such-bucket' does not exist", "conf-profile simulate")
    assert "full week" not in flat


def test_simulate_creates_the_bucket(tmp_path, moto_open):
    env = clean_env(CONF_PROFILE_S3__ENDPOINT_URL=moto_open, **KEYS)
    r = cli("simulate", "--lake", "s3://fresh/x", "--users", "20", "--weeks", "1", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    r = cli("validate", "--lake", "s3://fresh/x", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err


def test_missing_credentials_name_the_variables(tmp_path, moto_auth):
    r = cli("validate", "--lake", "s3://bucket/x", cwd=tmp_path,
            env=clean_env(CONF_PROFILE_S3__ENDPOINT_URL=moto_auth))
    assert_one_paragraph(r, "no credentials", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def test_refused_credentials_name_the_variables(tmp_path, moto_auth):
    r = cli("validate", "--lake", "s3://bucket/x", cwd=tmp_path,
            env=clean_env(CONF_PROFILE_S3__ENDPOINT_URL=moto_auth, **KEYS))
    flat = assert_one_paragraph(r, "refused the credentials", "AWS_ACCESS_KEY_ID")
    assert "testing" not in flat


@pytest.mark.parametrize("command", [["validate"], ["simulate", "--users", "5"]])
def test_unusable_local_lake_path(tmp_path, command):
    r = cli(*command, "--lake", "/proc/x", cwd=tmp_path)
    assert_one_paragraph(r, "/proc/x", "--lake")


def test_missing_local_lake_folder_is_an_error_and_not_created(tmp_path):
    lake = tmp_path / "typo"
    for cmd in (["validate"], ["documents"], ["run", "--no-airflow"], ["aggregate", "--interval",
                                                                        "2026-11-16..2026-11-23"]):
        r = cli(*cmd, "--lake", str(lake), cwd=tmp_path)
        assert_one_paragraph(r, str(lake), "does not exist", "--lake")
        assert not lake.exists(), cmd
    r = cli("validate", "--lake", str(lake), "--json", cwd=tmp_path)
    assert_json_error(r, "does not exist")


def test_simulate_creates_a_missing_local_lake(tmp_path):
    r = cli("simulate", "--lake", str(tmp_path / "new"), "--users", "5", "--weeks", "1", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (tmp_path / "new" / "raw").is_dir()


def test_lake_path_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    r = cli("validate", "--lake", str(tmp_path / "f"), cwd=tmp_path)
    assert_one_paragraph(r, "is a file", "--lake")


def test_mlflow_server_down_fails_within_seconds(tmp_path):
    env = clean_env(CONF_PROFILE_MLFLOW__TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    r = cli("registry", "list", cwd=tmp_path, env=env)
    assert_one_paragraph(r, "CONF_PROFILE_MLFLOW__TRACKING_URI", "cannot be reached")
    r = cli("registry", "list", "--json", cwd=tmp_path, env=env)
    assert_json_error(r, "mlflow.tracking_uri")


def test_doctor_reports_mlflow_down_within_seconds(tmp_path):
    env = clean_env(CONF_PROFILE_MLFLOW__TRACKING_URI=f"http://127.0.0.1:{closed_port()}")
    r = cli("doctor", cwd=tmp_path, env=env)
    assert r.code == 1 and r.seconds < 20 and "Traceback" not in r.err
    line = next(ln for ln in r.out.splitlines() if ln.split()[1:2] == ["mlflow"])
    assert line.startswith("!!") and "CONF_PROFILE_MLFLOW__TRACKING_URI" in line


def test_mlflow_preflight_sets_bounded_http_defaults(tmp_settings, monkeypatch):
    """The HTTP bounds come from settings unless the user set MLflow's own variables."""
    from conf_profile.registry import tracking

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    tmp_settings.mlflow.http_timeout_s = 4
    tracking.preflight(tmp_settings)  # sqlite: no server to check
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "4"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
