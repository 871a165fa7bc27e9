"""Faults lose nothing: each fault, driven through the CLI as a user would, ends within seconds in one
paragraph on stderr that names the setting to fix, without a traceback (unless --debug), and with --json as
one JSON object on stdout. Helpers shared by the modules of this package."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Interpreter start and imports included; on a loaded 2-core machine they take a few seconds. The faults
# measured before the fix took 25 s (a dripping teacher) to 4 minutes (an MLflow server that is down).
BOUND_S = 20.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONF_PROFILE_", "AWS_", "MLFLOW_")) or k == "AWS_CA_BUNDLE"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"})
    env.update(extra)
    return env


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    """`python -m conf_profile.cli ARGS` in a subprocess, timed."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "conf_profile.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or clean_env(), timeout=timeout)
    return Ran(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)


def assert_one_paragraph(r: Ran, *names: str, bound_s: float = BOUND_S) -> str:
    """Non-zero exit, within the bound, one `error:` paragraph on stderr that names each of `names`."""
    assert r.code != 0, r.out
    assert r.seconds < bound_s, f"took {r.seconds:.1f} s"
    err = r.err.strip()
    assert "Traceback" not in err, err
    assert err.startswith("error: "), err
    assert "\n\n" not in err and err.count("error:") == 1, err
    assert "Unexpected error" not in err and "likely a bug" not in err, err
    flat = " ".join(err.split())
    for name in names:
        assert name in flat, f"{name!r} not named in: {flat}"
    return flat


def assert_json_error(r: Ran, *names: str) -> dict:
    """--json: exactly one JSON object on stdout (ok false), and still the paragraph on stderr."""
    assert_one_paragraph(r, *names)
    lines = [line for line in r.out.splitlines() if line.strip()]
    assert len(lines) == 1, r.out
    payload = json.loads(lines[0])
    assert isinstance(payload, dict) and payload["ok"] is False and payload["message"]
    return payload
