"""aggregate_interval and report_interval on a small lake: outputs, formats, eval users, errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.cli import main
from conf_profile.config import Settings
from conf_profile.errors import LakeError
from conf_profile.evaluate import format_report, report_interval
from conf_profile.intervals import Interval
from conf_profile.labels import aggregate_interval
from conf_profile.splits import eval_mask
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing import commit_stages
from conf_profile.testing.teacher_answers import gold_table, teacher_table

TAX = load_taxonomy()
IV = Interval.parse("2026-01-05..2026-01-12")
TEACHERS = ["lexicon_profile", "lexicon_watch", "lexicon_all"]  # names from the default settings
N = 300


def _world(seed: int = 0):
    """Truth for N users and three teachers that are right 80/70/60 % of the time when they answer."""
    rng = np.random.default_rng(seed)
    users = [f"user{i:04d}" for i in range(N)]
    truth, rows = {}, []
    for a in TAX.attributes:
        for u in users:
            if a.is_multi:
                truth[(u, a.name)] = sorted(rng.choice(a.classes, size=rng.integers(1, 3), replace=False).tolist())
            else:
                p = 1.0 / np.arange(1, len(a.classes) + 1)
                truth[(u, a.name)] = a.classes[rng.choice(len(a.classes), p=p / p.sum())]
    for k, t in enumerate(TEACHERS):
        acc = [0.8, 0.7, 0.6][k]
        for (u, attr), y in truth.items():
            a = TAX.attribute(attr)
            if rng.random() < 0.2:
                rows.append((u, t, attr, "unknown" if not a.is_multi else ["unknown"], 0.1))
                continue
            right = rng.random() < acc
            if a.is_multi:
                lab = y if right else [a.classes[rng.integers(len(a.classes))]]
            else:
                lab = y if right else a.classes[rng.integers(len(a.classes))]
            level = rng.integers(3, 6) if right else rng.integers(1, 4)
            rows.append((u, t, attr, lab, (level - 0.5) / 5, None, 0, f"{t} saw \"{lab}\"\nline2"))
    rows.append((users[0], TEACHERS[1], "gender", "male", 0.9, "timeout after 60 s"))
    rows.append((users[1], TEACHERS[1], "gender", "male", 0.9, "invalid JSON"))
    gold = gold_table([(u, attr, y) for (u, attr), y in truth.items()])
    return users, teacher_table(rows), gold


@pytest.fixture()
def lake_world(tmp_path, monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_LABELS__SHARDS", "1")
    lake = Lake.open(str(tmp_path / "lake"))
    users, answers, gold = _world()
    lake.write_committed_table(Lake.run_dir(IV, "documents"), pa.table({
        "user_id": users, "document": [f"## profile\nnickname: ⟦{u}⟧" for u in users],
        "n_events": [3] * N, "n_chars": [30] * N}))
    tid = pc.cast(answers["teacher_id"], pa.string())
    for t in TEACHERS:
        lake.write_committed_table(Lake.run_dir(IV, "teachers", t, "shard-0"), answers.filter(pc.equal(tid, t)))
    lake.write_committed_table("gold/labels", gold)
    commit_stages(lake, IV, "documents", "label")  # what the runner's stages would have committed
    settings = Settings.load(lake=lake.uri)
    settings.labels.teachers = [t for t in settings.labels.teachers if t.name in TEACHERS]  # the ones that labelled
    return lake, settings, users


def test_aggregate_outputs(lake_world):
    lake, settings, users = lake_world
    s = aggregate_interval(lake, IV, settings)
    is_eval = eval_mask(users)
    assert s["users"] == N and s["eval_users"] == int(is_eval.sum())
    assert s["excluded_error_rows"] == {"lexicon_watch": 2}
    assert s["calibration"] == "leave-one-teacher-out"
    assert s["missing_teachers"] == [] and sorted(s["teachers"]) == sorted(TEACHERS)
    configured = settings.model_copy(deep=True)  # a teacher removed from the configuration never votes
    configured.labels.teachers = [t for t in configured.labels.teachers if t.name != "lexicon_profile"]
    assert sorted(aggregate_interval(lake, IV, configured)["teachers"]) == ["lexicon_all", "lexicon_watch"]
    s = aggregate_interval(lake, IV, settings)

    votes = lake.read_committed(Lake.run_dir(IV, "labels", "votes"))
    assert votes.num_rows == 3 * N * len(TAX.attributes)
    assert sorted(pc.unique(votes["method"]).to_pylist()) == ["calibrated", "majority", "weighted"]
    single = votes.filter(pc.not_equal(votes["attribute"], "interests"))
    assert pc.all(pc.equal(pc.list_value_length(single["label"]), 1)).as_py()

    distill = lake.read_committed(Lake.run_dir(IV, "labels", "distill"))
    train_users = {u for u, e in zip(users, is_eval, strict=True) if not e}
    assert set(distill["user_id"].to_pylist()) <= train_users  # never an evaluation user
    assert distill.num_rows == s["distill_records"] == len(train_users) - s["capped_out"]
    target = json.loads(distill["target"][0].as_py())
    assert list(target) == TAX.names  # taxonomy order
    for attr, v in target.items():
        assert set(v) == {"label", "confidence"}
        assert round(v["confidence"], 1) == v["confidence"] and 0 <= v["confidence"] <= 1
        assert isinstance(v["label"], list) == TAX.attribute(attr).is_multi
    assert distill["document"][0].as_py().startswith("## profile")

    rl = lake.read_committed(Lake.run_dir(IV, "labels", "rl_prompts"))
    assert set(rl["user_id"].to_pylist()) == train_users
    row = rl.to_pylist()[0]
    answers = json.loads(row["teacher_answers"])
    assert list(answers) == TAX.names
    assert all(len(x) == 3 for x in answers["gender"])  # [label, confidence, weight]
    stage1 = json.loads(row["stage1"])
    assert row["stage1_confidence"] == pytest.approx(
        np.mean([c for c in _calibrated_conf(votes, row["user_id"])]), abs=1e-9)
    assert list(stage1) == TAX.names

    cal = lake.read_json(Lake.run_dir(IV, "labels", "calibration.json"))
    assert cal["source"] == "leave-one-teacher-out"
    g = cal["attributes"]["gender"]
    assert g["isotonic"]["x"] == sorted(g["isotonic"]["x"]) and len(g["priors"]) == 2
    assert sum(g["priors"]) == pytest.approx(1.0, abs=1e-4)
    assert "priors" not in cal["attributes"]["interests"]


def _calibrated_conf(votes: pa.Table, user: str) -> list[float]:
    v = votes.filter(pc.and_(pc.equal(votes["user_id"], user), pc.equal(votes["method"], "calibrated")))
    return v["confidence"].to_pylist()


def test_rationale_and_gold_dev(lake_world):
    lake, settings, _ = lake_world
    settings.labels.include_rationale = True
    settings.labels.gold_dev_users = 50
    s = aggregate_interval(lake, IV, settings)
    assert s["calibration"] == "gold-dev" and s["gold_dev_users"] == 50
    target = json.loads(lake.read_committed(Lake.run_dir(IV, "labels", "distill"))["target"][0].as_py())
    assert all(set(v) == {"label", "confidence", "rationale"} for v in target.values())
    assert any("\n" in v["rationale"] and '"' in v["rationale"] for v in target.values())  # escaped, parsed back
    assert lake.read_json(Lake.run_dir(IV, "labels", "calibration.json"))["source"] == "gold-dev"


def test_report_card(lake_world):
    lake, settings, _ = lake_world
    aggregate_interval(lake, IV, settings)
    student = {"name": "student:sft", "f1": 41.5, "coverage": 0.9, "ece": 0.08, "valid_rate": 0.97,
               "per_attribute": {}}
    lake.write_json(Lake.run_dir(IV, "eval", "student-sft.json"), student)
    rep = report_interval(lake, IV, settings)
    assert set(rep) == {"interval", "reference", "eval_users", "rows", "calibration"}
    assert rep["interval"] == str(IV) and rep["eval_users"] > 0 and rep["reference"] == "gold"
    names = [r["name"] for r in rep["rows"]]
    assert names == [f"teacher:{t}" for t in TEACHERS] + ["vote:majority", "vote:weighted", "vote:calibrated",
                                                          "student:sft"]
    for r in rep["rows"][:-1]:
        assert set(r) == {"name", "f1", "coverage", "ece", "per_attribute"}
        assert 0 <= r["f1"] <= 100 and 0 <= r["coverage"] <= 1 and 0 <= r["ece"] <= 1
        assert set(r["per_attribute"]) == set(TAX.names)
        assert set(r["per_attribute"]["gender"]) == {"f1", "coverage", "ece"}
    by = {r["name"]: r for r in rep["rows"]}
    # three independent teachers: the vote beats the best of them
    assert by["vote:weighted"]["f1"] > max(by[f"teacher:{t}"]["f1"] for t in TEACHERS)
    assert lake.read_json(Lake.run_dir(IV, "report.json")) == rep
    plots = lake.list_files(Lake.run_dir(IV, "plots"), suffix=".png")
    assert len(plots) == len(TEACHERS) + 3 + 1
    text = format_report(rep)
    assert "vote:calibrated" in text and "97.0" in text


def test_clear_errors(lake_world):
    lake, settings, _ = lake_world
    aggregate_interval(lake, IV, settings)
    lake.delete("gold")  # gold is optional: the report is then scored on the quasi-labels
    assert report_interval(lake, IV, settings)["reference"] == "quasi-labels"
    lake.delete(Lake.run_dir(IV, "labels", "votes", "_manifest.json"))
    with pytest.raises(LakeError, match="votes"):
        report_interval(lake, IV, settings)
    lake.delete(Lake.run_dir(IV, "teachers", "lexicon_all", "shard-0", "_manifest.json"))
    with pytest.raises(LakeError, match="lexicon_all/shard-0"):
        aggregate_interval(lake, IV, settings)


def test_cli_aggregate_and_report_json(lake_world, capsys):
    lake, _, _ = lake_world
    assert main(["aggregate", "--lake", lake.uri, "--interval", str(IV), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["users"] == N
    assert main(["report", "--lake", lake.uri, "--interval", str(IV), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out.pop("ok") is True
    assert set(out) == {"interval", "reference", "eval_users", "rows", "calibration"}
    assert main(["aggregate", "--lake", lake.uri, "--interval", str(IV)]) == 0
    assert "distillation set" in capsys.readouterr().out
