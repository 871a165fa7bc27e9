"""Data intervals: `START..END` with ISO dates, END exclusive. Every run output path derives from one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from conf_profile.errors import ConfProfileError

_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.\.|_)(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class Interval:
    start: date
    end: date  # exclusive

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ConfProfileError(
                f"Interval {self.start}..{self.end} is empty.", "END must be after START (END is exclusive)."
            )

    @classmethod
    def parse(cls, text: str) -> Interval:
        """Parse `2026-11-16..2026-11-23` (or the folder form `2026-11-16_2026-11-23`)."""
        m = _RE.match(text.strip())
        if not m:
            raise ConfProfileError(
                f"Cannot read interval {text!r}.",
                "Write it as START..END with ISO dates, END exclusive, e.g. 2026-11-16..2026-11-23, or 'latest'.",
            )
        try:
            start, end = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
        except ValueError as exc:  # 2026-02-30: the shape is right, the day does not exist
            raise ConfProfileError(
                f"Interval {text!r} names a date that does not exist ({exc}).",
                "Write it as START..END with real ISO dates, END exclusive, e.g. 2026-11-16..2026-11-23.",
            ) from None
        return cls(start, end)

    @classmethod
    def week_starting(cls, start: date) -> Interval:
        return cls(start, start + timedelta(days=7))

    @classmethod
    def from_datetimes(cls, start: datetime, end: datetime) -> Interval:
        """From an Airflow data interval (timezone-aware datetimes at midnight)."""
        return cls(start.date(), end.date())

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def key(self) -> str:
        """Folder-safe form used under `runs/`."""
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def previous(self) -> Interval:
        span = self.end - self.start
        return Interval(self.start - span, self.start)
