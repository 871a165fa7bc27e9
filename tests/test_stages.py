"""The stage registry, the runner's error mapping and the stage manifests (a stage commits as a unit; a
reader refuses a missing, changed or inconsistent upstream)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from conf_profile.errors import ConfigError, LakeError, ValidationFailed
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.stages import manifest, registry, runner
from conf_profile.stages.manifest import StageNotReady
from conf_profile.teachers.labelling import TeacherOutage

IV = Interval.parse("2026-11-09..2026-11-16")


def test_the_registry_is_the_one_stage_list():
    assert registry.REFRESH[:3] == ("validate", "documents", "label") and registry.REFRESH[-1] == "finish"
    for s in registry.STAGES:
        for up in s.reads:
            assert up in registry.BY_NAME and registry.REFRESH.index(up) < registry.REFRESH.index(s.name)
        for w in s.writes:
            assert isinstance(getattr(RunLayout(IV), w), str)  # the layout owns every path a stage writes
    assert all(registry.load(s.fn) for s in registry.STAGES)


@pytest.mark.parametrize("exc,kind", [
    (runner.StageSkipped("x"), "skip"), (runner.NothingToDo("x"), "skip"), (runner.StageUnavailable("x"), "skip"),
    (ValidationFailed("x"), "fail"), (ConfigError("x"), "fail"), (StageNotReady("x"), "fail"),
    (LakeError("x"), "fail"), (TeacherOutage("x"), "retry"), (OSError("x"), "retry"), (RuntimeError("x"), "retry"),
])
def test_errors_map_to_skip_fail_retry(exc, kind):
    assert runner.outcome(exc) == kind


@pytest.mark.parametrize("exc,airflow_name", [
    (runner.StageSkipped("x"), "AirflowSkipException"), (ConfigError("x"), "AirflowFailException"),
    (OSError("disk"), "OSError")])
def test_airflow_tasks_get_the_same_mapping(monkeypatch, exc, airflow_name):
    import airflow.sdk

    from conf_profile import airflow_support

    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"run_id": "r", "params": {},
                        "data_interval_start": None, "data_interval_end": None})

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(runner, "run", boom)
    with pytest.raises(Exception) as err:
        airflow_support.run_task("documents", with_interval=False)
    assert type(err.value).__name__ == airflow_name


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """A tiny simulated lake, validated and documented through the runner (stage manifests written)."""
    for k in [k for k in __import__("os").environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k, raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\nsimulate: {{users: 80, weeks: 1, start: 2026-11-09, seed: 3}}\n"
                   "validation: {min_rows: {watch_events: 10, searches: 0, comments: 0, purchases: 0, profiles: 0},"
                   " critical_max_bad_fraction: 0.2}\n"
                   "labels: {shards: 2, teachers: [{name: lexicon_all}, {name: lexicon_watch, sources: [watch]}]}\n")
    monkeypatch.setenv("CONF_PROFILE_CONFIG", str(cfg))
    from conf_profile.config import Settings
    from conf_profile.simulate import simulate
    from conf_profile.storage import Lake

    settings = Settings.load()
    lake = Lake.from_settings(settings)
    simulate(lake, settings.simulate)
    for name in ("validate", "documents"):
        runner.run(name, interval=str(IV), tracking=False)
    return lake


def _label(part="fn", **kw):
    return runner.run("label", part=part, interval=str(IV), tracking=False, **kw)


def test_a_stage_commits_last_and_readers_refuse_what_is_missing_or_stale(world):
    lake, lay = world, RunLayout(IV)
    with pytest.raises(StageNotReady, match="Stage label has not committed"):
        runner.run("aggregate", interval=str(IV), tracking=False)
    for item in _label("plan"):
        _label(**item)
    assert _label("commit")["teachers"] == ["lexicon_all", "lexicon_watch"]
    out = runner.run("aggregate", interval=str(IV), tracking=False)
    assert out["users"] > 0 and manifest.read(lake, lay, "aggregate").inputs.keys() == {"documents", "label"}

    # documents are rebuilt with other content: the labels no longer belong to them
    docs = lake.read_committed(lay.documents)
    lake.write_committed_table(lay.documents, docs.slice(1))
    with pytest.raises(StageNotReady, match="changed or disappeared"):
        runner.run("aggregate", interval=str(IV), tracking=False)
    runner.run("documents", interval=str(IV), tracking=False)  # a proper rebuild commits documents again
    lake.write_committed_table(lay.documents, docs.slice(1))
    manifest.write(lake, lay, "documents", manifest.read(lake, lay, "documents").inputs, [lay.documents], "x")
    with pytest.raises(StageNotReady, match="older documents"):
        runner.run("aggregate", interval=str(IV), tracking=False)
    with pytest.raises(StageNotReady, match="lexicon_all"):  # the shards were made from the old documents
        _label("commit")
    for item in _label("plan"):  # rerun label: stale shards are redone, not skipped
        assert _label(**item)["status"] == "done"
    _label("commit")
    assert runner.run("aggregate", interval=str(IV), tracking=False)["users"] == docs.num_rows - 1


def test_a_crashed_stage_leaves_no_manifest(world, monkeypatch):
    lake, lay = world, RunLayout(IV)
    assert manifest.read(lake, lay, "documents") is not None
    import conf_profile.data.document_shards as document_shards

    lake.delete(f"{lay.documents_shard(1)}/_manifest.json")  # shard 1 must be rebuilt

    def crash(*a, **k):
        lake.write_table(f"{lay.documents_shard(1)}/part-0.parquet", pa.table({"user_id": ["half"]}))
        raise KeyboardInterrupt  # killed after writing half its output

    monkeypatch.setattr(document_shards, "build_from_tables", crash)
    with pytest.raises(KeyboardInterrupt):
        runner.run("documents", interval=str(IV), tracking=False)
    assert manifest.read(lake, lay, "documents") is None
    with pytest.raises(StageNotReady, match="Stage documents has not committed"):
        _label("plan")


def test_a_teacher_outage_is_not_committed_and_only_configured_teachers_vote(world, monkeypatch, tmp_path):
    lake, lay = world, RunLayout(IV)
    from conf_profile.teachers.backends import lexicon as lexicon_backend

    real = lexicon_backend.LexiconTeacher.label_table

    def outage(self, docs):
        t = real(self, docs)
        return t.set_column(t.schema.get_field_index("error"), "error",
                            pa.array(["connection refused"] * t.num_rows, pa.string()))

    monkeypatch.setattr(lexicon_backend.LexiconTeacher, "label_table", outage)
    with pytest.raises(TeacherOutage, match="not committed") as err:
        _label(teacher="lexicon_watch", shard=0)
    assert runner.outcome(err.value) == "retry" and not lake.is_committed(lay.teacher_shard("lexicon_watch", 0))
    monkeypatch.setattr(lexicon_backend.LexiconTeacher, "label_table", real)
    for item in _label("plan"):
        if item["teacher"] == "lexicon_all":
            _label(**item)
    with pytest.raises(StageNotReady, match="lexicon_watch"):
        _label("commit")
    monkeypatch.setenv("CONF_PROFILE_LABELS__MIN_TEACHERS", "1")
    committed = _label("commit")
    assert committed["teachers"] == ["lexicon_all"] and committed["left_out"] == ["lexicon_watch"]
    out = runner.run("aggregate", interval=str(IV), tracking=False)
    assert out["teachers"] == ["lexicon_all"] and out["left_out_teachers"] == ["lexicon_watch"]
