"""Progress bars for long work: tqdm on stderr, only when a person is watching (a TTY, no --json)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    if os.environ.get("CONF_PROFILE_PROGRESS") == "1":
        return True
    return not _quiet and sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=not enabled(), file=sys.stderr, leave=False))


def bar(desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    return tqdm(desc=desc, total=total, unit=unit, disable=not enabled(), file=sys.stderr, leave=False)
