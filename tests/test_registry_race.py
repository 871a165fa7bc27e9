"""D13, the promotion race, through the promote stage on a file-based MLflow store in tmp_path: the champion
changes between a run's `evaluate` (whose report card scored the champion of that moment) and its `promote`
(an operator promoted another version in between). The gate must compare against the champion as it is when
the gate runs, scored on the same gold set, never fail with "no metrics on this gold set" or compare against
the champion that evaluate saw.

Scoring a model needs a trained student; `evaluate_model` is replaced by a stand-in that writes the row a
real evaluation of that version on this interval's gold set would (a number per version), so what is under
test is the wiring: who is scored, when, and what the gate compares."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conf_profile.intervals import Interval
from conf_profile.registry import models, promotion
from conf_profile.stages import promote
from conf_profile.stages.context import make_context

W2 = Interval.parse("2026-11-09..2026-11-16")
W3 = Interval.parse("2026-11-16..2026-11-23")


def _row(name: str, f1: float, ece: float = 0.05) -> dict:
    per = {a: {"f1": f1, "coverage": 0.9, "ece": ece} for a in ("gender", "age_group")}
    return {"name": name, "f1": f1, "ece": ece, "coverage": 0.9, "per_attribute": per, "reference": "gold"}


def _register(tr, tmp_path, name: str, interval: Interval, f1: float, data: str) -> str:
    src = tmp_path / f"model-{interval.key}-{data}"
    src.mkdir(exist_ok=True)
    key = {"data_interval": str(interval), "code_version": "test", "dataset_hash": data, "config_hash": "c",
           "model_hash": data}
    tags = {"gold_hash": f"gold-{interval.key}", "metric.f1": str(f1), "metric.ece": "0.05",
            "metric.coverage": "0.9", "student_stage": "rl"}
    log_model = lambda: SimpleNamespace(model_uri=src.as_uri(), model_id=None)  # noqa: E731
    return models.register_student(tr.client, name, key, tags, log_model)["model_version"]


@pytest.fixture()
def race(mlflow_tracking, tmp_settings, tmp_path, monkeypatch):
    """v1 (W2) champion when W3's evaluate ran and scored it; v3 = W3's candidate; v2 (W2, another dataset)
    becomes champion by a manual promotion between W3's evaluate and promote. On W3's gold set: v1 30, v2
    `scores['2']`, v3 50."""
    tr, s = mlflow_tracking, tmp_settings
    name = s.mlflow.model_name
    s.mlflow.promotion.f1_margin, s.mlflow.promotion.ece_limit = 0.5, 0.10
    v1 = _register(tr, tmp_path, name, W2, 40.0, "d1")
    v2 = _register(tr, tmp_path, name, W2, 45.0, "d2")
    v3 = _register(tr, tmp_path, name, W3, 50.0, "d3")
    promotion.promote(tr.client, name, promotion.Candidate(v1, W2, _row("x", 40.0), f"gold-{W2.key}"),
                      s.mlflow.promotion, actor="test")
    assert str(promotion.current_champion(tr, name).version) == v1

    ctx = make_context(W3, settings=s, run_id="scheduled__w3")
    ctx._tr = tr
    card = {"reference": "gold", "rows": [_row("student:rl", 50.0), _row(f"champion:v{v1}", 30.0)]}
    ctx.lake.write_json(ctx.layout.report, card)  # what evaluate wrote, with v1 as champion

    scores = {v1: 30.0, v2: 55.0, v3: 50.0}
    scored: list[str] = []

    def fake_evaluate_model(lake, interval, settings, model, row_name, **_):
        version = model.rsplit("/", 1)[-1]
        scored.append(version)
        assert interval == W3 and row_name == f"champion:v{version}", (interval, row_name)
        row = _row(row_name, scores[version])
        lake.write_json(ctx.layout.eval_row(row_name), row)
        return {"interval": str(interval), "rows": [row]}

    monkeypatch.setattr("conf_profile.train.student_eval.evaluate_model", fake_evaluate_model)
    return SimpleNamespace(tr=tr, ctx=ctx, name=name, v1=v1, v2=v2, v3=v3, scores=scores, scored=scored, s=s)


def _manual_promote(r, version: str) -> None:
    promotion.promote_manual(r.tr.client, r.name, version, r.s.mlflow.promotion, "operator", actor="alice")
    assert str(promotion.current_champion(r.tr, r.name).version) == version


def test_gate_compares_against_the_champion_promoted_since_evaluate(race):
    r = race
    _manual_promote(r, r.v2)  # between W3's evaluate and its promote
    out = promote.run(r.ctx, model_version=r.v3)
    assert r.scored == [r.v2]  # the new champion was scored on W3's gold set, the old one was not rescored
    # v3 (50) is compared with v2 as it scores now (55), not with v1 (30) from the report card: not promoted
    assert not out["promoted"] and out["champion"] == r.v2 and out["champion_before"] == r.v2, out
    text = " ".join(out["reasons"])
    assert "55.00" in text and "no metrics" not in text, out["reasons"]


def test_gate_promotes_over_a_weaker_champion_promoted_since_evaluate(race):
    r = race
    r.scores[r.v2] = 20.0
    _manual_promote(r, r.v2)
    out = promote.run(r.ctx, model_version=r.v3)
    assert r.scored == [r.v2]
    assert out["promoted"] and out["champion"] == r.v3 and out["champion_before"] == r.v2, out
    assert r.tr.client.get_model_version(r.name, r.v3).tags["previous_champion"] == r.v2


def test_unchanged_champion_is_not_rescored(race):
    r = race
    out = promote.run(r.ctx, model_version=r.v3)
    assert r.scored == []  # the report card's row of v1 is used as it is
    assert out["promoted"] and out["champion_before"] == r.v1, out


def test_champion_that_cannot_be_scored_holds_and_says_why(race, monkeypatch):
    r = race
    _manual_promote(r, r.v2)

    def broken(*a, **k):
        raise OSError("model artefacts unreadable")

    monkeypatch.setattr("conf_profile.train.student_eval.evaluate_model", broken)
    out = promote.run(r.ctx, model_version=r.v3)
    assert not out["promoted"] and out["champion"] == r.v2, out  # never compared with the stale v1 row
