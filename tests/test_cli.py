"""The CLI contract: help that helps, one JSON object with --json, readable errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conf_profile.cli import build_parser, main


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [sys.executable, "-m", "conf_profile.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=120,
    )


def test_every_command_takes_the_common_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"simulate", "validate", "documents"} <= set(sub.choices)
    for name, p in sub.choices.items():
        opts = {o for a in p._actions for o in a.option_strings}
        if not opts & {"--lake"}:
            continue  # command groups (e.g. `train`) carry the options on their subcommands
        assert {"--lake", "--config", "--json", "--debug"} <= opts, name


def test_error_is_one_paragraph_without_traceback(tmp_path):
    proc = _run("validate", "--lake", str(tmp_path / "empty"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "conf-profile simulate" in proc.stderr  # names the fix


def test_json_error_is_one_object(tmp_path):
    proc = _run("validate", "--lake", str(tmp_path / "empty"), "--json")
    assert proc.returncode != 0
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and payload["message"]


def test_debug_shows_the_traceback(tmp_path):
    proc = _run("validate", "--lake", str(tmp_path / "empty"), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_bad_interval_names_the_format(tmp_path, capsys):
    code = main(["documents", "--lake", str(tmp_path), "--interval", "last-week"])
    assert code != 0
    assert "START..END" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "simulate" in out and "--json" in out
