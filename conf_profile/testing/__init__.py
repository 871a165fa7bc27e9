"""Test and benchmark helpers: synthetic data with known truth, and stage manifests for it.

Kept out of the stage packages on purpose (nothing in the pipeline imports it): `teacher_answers` makes
teacher outputs for votes and calibration, `stage1` a small Stage-1 output for Stage-2 tests, and
`commit_stages` writes the stage manifests a synthetic lake needs, so the stage runner accepts it as upstream.
"""

from __future__ import annotations

from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.stages import manifest
from conf_profile.stages.registry import BY_NAME
from conf_profile.storage import Lake


def commit_stages(lake: Lake, interval: Interval, *stages: str) -> None:
    """Write stage manifests over what these stages' outputs hold now (in order: later ones record the earlier
    ones as inputs, as the runner would)."""
    layout = RunLayout(interval)
    done: dict[str, str] = {}
    for name in stages:
        stage = BY_NAME[name]
        inputs = {up: done[up] for up in stage.reads if up in done}
        if name == "label":
            teachers = [t for t in lake.listdir(layout.teachers) if not t.startswith((".", "_"))]
            lake.write_json(layout.path("teachers", "_teachers.json"), {"teachers": teachers, "left_out": {}})
        m = manifest.write(lake, layout, name, inputs, [getattr(layout, w) for w in stage.writes], "test")
        done[name] = m.fingerprint
