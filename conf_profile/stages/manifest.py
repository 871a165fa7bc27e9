"""Stage manifests: a stage commits as a unit.

A stage writes its outputs, then one stage manifest last (`runs/<key>/_stages/<stage>.json`) recording the
fingerprint of each output and of each input it read (the upstream stage manifests). The runner deletes a
stage's manifest before the stage runs, so a crash leaves no manifest and nothing downstream reads half an
output. A reader (`require`) refuses an upstream without its manifest, an output whose content changed since
the manifest was written, and upstreams that disagree with each other (labels made from documents rebuilt
since); the error names the stage to rerun.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from conf_profile.errors import ConfProfileError
from conf_profile.layout import RunLayout
from conf_profile.storage import Lake


class StageNotReady(ConfProfileError):
    """An upstream stage has not committed (or its outputs changed since): rerun that stage first."""

    outcome = "fail"


@dataclass
class Manifest:
    stage: str
    fingerprint: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    data: dict[str, Any]

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        return cls(d["stage"], d["fingerprint"], d.get("inputs", {}), d.get("outputs", {}), d)


def _fingerprint(inputs: dict[str, str], outputs: dict[str, str]) -> str:
    blob = json.dumps({"inputs": inputs, "outputs": outputs}, sort_keys=True).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def read(lake: Lake, layout: RunLayout, stage: str) -> Manifest | None:
    rel = layout.stage_manifest(stage)
    if not lake.exists(rel):
        return None
    try:
        return Manifest.from_json(lake.read_json(rel))
    except (ValueError, KeyError, TypeError):
        return None  # a corrupt manifest is no manifest


def invalidate(lake: Lake, layout: RunLayout, stage: str) -> None:
    lake.delete(layout.stage_manifest(stage))


def write(lake: Lake, layout: RunLayout, stage: str, inputs: dict[str, str], outputs: list[str],
          run_id: str, summary: dict | None = None) -> Manifest:
    """Fingerprint the outputs (committed folders or files) and write the stage manifest, last."""
    outs = {rel: lake.fingerprint(rel) for rel in outputs if lake.exists(rel)}
    fp = _fingerprint(inputs, outs)
    data = {"stage": stage, "interval": str(layout.interval), "fingerprint": fp, "inputs": inputs,
            "outputs": outs, "run_id": run_id, "committed_at": dt.datetime.now(dt.UTC).isoformat(),
            "summary": summary or {}}
    lake.write_json(layout.stage_manifest(stage), data)
    return Manifest.from_json(data)


def require(lake: Lake, layout: RunLayout, stage: str, command: str | None = None) -> Manifest:
    """The committed manifest of `stage`, its outputs unchanged since; else StageNotReady naming the fix."""
    m = read(lake, layout, stage)
    rerun = f"Rerun it: `conf-profile {command or stage} --interval {layout.interval}` (or the DAG task)."
    if m is None:
        raise StageNotReady(f"Stage {stage} has not committed for {layout.interval} (no stage manifest at "
                            f"{lake.uri_of(layout.stage_manifest(stage))}: it never ran, failed, or is running).",
                            rerun)
    for rel, fp in m.outputs.items():
        now = lake.fingerprint(rel) if lake.exists(rel) else None
        if now != fp:
            raise StageNotReady(f"The output {lake.uri_of(rel)} of stage {stage} changed or disappeared after "
                                f"the stage committed for {layout.interval}.", rerun)
    return m


def check_consistent(manifests: dict[str, Manifest]) -> None:
    """Upstreams must agree: when one recorded another as its input, the fingerprints must match."""
    for name, m in manifests.items():
        for up, fp in m.inputs.items():
            if up in manifests and manifests[up].fingerprint != fp:
                raise StageNotReady(
                    f"Stage {name} was made from an older {up} (its recorded input differs from the current "
                    f"{up} output): the two do not belong together.", f"Rerun {name} for this interval.")
