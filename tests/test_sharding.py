"""Documents and daily inference mapped over user shards: the same rows as the unsharded build, one shard's
loss redone alone, the mapped tasks in both DAGs, and one GPU inference pod per shard in kubernetes mode."""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout, RunLayout
from conf_profile.shards import shard_of
from conf_profile.stages import manifest, runner

IV = Interval.parse("2026-11-09..2026-11-16")
DAY = Interval.parse("2026-11-10..2026-11-11")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small simulated week, validated through the runner (stage manifest written)."""
    tmp = tmp_path_factory.mktemp("sharding")
    saved = {k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]}
    cfg = tmp / "c.yaml"
    cfg.write_text(f"data_dir: {tmp / 'data'}\nsimulate: {{users: 90, weeks: 1, start: 2026-11-09, seed: 5}}\n"
                   "validation: {min_rows: {watch_events: 1, searches: 0, comments: 0, purchases: 0, profiles: 0},"
                   " critical_max_bad_fraction: 0.2}\n"
                   "compute: {retries: 0}\nlabels: {shards: 3, teachers: [{name: lexicon_all}]}\n")
    os.environ["CONF_PROFILE_CONFIG"] = str(cfg)
    from conf_profile.config import Settings
    from conf_profile.simulate import simulate
    from conf_profile.storage import Lake

    settings = Settings.load()
    lake = Lake.from_settings(settings)
    simulate(lake, settings.simulate)
    runner.run("validate", interval=str(IV), tracking=False)
    yield lake
    os.environ.pop("CONF_PROFILE_CONFIG", None)
    os.environ.update(saved)


def _docs(shards: int, **kw):
    out = runner.run("documents", interval=str(IV), tracking=False, params={"shards": shards}, **kw)
    return out, _sorted(runner.make_context(str(IV)).lake.read_committed(RunLayout(IV).documents))


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([(c, "ascending") for c in ("user_id", "attribute") if c in t.column_names])


def _mtimes(lake, rels: list[str]) -> dict[str, int]:
    return {r: os.stat(lake.path(r)).st_mtime_ns for r in rels}


def test_sharded_documents_are_the_unsharded_documents(world):
    one, single = _docs(1)
    three, sharded = _docs(3)
    assert single.num_rows > 50 and sharded.equals(single)  # same users, text, counts: redaction and budget
    for key in ("documents", "pii_redactions", "truncated_users", "events", "users_seen", "sources",
                "declared_gender_dropped", "median_chars", "max_chars"):
        assert three[key] == one[key], key
    assert three["shards"] == 3 and one["shards"] == 1
    lay = RunLayout(IV)
    for i in range(3):  # each shard holds exactly its users (the labels' split), sorted
        part = world.read_committed(lay.documents_shard(i))
        assert 0 < part.num_rows < single.num_rows
        assert set(shard_of(part["user_id"], 3).tolist()) == {i}
        assert part["user_id"].to_pylist() == sorted(part["user_id"].to_pylist())
    from conf_profile.teachers.labelling import shard_of as label_shard_of

    assert label_shard_of is shard_of  # one function: label shard i reads the users of document shard i
    ids = single["user_id"]
    expected = [int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little") % 3
                for u in ids.to_pylist()]
    assert shard_of(ids, 3).tolist() == expected  # stable hash (unchanged from the labels' split)
    assert world.list_files(lay.documents, ".parquet") == [f"{lay.documents}/shard-{i}/part-0.parquet"
                                                           for i in range(3)]  # shards=1 part is gone


def test_a_lost_or_failed_document_shard_is_redone_alone(world, monkeypatch):
    lay = RunLayout(IV)
    _docs(3)
    before = manifest.read(world, lay, "documents").fingerprint
    parts = [f"{lay.documents_shard(i)}/part-0.parquet" for i in range(3)]
    t0 = _mtimes(world, parts)
    world.delete(parts[1])  # a shard's committed part is lost
    _docs(3)
    t1 = _mtimes(world, parts)
    assert t1[parts[0]] == t0[parts[0]] and t1[parts[2]] == t0[parts[2]] and t1[parts[1]] != t0[parts[1]]
    assert manifest.read(world, lay, "documents").fingerprint == before  # same content: the same stage

    import conf_profile.data.document_shards as document_shards

    real = document_shards.build_from_tables
    calls: list[int] = []

    def crash_in_shard_2(tables, interval, settings):
        calls.append(1)
        if any(2 in set(shard_of(t["user_id"], 3).tolist()) for t in tables.values() if t.num_rows):
            raise OSError("worker killed")
        return real(tables, interval, settings)

    monkeypatch.setattr(document_shards, "build_from_tables", crash_in_shard_2)
    world.delete(f"{lay.documents_shard(0)}/_manifest.json")
    world.delete(f"{lay.documents_shard(2)}/_manifest.json")
    items = runner.run("documents", part="plan", interval=str(IV), tracking=False)
    assert items == [{"shard": 0}, {"shard": 1}, {"shard": 2}]
    assert manifest.read(world, lay, "documents") is None  # being rebuilt: downstream refuses it meanwhile
    status = {}
    for item in items:
        try:
            status[item["shard"]] = runner.run("documents", interval=str(IV), tracking=False, **item)["status"]
        except OSError:
            status[item["shard"]] = "failed"
    assert status == {0: "done", 1: "skipped", 2: "failed"} and runner.outcome(OSError()) == "retry"
    with pytest.raises(Exception, match="shard-2 of 3 not committed"):
        runner.run("documents", part="commit", interval=str(IV), tracking=False)
    monkeypatch.setattr(document_shards, "build_from_tables", real)
    redo = [runner.run("documents", interval=str(IV), tracking=False, **i)["status"] for i in items]
    assert redo == ["skipped", "skipped", "done"]  # the retry redoes the failed shard only
    assert runner.run("documents", part="commit", interval=str(IV), tracking=False)["documents"] > 0
    assert manifest.read(world, lay, "documents").fingerprint == before


class FakeChampion:
    """A deterministic inference backend: one valid answer per document, its classes picked by the document's
    hash (the shape of conf_profile.inference's backends: generate(documents, n) -> answers per document)."""

    name = "fake"

    def __init__(self, taxonomy):
        self.taxonomy = taxonomy

    def generate(self, texts, n):
        out = []
        for text in texts:
            h = int(hashlib.md5(text.encode()).hexdigest(), 16)
            ans = {}
            for k, a in enumerate(self.taxonomy.attributes):
                c = a.classes[(h >> k) % len(a.classes)]
                ans[a.name] = {"label": [c] if a.is_multi else c, "confidence": 0.5 + (h >> k) % 5 / 10}
            out.append([json.dumps(ans)] * n)
        return out


def _fake_backend(monkeypatch):
    from conf_profile.inference import profile

    monkeypatch.setattr(profile, "make_backend", lambda settings, ref, taxonomy, cache=None: FakeChampion(taxonomy))


def _profiles(monkeypatch, shards: int) -> tuple[dict, pa.Table, list[dict]]:

    ctx = runner.make_context(str(DAY))
    _fake_backend(monkeypatch)
    kw = {"interval": str(DAY), "tracking": False, "params": {"shards": shards}}
    items = runner.run("infer_profiles", part="plan", **kw)
    outs = [runner.run("infer_profiles", model_version="7", **kw, **item) for item in items]
    done = runner.run("infer_profiles", part="commit", model_version="7", **kw)
    return done, _sorted(ctx.lake.read_committed(LakeLayout.profiles(DAY.start))), outs


def test_sharded_inference_gives_the_unsharded_profiles(world, monkeypatch):
    one, single, _ = _profiles(monkeypatch, 1)
    three, sharded, outs = _profiles(monkeypatch, 3)
    assert [o["shard"] for o in outs] == [0, 1, 2] and all(o["status"] == "done" for o in outs)
    assert single.num_rows > 0 and sharded.equals(single)  # one profiles table per day, same rows
    assert single.column_names == ["user_id", "attribute", "label", "confidence", "model_version"]
    assert three["users"] == one["users"] == three["documents"] and three["valid_rate"] == 1.0
    rel = LakeLayout.profiles(DAY.start)
    m = world.manifest(rel)
    assert m["files"] == [f"shard-{i}/part-0.parquet" for i in range(3)] and m["meta"]["model_version"] == "7"
    docs = world.read_committed(RunLayout(DAY).documents)  # the day's documents are committed as one dataset
    assert docs.num_rows == three["users"]

    # a lost shard is redone alone; a new model version redoes every shard
    parts = [f"{rel}/shard-{i}/part-0.parquet" for i in range(3)]
    t0 = _mtimes(world, parts)
    world.delete(f"{rel}/shard-0")
    again, table, outs = _profiles(monkeypatch, 3)
    assert [o["status"] for o in outs] == ["done", "skipped", "skipped"]
    t1 = _mtimes(world, parts)
    assert t1[parts[1]] == t0[parts[1]] and t1[parts[2]] == t0[parts[2]] and t1[parts[0]] != t0[parts[0]]
    assert table.equals(sharded)


def test_inference_prepare_refuses_a_shard_count_other_than_the_pods(world):
    from conf_profile.errors import ConfigError

    with pytest.raises(ConfigError, match="rendered 2 profile pods"):
        runner.run("infer_profiles", part="plan", interval=str(DAY), tracking=False, pods=2)


# ---- DAGs ---------------------------------------------------------------------------------------------------
def _bag(monkeypatch, tmp_path, **env):
    from tests.test_dags import _bag as bag

    return bag(monkeypatch, tmp_path, **env)


def test_mapped_tasks_expand_over_the_shard_plans(airflow_home, monkeypatch, tmp_path):
    bag = _bag(monkeypatch, tmp_path)
    assert bag.import_errors == {}
    from conf_profile.stages import registry

    refresh, inference = bag.get_dag("conf_profile_refresh"), bag.get_dag("conf_profile_inference")
    for dag, plan, mapped, done in ((refresh, "plan_documents", "documents", "documents_done"),
                                    (inference, "prepare", "profile", "profile_done")):
        t = dag.task_dict
        op = t[mapped]
        assert type(op).__name__.endswith("MappedOperator")
        expand = op.op_kwargs_expand_input  # .expand_kwargs(<plan task>): one mapped task per planned shard
        assert type(expand).__name__ == "ListOfDictsExpandInput" and expand.value.operator.task_id == plan
        assert plan in op.upstream_task_ids and mapped in t[done].upstream_task_ids
    assert registry.BY_NAME["documents"].task_ids() == ("plan_documents", "documents", "documents_done")
    assert "champion" in inference.task_dict["profile"].upstream_task_ids  # the pinned version, via partial
    assert inference.params.dump()["shards"] == 4  # the settings' one shard count (labels.shards)


def test_kubernetes_mode_renders_one_gpu_inference_pod_per_shard(airflow_home, monkeypatch, tmp_path):
    import pendulum

    bag = _bag(monkeypatch, tmp_path, CONF_PROFILE_COMPUTE__MODE="kubernetes", CONF_PROFILE_LABELS__SHARDS="3",
               CONF_PROFILE_LAKE="s3://lake/conf-profile",
               CONF_PROFILE_COMPUTE__TRAINER_IMAGE="registry.example.com/trainer:1.2.3")
    assert bag.import_errors == {}
    dag = bag.get_dag("conf_profile_inference")
    t = dag.task_dict
    pods = sorted(k for k in t if k.startswith("profile_shard_"))
    assert pods == ["profile_shard_0", "profile_shard_1", "profile_shard_2"] and "profile" not in t
    for i, tid in enumerate(pods):
        op = t[tid]
        assert type(op).__name__ == "KubernetesPodOperator" and op.deferrable is True
        assert "prepare" in op.upstream_task_ids and tid in t["profile_done"].upstream_task_ids
        ti = SimpleNamespace(dag_id=dag.dag_id, task_id=tid, map_index=-1, try_number=1,
                             xcom_pull=lambda task_ids=None, **_: {"model_version": "7"})
        ctx = {"data_interval_start": pendulum.datetime(2026, 11, 10, 3, tz="UTC"),
               "data_interval_end": pendulum.datetime(2026, 11, 11, 3, tz="UTC"), "run_id": "scheduled__x",
               "params": {"shards": 3}, "dag": dag, "task": op, "ti": ti}
        op.render_template_fields(ctx)
        pod = op.build_pod_request_obj(ctx, dry_run=True)
        c = pod.spec.containers[0]
        assert c.image == "registry.example.com/trainer:1.2.3"
        assert c.resources.limits["nvidia.com/gpu"] == "1"
        assert c.args[c.args.index("--shard") + 1] == str(i)
        assert c.args[c.args.index("--model-version") + 1] == "7"
        assert c.args[c.args.index("--interval") + 1] == "2026-11-10..2026-11-11"
        assert c.args[c.args.index("--lake") + 1] == "s3://lake/conf-profile"
        assert {e.name: e.value for e in c.env}["CONF_PROFILE_LABELS__SHARDS"] == "3"


def test_infer_shard_command_runs_one_shard(world, monkeypatch):
    from conf_profile.cli import main

    _fake_backend(monkeypatch)
    runner.run("infer_profiles", part="plan", interval=str(DAY), tracking=False)  # the DAG's prepare: validate
    world.delete(LakeLayout.profiles_shard(DAY.start, 1))
    assert main(["infer-shard", "--interval", str(DAY), "--shard", "1", "--model-version", "9", "--json"]) == 0
    part = world.read_committed(LakeLayout.profiles_shard(DAY.start, 1))
    assert set(pc.unique(part["model_version"]).to_pylist()) == {"9"}


def test_a_label_task_reads_only_its_document_shard(world, monkeypatch):
    """Label shard i reads documents/shard-<i>/ alone when documents were split the same way (its work does not
    grow with every user), and the whole dataset (then filtered) when the shard counts differ."""
    from conf_profile.config import Settings
    from conf_profile.teachers import labelling

    _docs(3)
    read: list[str] = []
    original = type(world).read_bytes
    monkeypatch.setattr(type(world), "read_bytes", lambda self, rel: read.append(rel) or original(self, rel))
    settings = Settings.load()
    out = labelling.label_shard(world, IV, settings, "lexicon_all", 1, force=True)
    docs = [r for r in read if "/documents/" in r and r.endswith(".parquet")]
    assert docs and all("/documents/shard-1/" in r for r in docs), docs
    assert out["users"] == world.read_committed(RunLayout(IV).documents_shard(1)).num_rows
    read.clear()
    settings.labels.shards = 2  # documents of 3 shards, labels of 2: read everything, split by shard_of
    out2 = labelling.label_shard(world, IV, settings, "lexicon_all", 1, force=True)
    assert {r.split("/documents/")[1].split("/")[0] for r in read if "/documents/" in r and r.endswith(".parquet")} == {"shard-0", "shard-1",
                                                                                             "shard-2"}
    whole = world.read_committed(RunLayout(IV).documents)
    assert out2["users"] == int((shard_of(whole["user_id"], 2) == 1).sum())


def test_the_plan_splits_the_clean_tables_once_and_a_shard_reads_only_its_part(world, monkeypatch):
    """Without the split every shard scans the week's rows (O(rows) per shard); with it a shard reads its part
    only, gives the same documents, and the commit removes the split copy."""
    from conf_profile.data import document_shards as D
    from conf_profile.data import documents

    _, expected_docs = _docs(3)
    ctx = runner.make_context(str(IV), run_params={"shards": 3}, tracking=False)
    runner.execute(runner.get("documents"), ctx, "plan")
    lay = RunLayout(IV)
    assert world.exists(lay.path("documents_scatter"))
    parts = D.scattered_parts(world, IV, ctx.settings, 1)
    assert set(parts) == set(D.source_schemas(ctx.settings))
    scanned: list = []
    monkeypatch.setattr(documents, "_read_users", lambda *a, **k: scanned.append(a) or pa.table({}))
    D.build_shard(world, IV, ctx.settings, 1, force=True)
    assert scanned == []  # no table scanned with a user filter: the shard read its split part
    monkeypatch.undo()
    for i in (0, 2):
        D.build_shard(world, IV, ctx.settings, i, force=True)
    runner.execute(runner.get("documents"), ctx, "commit")
    assert not world.exists(lay.path("documents_scatter"))
    assert _sorted(world.read_committed(lay.documents)).equals(expected_docs)
