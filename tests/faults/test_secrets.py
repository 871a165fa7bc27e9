"""B9: credentials in a config file are refused wherever they hide (lists, URL userinfo), and no message or
report ever echoes them."""

from __future__ import annotations

import json

import pytest

from conf_profile.secrets import find_secrets, redact_url, url_has_userinfo

from . import assert_json_error, assert_one_paragraph, clean_env, cli, closed_port

SECRET = "hunter2-s3cr3t"


@pytest.mark.parametrize(("yaml_text", "path"), [
    (f"labels:\n  teachers:\n    - {{name: remote, backend: openai, model: m, api_key: {SECRET}}}\n",
     "labels.teachers[0].api_key"),
    (f"mlflow:\n  tracking_uri: http://admin:{SECRET}@127.0.0.1:5000\n", "mlflow.tracking_uri"),
    (f"labels:\n  teachers:\n    - {{name: lexicon_all}}\n    - {{name: r, backend: openai, model: m, "
     f"base_url: 'https://bot:{SECRET}@llm.example/v1'}}\n", "labels.teachers[1].base_url"),
    (f"s3:\n  secret_key: {SECRET}\n", "s3.secret_key"),
])
def test_secret_in_config_is_refused_and_not_echoed(tmp_path, yaml_text, path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml_text)
    r = cli("doctor", "--config", str(cfg), cwd=tmp_path)
    flat = assert_one_paragraph(r, "holds credentials", path, "environment")
    assert SECRET not in r.err and SECRET not in r.out and SECRET not in flat
    r = cli("doctor", "--config", str(cfg), "--json", cwd=tmp_path)
    assert_json_error(r, path)
    assert SECRET not in r.out + r.err


def test_doctor_redacts_the_tracking_uri_password(tmp_path):
    """Credentials in the environment are allowed; printing them is not."""
    uri = f"http://admin:{SECRET}@127.0.0.1:{closed_port()}"
    for extra in ([], ["--json"]):
        r = cli("doctor", *extra, cwd=tmp_path, env=clean_env(CONF_PROFILE_MLFLOW__TRACKING_URI=uri))
        assert r.code == 1
        assert SECRET not in r.out + r.err
        assert "***@127.0.0.1" in r.out
    assert json.loads(r.out)["checks"]["mlflow"]["ok"] is False


def test_registry_error_does_not_echo_the_password(tmp_path):
    uri = f"http://admin:{SECRET}@127.0.0.1:{closed_port()}"
    r = cli("registry", "list", cwd=tmp_path, env=clean_env(CONF_PROFILE_MLFLOW__TRACKING_URI=uri))
    assert_one_paragraph(r, "***@127.0.0.1")
    assert SECRET not in r.err


def test_find_secrets_walks_lists_and_urls_and_returns_paths_only():
    data = {"a": [{"b": {"password": "x1"}}, "http://u:p@h/x", "http://h/x"], "c": {"api_key": ""},
            "d": "user@example.com", "e": {"token": None}}
    found = find_secrets(data)
    assert found == ["a[0].b.password", "a[1] (credentials in the URL)"]
    assert not any("x1" in f or "u:p" in f for f in found)


def test_redact_url():
    assert redact_url("http://u:p@host:5000/x?y=1") == "http://***@host:5000/x?y=1"
    assert redact_url("https://token@host/v1") == "https://***@host/v1"
    assert redact_url("http://host:5000") == "http://host:5000"
    assert redact_url("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert redact_url(None) == ""
    assert not url_has_userinfo("mailto user@example.com") and url_has_userinfo("s3://k:s@bucket/x")
