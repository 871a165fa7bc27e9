"""Gold is optional: the split's share and salt are settings, a week without gold gets a report card scored on
the quasi-labels (through the stage runner), and the gate's label-free rules ("hold", "quasi_labels")."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conf_profile.config import EvaluationSettings, PromotionSettings, Settings
from conf_profile.evaluate import format_report
from conf_profile.evaluate.metrics import label_free
from conf_profile.gold import quasi_labels
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.registry.promotion import Candidate, ChampionView, decide
from conf_profile.splits import Split, eval_mask
from conf_profile.stages import runner
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing import commit_stages
from conf_profile.testing.teacher_answers import teacher_table

TAX = load_taxonomy()
IV = Interval.parse("2026-02-02..2026-02-09")
W0 = Interval.parse("2026-01-26..2026-02-02")
TEACHERS = ["lexicon_profile", "lexicon_watch", "lexicon_all"]  # names from the default settings
N = 240
USERS = [f"user{i:05d}" for i in range(N)]


# ---- the split -----------------------------------------------------------------------------------------------
def test_split_honours_share_and_salt():
    ids = [f"u{i}" for i in range(20_000)]
    default = eval_mask(ids)
    assert np.array_equal(default, Split().mask(ids))  # empty salt, share 0.2: the historical split
    assert np.array_equal(Split(0.2, "wk").mask(ids), Split(0.2, "wk").mask(ids))  # deterministic
    salted = Split(0.2, "wk").mask(ids)
    assert (salted != default).mean() > 0.2  # another salt draws other users ...
    assert abs(salted.mean() - 0.2) < 0.015  # ... in the same share
    wide = Split(0.3).mask(ids)
    assert abs(wide.mean() - 0.3) < 0.015
    assert not (default & ~wide).any()  # same salt: a larger share only adds users
    assert Split(0.3, "wk").is_eval(ids[0]) == bool(Split(0.3, "wk").mask(ids[:1])[0])


def test_split_comes_from_settings(monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_EVALUATION__SHARE", "0.3")
    monkeypatch.setenv("CONF_PROFILE_EVALUATION__SALT", "week-7")
    s = Settings.load()
    assert Split.of(s) == Split(0.3, "week-7") == Split.of(s.evaluation)
    assert Split.of(EvaluationSettings()) == Split(0.2, "")  # the defaults: the historical split
    monkeypatch.setenv("CONF_PROFILE_EVALUATION__SHARE", "1.5")
    with pytest.raises(Exception, match="share"):
        Settings.load()


def test_label_free_metrics():
    pred = pa.table({"user_id": ["a", "a", "b", "b", "x"], "attribute": ["gender", "interests"] * 2 + ["gender"],
                     "label": [["male"], ["music"], ["unknown"], [], ["male"]],
                     "confidence": [0.95, 0.35, 0.2, 0.0, 0.9]})
    lf = label_free(pred, TAX, ["a", "b", "c"])  # x is not scored, c has no rows: abstentions
    assert lf["per_attribute"]["gender"] == pytest.approx(1 / 3, abs=1e-4)
    assert lf["per_attribute"]["interests"] == pytest.approx(1 / 3, abs=1e-4)
    assert len(lf["confidence_histogram"]) == 10 and sum(lf["confidence_histogram"]) == 2
    assert lf["confidence_histogram"][9] == 1 and lf["confidence_histogram"][3] == 1


# ---- a week without gold, through the stage runner ----------------------------------------------------------
def _answers(seed: int = 1) -> pa.Table:
    """Three teachers, right 80/70/60 % of the time, over a hidden truth (which no one is told)."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in TAX.attributes:
        truth = {u: (sorted(rng.choice(a.classes, 2, replace=False).tolist()) if a.is_multi else
                     a.classes[rng.integers(len(a.classes))]) for u in USERS}
        for k, t in enumerate(TEACHERS):
            for u in USERS:
                if rng.random() < 0.15:
                    rows.append((u, t, a.name, [] if a.is_multi else "unknown", 0.1))
                    continue
                right = rng.random() < (0.8, 0.7, 0.6)[k]
                wrong = a.classes[rng.integers(len(a.classes))]
                lab = truth[u] if right else ([wrong] if a.is_multi else wrong)
                rows.append((u, t, a.name, lab, 0.9 if right else 0.5))
    return teacher_table(rows)


