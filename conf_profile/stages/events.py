"""Progress events: the runner announces each stage as it starts and ends; printers subscribe.

Why a tiny bus and not return values: under `dag.test()` the stages run inside Airflow's task runner, so
`conf-profile run` learns what happened only through these events (same process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("conf_profile.stages")
Listener = Callable[[str, str, dict], None]  # (stage, status: started|done|skipped|failed, payload)
_listeners: list[Listener] = []


def subscribe(fn: Listener) -> None:
    _listeners.append(fn)


def unsubscribe(fn: Listener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def emit(stage: str, status: str, payload: dict) -> None:
    for fn in list(_listeners):
        try:
            fn(stage, status, payload)
        except Exception:  # noqa: BLE001 - a broken printer must not fail a stage
            log.debug("listener failed", exc_info=True)
