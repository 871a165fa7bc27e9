"""A2: `kill -9` in the middle of a stage (a real SIGKILL of a subprocess, at a chosen write) never leaves
outputs of two runs that read as complete: the stage has no manifest, its readers refuse, a rerun commits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.stages import manifest, runner
from conf_profile.stages.manifest import StageNotReady
from conf_profile.storage import Lake

IV = Interval.parse("2026-11-09..2026-11-16")
CONFIG = ("simulate: {{users: 60, weeks: 1, start: 2026-11-09, seed: 5}}\n"
          "validation: {{min_rows: {{watch_events: 10, searches: 0, comments: 0, purchases: 0, profiles: 0}},"
          " critical_max_bad_fraction: 0.3}}\ndata_dir: {data}\n")
KILL_AFTER = textwrap.dedent("""
    import os, signal, sys
    from conf_profile import storage
    real, seen = storage.Lake.commit, []
    def commit(self, rel_dir, files, meta=None):
        out = real(self, rel_dir, files, meta)
        seen.append(rel_dir)
        if len(seen) == int(os.environ["KILL_AFTER_COMMITS"]):
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup, no exception handler runs
        return out
    storage.Lake.commit = commit
    from conf_profile.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture()
def lake(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k, raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data"))
    monkeypatch.setenv("CONF_PROFILE_CONFIG", str(cfg))
    from conf_profile.config import Settings
    from conf_profile.simulate import simulate

    s = Settings.load()
    lk = Lake.from_settings(s, create=True)
    simulate(lk, s.simulate)
    return lk


def _killed(stage: str, after: int) -> int:
    env = {**os.environ, "KILL_AFTER_COMMITS": str(after)}
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER, stage, "--interval", str(IV)], env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode


def test_kill_9_mid_validate_then_rerun(lake):
    lay = RunLayout(IV)
    runner.run("validate", interval=str(IV), tracking=False)
    runner.run("documents", interval=str(IV), tracking=False)
    old = manifest.read(lake, lay, "validate").fingerprint
    assert _killed("validate", after=2) == -9  # killed after 2 of 5 clean tables were rewritten
    assert manifest.read(lake, lay, "validate") is None  # no manifest: the half-written stage is not complete
    with pytest.raises(StageNotReady, match="Stage validate has not committed"):
        runner.run("documents", interval=str(IV), tracking=False)
    runner.run("validate", interval=str(IV), tracking=False)  # the rerun commits as a unit
    assert manifest.read(lake, lay, "validate").fingerprint == old  # same data: the same result
    assert runner.run("documents", interval=str(IV), tracking=False)["documents"] > 0


def test_kill_9_mid_aggregate_never_mixes_votes_with_old_sets(lake):
    lay = RunLayout(IV)
    for name in ("validate", "documents"):
        runner.run(name, interval=str(IV), tracking=False)
    for item in runner.run("label", part="plan", interval=str(IV), tracking=False):
        runner.run("label", interval=str(IV), tracking=False, **item)
    runner.run("label", part="commit", interval=str(IV), tracking=False)
    runner.run("aggregate", interval=str(IV), tracking=False)
    assert _killed("aggregate", after=1) == -9  # new votes written, old distillation and RL sets still there
    assert manifest.read(lake, lay, "aggregate") is None
    with pytest.raises(StageNotReady, match="Stage aggregate has not committed"):
        runner.run("train_sft", interval=str(IV), tracking=False)
