"""Numeric range checks come from the source description (`source.tables.<table>.ranges`), not from the
built-in table names: a platform's own table gets its ranges, a built-in table keeps today's."""

from __future__ import annotations

import pytest

from conf_profile.config import Settings
from conf_profile.data.validation import checks as ck
from conf_profile.errors import ConfigError
from conf_profile.intervals import Interval

IV = Interval.parse("2026-11-02..2026-11-09")


def _reasons(settings: Settings, table: str) -> list[str]:
    return [c.reason for c in ck.row_checks(table, IV, settings.validation, settings.source.tables[table])]


def test_built_in_tables_keep_todays_ranges():
    s = Settings.load()
    watch = _reasons(s, "watch_events")
    assert {"watch_seconds_null", "watch_seconds_not_finite", "watch_seconds_negative",
            "video_seconds_not_finite", "video_seconds_not_positive"} <= set(watch)
    assert "video_seconds_null" not in watch  # an unknown video length is allowed
    assert {"price_not_finite", "price_negative"} <= set(_reasons(s, "purchases"))
    assert ck.NUMERIC_RANGES["watch_events"][0] == ("watch_seconds", 0.0, False, True)


def test_a_platforms_own_table_gets_the_ranges_it_declares(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("source:\n  tables:\n    plays:\n      columns: {user_id: string, ts: timestamp, track: string,"
                   " ms_played: int64, rating: float64}\n      section: plays\n      line: [track]\n"
                   "      ranges:\n        ms_played: {min: 0, strict_min: true, required: true}\n"
                   "        rating: {}\n"
                   "labels:\n  teachers:\n    - {name: lex, backend: lexicon, sources: [plays]}\n")
    s = Settings.load(cfg)
    got = _reasons(s, "plays")
    assert {"ms_played_null", "ms_played_not_finite", "ms_played_not_positive", "rating_not_finite"} <= set(got)
    assert not any(r.startswith("rating_") and r != "rating_not_finite" for r in got)  # no bound declared
    # A built-in name does not bring its ranges to a table with other columns, and vice versa.
    assert not any(r.startswith(("watch_seconds", "price")) for r in got)


def test_ranges_on_a_non_numeric_column_are_refused(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("source:\n  tables:\n    searches:\n      ranges: {query: {min: 0}}\n")
    with pytest.raises(ConfigError, match="query"):
        Settings.load(cfg)
