"""Users bring their own tables: a music platform (tests/music_domain.py) with two tables, one of its own,
its own categories, taxonomy and lexicon, runs validate -> documents -> label -> aggregate -> report card
through the stage runner with no library change; and the source description is enforced when settings load."""

from __future__ import annotations

import os

import pytest
from music_domain import write_domain

from conf_profile.config import Settings, source_schemas
from conf_profile.errors import ConfigError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.schema import RAW_SCHEMAS
from conf_profile.stages import runner

IV = Interval.parse("2026-11-09..2026-11-16")


@pytest.fixture()
def music(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k, raising=False)
    out = write_domain(tmp_path)
    monkeypatch.setenv("CONF_PROFILE_CONFIG", str(tmp_path / "settings.yaml"))
    return out


def test_the_default_source_is_todays_five_tables():
    schemas = source_schemas(Settings())
    assert list(schemas) == list(RAW_SCHEMAS)
    assert all(schemas[t].equals(RAW_SCHEMAS[t]) for t in RAW_SCHEMAS)
    assert list(Settings().source.sections()) == ["profile", "watch", "searches", "comments", "purchases"]


def test_a_teacher_reading_an_unconfigured_table_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: {tables: {profiles: {}, searches: {}}}\n"
                   "labels: {teachers: [{name: ok, sources: [searches]}, {name: watcher, sources: [watch]}]}\n")
    with pytest.raises(ConfigError, match=r"teacher 'watcher' reads section 'watch'.*'watch_events' is not"):
        Settings.load(cfg)
    cfg.write_text("source: {tables: {profiles: {}}}\nlabels: {teachers: [{name: p, sources: [profile]}]}\n")
    with pytest.raises(ConfigError, match="at least one event table"):
        Settings.load(cfg)


def test_a_table_of_its_own_needs_user_id_ts_and_line_columns(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: {tables: {clicks: {columns: {user_id: string, ts: timestamp, url: string},"
                   " section: clicks, line: [nope]}}}\nlabels: {teachers: [{name: t, sources: [clicks]}]}\n")
    with pytest.raises(ConfigError, match=r"\['nope'\] are not among"):
        Settings.load(cfg)


def test_a_second_domain_runs_end_to_end(music):
    lake = music["lake"]
    settings = Settings.load()
    assert list(settings.source.tables) == ["profiles", "listen_events"]

    v = runner.run("validate", interval=str(IV), tracking=False)
    events_in = v["tables"]["listen_events"]["rows_in"]
    assert events_in == music["rows"]["listen_events"]
    assert v["tables"]["listen_events"]["rows_kept"] >= 0.95 * events_in
    assert set(v["tables"]) == {"profiles", "listen_events"}  # no other table is read (or required)
    clean = lake.read_committed(RunLayout(IV).clean("listen_events"))
    assert "client_version" in clean.column_names  # an extra column is kept, not dropped

    d = runner.run("documents", interval=str(IV), tracking=False)
    docs = lake.read_committed(RunLayout(IV).documents).to_pydict()
    with_events = {u for u in clean["user_id"].to_pylist() if u is not None}
    assert with_events <= set(docs["user_id"]) and d["documents"] == len(music["users"])
    assert set(d["sources"]) == {"profile", "listens"} and d["sources"]["listens"] == len(with_events)
    sample = docs["document"][0]
    assert "## listens" in sample and "## watch" not in sample and "⟦" in sample

    items = runner.run("label", part="plan", interval=str(IV), tracking=False)
    assert {i["teacher"] for i in items} == {"lex_profile", "lex_listens", "lex_all"}
    for item in items:
        runner.run("label", interval=str(IV), tracking=False, **item)
    runner.run("label", part="commit", interval=str(IV), tracking=False)
    agg = runner.run("aggregate", interval=str(IV), tracking=False)
    assert agg["users"] == len(music["users"])

    from conf_profile.evaluate.report import report_interval

    card = report_interval(lake, IV, settings)
    assert card["rows"] and card["eval_users"] > 0
    names = {r["name"] for r in card["rows"]}
    assert {"lex_listens", "lex_all"} <= {n.split(":")[-1] for n in names}
    listens = next(r for r in card["rows"] if r["name"].endswith("lex_listens"))
    assert listens["f1"] > 0  # the genre categories carry the evidence the lexicon reads

