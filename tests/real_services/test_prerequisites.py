"""The real-services test's gate, without starting anything: it runs by default, skips only when disabled or
(outside CI) when a prerequisite is missing, and in CI (REAL_SERVICES_REQUIRED=1) a missing one fails."""

from __future__ import annotations

import pytest

from tests.real_services import conftest, services


def test_disabled_explicitly_skips(monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_REAL_SERVICES", "0")
    with pytest.raises(pytest.skip.Exception, match="CONF_PROFILE_REAL_SERVICES=0"):
        conftest.check_enabled()


@pytest.mark.parametrize("required", ["", "1"])
def test_missing_prerequisite_skips_or_fails_in_ci(monkeypatch, required):
    monkeypatch.delenv("CONF_PROFILE_REAL_SERVICES", raising=False)
    monkeypatch.setenv("REAL_SERVICES_REQUIRED", required)
    monkeypatch.setattr(conftest, "missing_prerequisites",
                        lambda: ["PostgreSQL's initdb/pg_ctl (bash scripts/install-postgres.sh)"])
    expected = pytest.fail.Exception if required == "1" else pytest.skip.Exception
    with pytest.raises(expected, match="install-postgres.sh"):
        conftest.check_enabled()


def test_nothing_missing_runs(monkeypatch):
    monkeypatch.delenv("CONF_PROFILE_REAL_SERVICES", raising=False)
    monkeypatch.setattr(conftest, "missing_prerequisites", lambda: [])
    conftest.check_enabled()  # neither skips nor fails


def test_missing_prerequisites_names_the_install_command(monkeypatch):
    monkeypatch.setattr(services, "pg_bindir", lambda: (_ for _ in ()).throw(services.ServiceError("x")))
    assert any("install-postgres.sh" in m for m in services.missing_prerequisites())