class _Student:
    """Stands in for model loading and generation: answers every user with the first class at 0.75."""

    answer = json.dumps({a.name: {"label": [a.classes[0]] if a.is_multi else a.classes[0], "confidence": 0.75}
                         for a in TAX.attributes})

    @classmethod
    def install(cls, monkeypatch):
        from conf_profile.train import student
        from conf_profile.train import student_eval as ev

        monkeypatch.setattr(ev, "_resolve", lambda *a, **k: "fake")
        monkeypatch.setattr(student, "load", lambda path: (None, None))
        monkeypatch.setattr(ev, "answer_budget", lambda tok, taxonomy: 0)
        monkeypatch.setattr(ev, "generate", lambda mdl, tok, docs, *a, **k: [[cls.answer] for _ in docs])


@pytest.fixture()
def lake_without_gold(tmp_path, monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_LABELS__SHARDS", "1")
    monkeypatch.setenv("CONF_PROFILE_DATA_DIR", str(tmp_path))
    lake = Lake.open(str(tmp_path / "lake"))
    lake.write_committed_table(Lake.run_dir(IV, "documents"), pa.table({
        "user_id": USERS, "document": [f"## profile\nnickname: ⟦{u}⟧" for u in USERS],
        "n_events": [3] * N, "n_chars": [30] * N}))
    answers = _answers()
    tid = pc.cast(answers["teacher_id"], pa.string())
    for t in TEACHERS:
        lake.write_committed_table(Lake.run_dir(IV, "teachers", t, "shard-0"), answers.filter(pc.equal(tid, t)))
    commit_stages(lake, IV, "documents", "label")
    return lake


def test_week_without_gold_reports_on_quasi_labels(lake_without_gold, monkeypatch):
    lake = lake_without_gold
    monkeypatch.setenv("CONF_PROFILE_EVALUATION__SALT", "no-gold-week")
    monkeypatch.setenv("CONF_PROFILE_EVALUATION__SHARE", "0.3")
    split = Split(0.3, "no-gold-week")
    agg = runner.run("aggregate", interval=str(IV), lake=lake.uri, tracking=False)
    assert agg["eval_users"] == int(split.mask(USERS).sum())
    distill = lake.read_committed(RunLayout(IV).distill)
    assert not split.mask(distill["user_id"]).any()  # the configured split, not the default one

    commit_stages(lake, IV, "train_sft")  # what a training stage would have committed
    _Student.install(monkeypatch)
    out = runner.run("evaluate", interval=str(IV), lake=lake.uri, tracking=False)
    assert out["reference"] == "quasi-labels" and out["evaluated"] == ["student:sft"]

    card = lake.read_json(RunLayout(IV).report)
    assert card["reference"] == "quasi-labels"
    ref = quasi_labels(lake, IV)
    scored = {u for u in pc.unique(ref["user_id"]).to_pylist() if split.is_eval(u)}
    assert card["eval_users"] == len(scored) > 0  # held-out users with a decided calibrated vote
    by = {r["name"]: r for r in card["rows"]}
    assert sorted(list(by)[:3]) == sorted(f"teacher:{t}" for t in TEACHERS)
    assert list(by)[3:] == ["vote:majority", "vote:weighted", "vote:calibrated", "student:sft"]
    assert by["vote:calibrated"].get("is_reference") is True and by["vote:calibrated"]["f1"] == pytest.approx(100)
    assert not any(r.get("is_reference") for n, r in by.items() if n != "vote:calibrated")
    assert by["teacher:lexicon_profile"]["f1"] > by["teacher:lexicon_all"]["f1"]  # the better teacher agrees more
    sft = by["student:sft"]
    assert sft["reference"] == "quasi-labels" and 0 <= sft["f1"] < 100
    lf = sft["label_free"]
    assert lf["coverage"] == pytest.approx(1.0) and lf["confidence_histogram"][7] == lf["users"] * len(TAX.names)
    text = format_report(card)
    assert "reference: quasi-labels" in text and "vote:calibrated (*)" in text


def test_register_hashes_no_gold_as_none(lake_without_gold):
    from conf_profile.stages.register import lineage_hashes

    ctx = SimpleNamespace(lake=lake_without_gold, layout=RunLayout(IV), interval=IV)
    assert lineage_hashes(ctx)["gold"] == "none"
    lake_without_gold.write_committed_table("gold/labels", pa.table({
        "user_id": ["a"], "attribute": ["gender"], "label": [["male"]]}))
    assert lineage_hashes(ctx)["gold"] != "none"


# ---- the gate without gold -----------------------------------------------------------------------------------
def row(f1: float, ece: float | None = 0.05) -> dict:
    return {"f1": f1, "ece": ece, "coverage": 0.9,
            "per_attribute": {a: {"f1": f1, "coverage": 0.9, "ece": 0.05} for a in ("gender", "age_group")}}


HOLD = PromotionSettings()
QUASI = PromotionSettings(without_gold="quasi_labels")


def test_hold_keeps_the_champion_and_says_why():
    assert HOLD.without_gold == "hold"
    champ = ChampionView("1", W0, row(40.0), f"re-evaluated on {IV}")
    d = decide(Candidate("2", IV, row(60.0), "none", "quasi-labels"), champ, HOLD)
    assert not d.promote and d.label == "challenger" and d.checks["gold"] is False
    assert f"no gold set for {IV}: the label-free rule 'hold' keeps the champion" in d.reasons
    first = decide(Candidate("1", IV, row(60.0), "none", "quasi-labels"), None, HOLD)
    assert not first.promote and "no champion yet" in " ".join(first.reasons)
    assert "this first model stays challenger" in " ".join(first.reasons)
    forced = decide(Candidate("2", IV, row(60.0), "none", "quasi-labels"), champ, HOLD, force=True)
    assert forced.promote and forced.forced and "'hold'" in forced.reasons[-1]
    # with gold, "hold" changes nothing
    assert decide(Candidate("2", IV, row(60.0), "abc"), champ, HOLD).promote


def test_quasi_labels_applies_the_metric_rules():
    champ = ChampionView("1", W0, row(40.0), f"re-evaluated on {IV}")
    better = decide(Candidate("2", IV, row(41.0), "none", "quasi-labels"), champ, QUASI)
    assert better.promote and "gold" not in better.checks
    assert any("'quasi_labels'" in r for r in better.reasons)
    inside_margin = decide(Candidate("2", IV, row(40.2), "none", "quasi-labels"), champ, QUASI)
    assert not inside_margin.promote and inside_margin.checks["f1"] is False
    assert not decide(Candidate("2", IV, row(50.0, ece=0.3), "none", "quasi-labels"), champ, QUASI).promote
    assert decide(Candidate("1", IV, row(50.0), "none", "quasi-labels"), None, QUASI).promote  # first model


def test_quasi_labels_never_compares_registered_metrics_without_gold():
    from conf_profile.registry.promotion import champion_view

    mv = SimpleNamespace(version="1", tags={"data_interval": str(IV), "gold_hash": "none", "metric.f1": "40"})
    cand = Candidate("2", IV, row(41.0), "none", "quasi-labels")
    assert champion_view(mv, cand, {}).row is None  # quasi-labels of another aggregate may differ
    assert champion_view(mv, cand, {"1": row(40.0)}).row == row(40.0)  # re-evaluated in the same card
