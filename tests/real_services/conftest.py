"""Session fixtures of the real-services test: a tiny lake of three weeks ending at the newest full week
(so the scheduler's own run of the refresh DAG has data), and the bare-metal stack of `services.py` started
on it. Everything is stopped at the end of the session, also when a test or a start fails, on Ctrl-C and
on SIGTERM (and the services die with the test process even when it is killed: see services._die_with_parent).

Part of the default suite. CONF_PROFILE_REAL_SERVICES=0 skips it; a machine without the prerequisites
(PostgreSQL, the airflow/postgres extras) skips it naming the install command, except where
REAL_SERVICES_REQUIRED=1 (set by .ci/run): there a missing prerequisite fails the suite."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import signal
import time
from types import SimpleNamespace

import pytest
import yaml

from tests.real_services.services import ADMIN, Stack, missing_prerequisites

WEEKS = 3


def _weeks(today: dt.date) -> list[tuple[dt.date, dt.date]]:
    """The WEEKS newest full Monday-aligned weeks [start, end) before `today` (oldest first)."""
    last_monday = today - dt.timedelta(days=today.weekday())
    return [(last_monday - dt.timedelta(days=7 * (WEEKS - i)), last_monday - dt.timedelta(days=7 * (WEEKS - i - 1)))
            for i in range(WEEKS)]


def _config(root, stack: Stack, weeks) -> dict:
    from tests.test_dags_e2e import TINY  # one tiny configuration for both end-to-end tests

    cfg = yaml.safe_load(TINY)
    cfg["data_dir"] = str(root / "data")
    cfg["simulate"].update(weeks=WEEKS, start=weeks[0][0].isoformat())
    cfg["labels"]["shards"] = 1  # 5 teachers x 1 shard: fewer task processes, same wiring
    cfg["mlflow"] = {"tracking_uri": stack.mlflow_url}
    return cfg


def check_enabled() -> None:
    """Skip when disabled; skip (or, with REAL_SERVICES_REQUIRED=1, fail) naming what is missing."""
    if os.environ.get("CONF_PROFILE_REAL_SERVICES", "1").strip().lower() in ("0", "false", "no", "off"):
        pytest.skip("real-services test disabled by CONF_PROFILE_REAL_SERVICES=0")
    missing = missing_prerequisites()
    if missing:
        why = "real-services test needs " + "; ".join(missing)
        if os.environ.get("REAL_SERVICES_REQUIRED") == "1":
            pytest.fail(f"{why}. REAL_SERVICES_REQUIRED=1 (CI) turns this skip into a failure; "
                        "`make setup` installs all of it.", pytrace=False)
        pytest.skip(why)


class _Terminated(KeyboardInterrupt):
    """SIGTERM raised as an interrupt, so teardown stops the stack as it does on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated(f"signal {signum}")


@pytest.fixture(scope="session")
def real_stack(tmp_path_factory):
    check_enabled()
    root = tmp_path_factory.mktemp("real_services")
    weeks = _weeks(dt.datetime.now(dt.UTC).date())
    stack = Stack(root=root)
    cfg_path = root / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(_config(root, stack, weeks)))
    stack.extra_env = {"CONF_PROFILE_CONFIG": str(cfg_path), "HF_HUB_OFFLINE": "1",
                       "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}

    from conf_profile.config import Settings
    from conf_profile.simulate import simulate
    from conf_profile.storage import Lake

    saved = {k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]}
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    atexit.register(stack.stop)  # idempotent; a last resort if the session ends without fixture teardown
    t0 = time.perf_counter()
    try:
        settings = Settings.load(cfg_path)
        simulate(Lake.from_settings(settings), settings.simulate)
        t_sim = time.perf_counter() - t0
        with stack:
            state = SimpleNamespace(stack=stack, settings=settings, weeks=weeks, timings={"simulate": t_sim,
                                    "stack start": time.perf_counter() - t0 - t_sim})
            yield state
            t_stop = time.perf_counter()
        state.timings["stack stop"] = time.perf_counter() - t_stop
        print("\n".join(["", "real-services timings:"] + [f"  {k:<32} {v:6.1f} s" for k, v in state.timings.items()]))
    finally:
        stack.stop()
        atexit.unregister(stack.stop)
        signal.signal(signal.SIGTERM, old_term)
        os.environ.update(saved)


@pytest.fixture(scope="session")
def api(real_stack):
    """An httpx client on Airflow's REST API v2 with a JWT from `POST /auth/token`, as the UI gets one."""
    import httpx

    stack = real_stack.stack
    token = httpx.post(f"{stack.api_url}/auth/token", json={"username": ADMIN, "password": stack.admin_password},
                       timeout=30)
    assert token.status_code == 201, token.text
    with httpx.Client(base_url=f"{stack.api_url}/api/v2", timeout=60,
                      headers={"Authorization": f"Bearer {token.json()['access_token']}"}) as client:
        yield client
