"""The bare-metal stack of docs/deployment.md ("Bare metal (no Docker)"), as code: PostgreSQL, the MLflow
server and Airflow's api-server, scheduler, dag-processor and triggerer (LocalExecutor), every port on
127.0.0.1. tests/real_services/ starts exactly this; so can a developer, by hand:

    python -m tests.real_services.services up [--root DIR]      # prints the URLs and the admin password

One source for the commands and the environment: the doc shows what `commands()` and `airflow_env()` return.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PG_USER = "conf"  # PostgreSQL superuser of the test cluster (owner of the airflow and mlflow databases)
ADMIN = "admin"  # SimpleAuthManager user (role admin)
AIRFLOW_COMPONENTS = {  # name -> `airflow` arguments. The log servers are skipped: see log_note below.
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
# Airflow 3.3's log servers (scheduler/worker: 8793, triggerer: 8794) bind every interface and have no host
# setting. On one machine they are not needed: task and trigger logs are files under AIRFLOW_HOME/logs, which
# the api-server reads directly. So they are not started (--skip-serve-logs).


class ServiceError(RuntimeError):
    """A service did not start; the message names it and ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path:
    """The directory of `initdb` (Debian: /usr/lib/postgresql/<major>/bin, not on PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(cand).parent
    raise ServiceError("PostgreSQL's initdb was not found; install it with `bash scripts/install-postgres.sh`.")


def _venv_bin(name: str) -> str:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


def missing_prerequisites() -> list[str]:
    """What this machine lacks to start the stack, each with the command that installs it ([] = ready).
    Checked before anything starts, so a missing tool is one clear line, not a half-started stack."""
    missing = []
    try:
        pg_bindir()
    except ServiceError:
        missing.append("PostgreSQL's initdb/pg_ctl (bash scripts/install-postgres.sh)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("the `postgres` system user to run PostgreSQL as root (bash scripts/install-postgres.sh)")
        if shutil.which("runuser") is None:
            missing.append("runuser (util-linux) to run PostgreSQL as the postgres user")
    for tool, pip in (("airflow", "-e '.[airflow]'"), ("mlflow", "-e .")):
        if not Path(_venv_bin(tool)).exists() and shutil.which(tool) is None:
            missing.append(f"the `{tool}` command (pip install {pip}; `make setup` does all of it)")
    for mod in ("psycopg2", "asyncpg"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(f"the Python package {mod} (pip install -e '.[postgres]')")
    return missing


def _die_with_parent() -> None:
    """preexec_fn: the service gets SIGTERM when the test process dies, even by SIGKILL (Linux), so a killed
    test run leaves no server behind. Harmless where prctl is not available."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Stack:
    """Ports, secrets and folders of one stack under `root`; `start()` / `stop()` (also a context manager)."""

    root: Path
    pg_port: int = field(default_factory=free_port)
    mlflow_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    pg_password: str = field(default_factory=lambda: secrets.token_hex(12))
    admin_password: str = field(default_factory=lambda: secrets.token_hex(12))
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. CONF_PROFILE_CONFIG for the DAGs
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    pg_dir: Path | None = None

    # ---- what docs/deployment.md shows ---------------------------------------------------------------
    def db_url(self, db: str, driver: str = "psycopg2") -> str:
        """Name the driver: SQLAlchemy 2.1's default for a bare postgresql:// is psycopg (v3), not psycopg2."""
        return f"postgresql+{driver}://{PG_USER}:{self.pg_password}@127.0.0.1:{self.pg_port}/{db}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def mlflow_env(self) -> dict[str, str]:
        return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}

    def airflow_env(self) -> dict[str, str]:
        home = self.root / "airflow"
        secret = self.root / "secrets.json"
        keys = json.loads(secret.read_text()) if secret.exists() else {}
        if not keys:
            from cryptography.fernet import Fernet

            keys = {"fernet": Fernet.generate_key().decode(), "jwt": secrets.token_urlsafe(32),
                    "api": secrets.token_urlsafe(32)}
            self.root.mkdir(parents=True, exist_ok=True)
            secret.write_text(json.dumps(keys))
            secret.chmod(0o600)
        return {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet"],
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url("airflow"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__SECRET_KEY": keys["api"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt"],
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **self.extra_env,
        }

    def commands(self) -> dict[str, list[str]]:
        mlflow = [_venv_bin("mlflow"), "server", "--backend-store-uri", self.db_url("mlflow"),
                  "--artifacts-destination", str(self.root / "mlartifacts"),
                  "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1"]
        airflow = _venv_bin("airflow")
        return {"mlflow": mlflow, **{name: [airflow, *args] for name, args in AIRFLOW_COMPONENTS.items()}}

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONF_PROFILE_")}  # settings: extra only
        env.update(extra)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        return env

    def start(self, timeout_s: float = 240) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.start_postgres()
        for db in ("airflow", "mlflow"):
            self._pg_client("createdb", db)
        self._spawn("mlflow", self.commands()["mlflow"], self.mlflow_env())
        af_env = self.airflow_env()
        Path(af_env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        Path(af_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(
            json.dumps({ADMIN: self.admin_password}))
        airflow = _venv_bin("airflow")
        self._run("airflow db migrate", [airflow, "db", "migrate"], af_env, timeout_s)
        self._run("airflow pools set", [airflow, "pools", "set", "conf_profile_promote", "1",
                                        "conf-profile: one promotion at a time"], af_env, 120)
        for name in AIRFLOW_COMPONENTS:
            self._spawn(name, self.commands()[name], af_env)
        self._wait_http("mlflow", f"{self.mlflow_url}/health", timeout_s)
        self._wait_airflow_healthy(timeout_s)

    def start_postgres(self) -> None:
        bindir = pg_bindir()
        self.pg_dir = Path(tempfile.mkdtemp(prefix="conf-profile-pg-"))  # not under a root-only folder
        pwfile = self.pg_dir / "pwfile"
        pwfile.write_text(self.pg_password + "\n")
        as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceError("running as root and there is no `postgres` user to run PostgreSQL as; "
                                   "`bash scripts/install-postgres.sh` creates it.") from None
            for p in (self.pg_dir, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        data = self.pg_dir / "data"
        self._run("initdb", [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER,
                             f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
                             "-E", "UTF8", "--locale=C"], {}, 120)
        opts = f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -c unix_socket_directories='' " \
               "-c fsync=off -c max_connections=200"
        self._run("pg_ctl start", [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                                   "-l", str(self.pg_dir / "postgres.log"), "-o", opts, "start"], {}, 90)
        self._pg_as_user = as_user

    def _pg_client(self, tool: str, *args: str) -> None:
        self._run(tool, [str(pg_bindir() / tool), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", PG_USER,
                         *args], {"PGPASSWORD": self.pg_password}, 60)

    def _run(self, label: str, cmd: list[str], extra: dict[str, str], timeout_s: float) -> None:
        try:
            proc = subprocess.run(cmd, env=self._env(extra), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"")[-3000:]
            raise ServiceError(f"{label} did not finish within {timeout_s:.0f} s (killed): "
                               f"{' '.join(cmd[:4])} ...\n{out.decode(errors='replace') if isinstance(out, bytes) else out}"
                               ) from None
        if proc.returncode != 0:
            raise ServiceError(f"{label} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

    def _spawn(self, name: str, cmd: list[str], extra: dict[str, str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(cmd, env=self._env(extra), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        log.close()

    def log_tail(self, name: str, n: int = 4000) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ServiceError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")

    def _wait_http(self, name: str, url: str, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            time.sleep(1)
        raise ServiceError(f"{name} did not answer {url} within {timeout_s:.0f} s:\n{self.log_tail(name)}")

    def _wait_airflow_healthy(self, timeout_s: float) -> None:
        """`GET /api/v2/monitor/health` until the scheduler, dag-processor and triggerer report healthy."""
        import httpx

        deadline, last = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                last = httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                    return
            time.sleep(1)
        raise ServiceError(f"Airflow not healthy within {timeout_s:.0f} s: {last}\n{self.log_tail('scheduler')}")

    def pids(self) -> set[int]:
        """Every process of the stack: the spawned services with their children, and the postmaster with its
        backends."""
        import psutil

        roots = [p.pid for p in self.procs.values() if p.poll() is None]
        pidfile = self.pg_dir / "data" / "postmaster.pid" if self.pg_dir else None
        if pidfile is not None and pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                roots.append(int(pidfile.read_text().split()[0]))
        out: set[int] = set()
        for pid in roots:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                out |= {pid, *(c.pid for c in proc.children(recursive=True))}
        return out

    def listening(self) -> list[tuple[str, int, str]]:
        """(address, port, process name) of every TCP socket a stack process listens on."""
        import psutil

        found = []
        for pid in sorted(self.pids()):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                for c in proc.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        found.append((c.laddr.ip, c.laddr.port, proc.name()))
        return found

    def stop(self) -> None:
        """Stop every process this stack started (their whole process groups), then PostgreSQL."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(list(self.procs.values())):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):  # children left in the group (task runners)
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        if self.pg_dir is not None:
            data = self.pg_dir / "data"
            if (data / "postmaster.pid").exists():
                subprocess.run([*getattr(self, "_pg_as_user", []), str(pg_bindir() / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.real_services.services", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["up"])
    ap.add_argument("--root", type=Path, default=None, help="state folder (default: a new temp folder)")
    args = ap.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="conf-profile-stack-"))
    with Stack(root=root.resolve()) as stack:
        print(f"Airflow  {stack.api_url}  (user {ADMIN}, password {stack.admin_password})")
        print(f"MLflow   {stack.mlflow_url}\nlogs     {root / 'logs'}\nCtrl-C stops everything.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                stack._check_alive()
                time.sleep(2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
