"""Registry and promotion gate against a real MLflow sqlite store in tmp_path (no Airflow, no training)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from conf_profile.config import PromotionSettings
from conf_profile.intervals import Interval
from conf_profile.registry import models, promotion
from conf_profile.registry.promotion import Candidate, ChampionView, decide

W1 = Interval.parse("2026-11-02..2026-11-09")
W2 = Interval.parse("2026-11-09..2026-11-16")
W3 = Interval.parse("2026-11-16..2026-11-23")
RULES = PromotionSettings(f1_margin=0.5, ece_limit=0.10, attribute_drop_tolerance=3.0)
NAME = "student-test"


def row(f1: float, ece: float | None = 0.05, **attrs: float) -> dict:
    per = {a: {"f1": v, "coverage": 0.9, "ece": 0.05} for a, v in (attrs or {"gender": f1, "age_group": f1}).items()}
    return {"f1": f1, "ece": ece, "coverage": 0.9, "per_attribute": per}


# ---- the gate as a pure function -----------------------------------------------------------------------------
def test_first_model_becomes_champion_when_calibrated():
    d = decide(Candidate("1", W2, row(40.0)), None, RULES)
    assert d.promote and d.checks == {"interval": True, "ece": True}
    assert any("no champion yet" in r for r in d.reasons)


def test_first_model_with_bad_ece_stays_challenger():
    d = decide(Candidate("1", W2, row(40.0, ece=0.3)), None, RULES)
    assert not d.promote and not d.checks["ece"]
    d = decide(Candidate("1", W2, row(40.0, ece=None)), None, RULES)
    assert not d.promote and "undefined" in " ".join(d.reasons)


def test_better_challenger_is_promoted_and_margin_is_respected():
    champ = ChampionView("1", W2, row(40.0), "re-evaluated")
    assert decide(Candidate("2", W3, row(40.6)), champ, RULES).promote
    d = decide(Candidate("2", W3, row(40.4)), champ, RULES)  # better, but inside the margin
    assert not d.promote and not d.checks["f1"]


def test_worse_challenger_is_not_promoted():
    d = decide(Candidate("2", W3, row(35.0)), ChampionView("1", W2, row(40.0), "re-evaluated"), RULES)
    assert not d.promote and d.checks["f1"] is False and d.label == "challenger"


def test_attribute_drop_blocks_promotion_even_when_headline_improves():
    champ = ChampionView("1", W2, row(40.0, gender=50.0, age_group=30.0), "re-evaluated")
    d = decide(Candidate("2", W3, row(45.0, gender=45.0, age_group=45.0)), champ, RULES)
    assert not d.promote and not d.checks["attributes"]
    assert "gender -5.00" in " ".join(d.reasons)


def test_backfill_never_demotes_a_newer_champion_even_forced():
    champ = ChampionView("1", W3, row(30.0), "re-evaluated")
    d = decide(Candidate("2", W1, row(60.0)), champ, RULES)
    assert not d.promote and not d.checks["interval"]
    d = decide(Candidate("2", W1, row(60.0)), champ, RULES, force=True)
    assert not d.promote and "does not override the interval rule" in " ".join(d.reasons)


def test_force_overrides_metric_checks_only():
    champ = ChampionView("1", W2, row(40.0), "re-evaluated")
    d = decide(Candidate("2", W3, row(10.0, ece=0.5)), champ, RULES, force=True)
    assert d.promote and d.forced and "overridden" in " ".join(d.reasons)


def test_champion_without_metrics_on_the_same_gold_set_is_not_compared():
    d = decide(Candidate("2", W3, row(90.0)), ChampionView("1", W2, None), RULES)
    assert not d.promote and not d.checks["f1"]


def test_same_interval_rerun_is_not_older():
    d = decide(Candidate("2", W2, row(41.0)), ChampionView("1", W2, row(40.0), "same"), RULES)
    assert d.checks["interval"] and d.promote


# ---- MLflow: idempotent registration ---------------------------------------------------------------------------
def _key(interval: Interval, data: str = "d1", model: str = "m1") -> dict[str, str]:
    return {"data_interval": str(interval), "code_version": "0.1.0+test", "dataset_hash": data, "config_hash": "c1",
            "model_hash": model}


def _register(tr, tmp_path, interval: Interval, metrics: dict, data: str = "d1", calls: list | None = None) -> str:
    """Register a version the way the pipeline does, with a cheap stand-in for the logged model."""
    src = tmp_path / f"model-{interval.key}-{data}"
    src.mkdir(exist_ok=True)

    def log_model():
        if calls is not None:
            calls.append(1)
        return SimpleNamespace(model_uri=src.as_uri(), model_id=None)

    tags = {"dag_run_id": f"manual__{interval.key}", "gold_hash": "g1", **{
        f"metric.{k}": str(v) for k, v in metrics.items() if k != "per_attribute"}}
    for attr, m in metrics["per_attribute"].items():
        tags[f"metric.f1.{attr}"] = str(m["f1"])
    return models.register_student(tr.client, NAME, _key(interval, data), tags, log_model)["model_version"]


def test_rerun_reuses_the_version(mlflow_tracking, tmp_path):
    calls: list = []
    v1 = _register(mlflow_tracking, tmp_path, W2, row(40.0), calls=calls)
    v1b = _register(mlflow_tracking, tmp_path, W2, row(41.0), calls=calls)
    assert v1 == v1b == "1" and len(calls) == 1  # the model was not even logged again
    v2 = _register(mlflow_tracking, tmp_path, W2, row(41.0), data="d2", calls=calls)
    assert v2 == "2" and len(calls) == 2
    versions = mlflow_tracking.client.search_model_versions(f"name = '{NAME}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    mv = mlflow_tracking.client.get_model_version(NAME, "1")
    assert mv.tags["data_interval"] == str(W2) and mv.tags["code_version"] == "0.1.0+test"


# ---- MLflow: aliases, gate, rollback -------------------------------------------------------------------------
def _promote(tr, version: str, interval: Interval, r: dict, force: bool = False, reeval: dict | None = None):
    return promotion.promote(tr.client, NAME, Candidate(version, interval, r, "g1"), RULES, force=force,
                             reevaluated=reeval or {}, actor="test")


def _alias(tr, alias: str) -> str | None:
    mv = promotion.get_alias(tr.client, NAME, alias)
    return None if mv is None else str(mv.version)


def test_gate_history_backfill_and_rollback(mlflow_tracking, tmp_path):
    tr = mlflow_tracking
    v1 = _register(tr, tmp_path, W2, row(40.0))
    r = _promote(tr, v1, W2, row(40.0))
    assert r["promoted"] and _alias(tr, "champion") == v1 and _alias(tr, "challenger") == v1
    tags = tr.client.get_model_version(NAME, v1).tags
    assert tags["promotion_decision"] == "champion" and "no champion yet" in tags["promotion_reasons"]

    # A worse challenger on a newer week: challenger moves, champion stays, the reasons are on the version.
    v2 = _register(tr, tmp_path, W3, row(30.0))
    r = _promote(tr, v2, W3, row(30.0), reeval={v1: row(40.0)})
    assert not r["promoted"] and _alias(tr, "champion") == v1 and _alias(tr, "challenger") == v2
    tags = tr.client.get_model_version(NAME, v2).tags
    assert tags["promotion_decision"] == "challenger" and "F1 30.00 < champion 40.00" in tags["promotion_reasons"]

    # Without a re-evaluation of the champion on W3's gold users there is no comparison: not promoted.
    v3 = _register(tr, tmp_path, W3, row(50.0), data="d3")
    assert not _promote(tr, v3, W3, row(50.0))["promoted"]
    # With it, the better model is promoted, and the previous champion is recorded.
    r = _promote(tr, v3, W3, row(50.0), reeval={v1: row(40.0)})
    assert r["promoted"] and _alias(tr, "champion") == v3
    assert tr.client.get_model_version(NAME, v3).tags["previous_champion"] == v1

    # A backfill of an older week, much better and forced, never demotes the newer champion.
    v4 = _register(tr, tmp_path, W1, row(90.0))
    r = _promote(tr, v4, W1, row(90.0), force=True, reeval={v3: row(50.0)})
    assert not r["promoted"] and _alias(tr, "champion") == v3
    assert "older than champion" in tr.client.get_model_version(NAME, v4).tags["promotion_reasons"]
    # Manual promotion of the older version is refused as well: that is a rollback.
    with pytest.raises(promotion.PromotionError, match="rollback"):
        promotion.promote_manual(tr.client, NAME, v4, RULES, "try")
    assert _alias(tr, "champion") == v3

    # Rollback: to the recorded previous champion, then to a named version.
    r = promotion.rollback(tr.client, NAME, reason="bad outputs")
    assert r["model_version"] == v1 and _alias(tr, "champion") == v1
    tags = tr.client.get_model_version(NAME, v3).tags
    assert tags["rolled_back"] == "true" and tags["rolled_back_reason"] == "bad outputs"
    promotion.rollback(tr.client, NAME, to_version=v4, reason="named")
    assert _alias(tr, "champion") == v4
    hist = promotion.history(tr.client, NAME)
    assert [h["action"] for h in hist] == ["promote", "promote", "rollback", "rollback"]
    assert [h["version"] for h in hist] == [v1, v3, v1, v4]

    listed = models.list_versions(tr.client, NAME)
    assert [v["version"] for v in listed] == ["4", "3", "2", "1"]
    assert listed[0]["aliases"] == ["champion", "challenger"] and listed[1]["rolled_back"]


def test_manual_promote_of_a_newer_version(mlflow_tracking, tmp_path):
    tr = mlflow_tracking
    v1 = _register(tr, tmp_path, W2, row(40.0))
    _promote(tr, v1, W2, row(40.0))
    v2 = _register(tr, tmp_path, W3, row(10.0, ece=0.4))
    _promote(tr, v2, W3, row(10.0, ece=0.4), reeval={v1: row(40.0)})
    assert _alias(tr, "champion") == v1
    r = promotion.promote_manual(tr.client, NAME, v2, RULES, "operator says so", actor="alice")
    assert r["promoted"] and r["forced"] and _alias(tr, "champion") == v2
    tags = tr.client.get_model_version(NAME, v2).tags
    assert tags["promotion_forced"] == "true" and tags["promotion_manual_reason"] == "operator says so"


def test_rollback_without_history_names_the_fix(mlflow_tracking, tmp_path):
    tr = mlflow_tracking
    with pytest.raises(promotion.PromotionError):
        promotion.rollback(tr.client, NAME)  # no model at all
    v1 = _register(tr, tmp_path, W2, row(40.0))
    _promote(tr, v1, W2, row(40.0))
    with pytest.raises(promotion.PromotionError, match="previous champion"):
        promotion.rollback(tr.client, NAME)


def test_alias_is_reread_before_it_is_set(mlflow_tracking, tmp_path):
    """Another promotion moves champion between our decision and our write: we decide again."""
    tr = mlflow_tracking
    v1 = _register(tr, tmp_path, W2, row(40.0))
    _promote(tr, v1, W2, row(40.0))
    v2 = _register(tr, tmp_path, W3, row(45.0))
    v3 = _register(tr, tmp_path, W3, row(60.0), data="d3")

    real = tr.client
    state = {"calls": 0}

    class Racing:
        def __getattr__(self, item):
            return getattr(real, item)

        def get_model_version_by_alias(self, name, alias):
            state["calls"] += 1
            if alias == "champion" and state["calls"] == 2:  # after our first read, a rival promotes v3
                real.set_registered_model_alias(name, "champion", v3)
            return real.get_model_version_by_alias(name, alias)

    r = promotion.promote(Racing(), NAME, Candidate(v2, W3, row(45.0), "g1"), RULES,
                          reevaluated={v1: row(40.0), v3: row(60.0)})
    assert not r["promoted"] and r["champion_before"] == v3 and _alias(tr, "champion") == v3
    assert "champion 60.00" in json.dumps(r["reasons"])


def test_tags_describe_the_current_state_after_rollback_and_repromotion(mlflow_tracking, tmp_path):
    tr = mlflow_tracking
    v1 = _register(tr, tmp_path, W2, row(40.0))
    _promote(tr, v1, W2, row(40.0))
    v2 = _register(tr, tmp_path, W3, row(50.0))
    _promote(tr, v2, W3, row(50.0), reeval={v1: row(40.0)})
    assert _alias(tr, "champion") == v2
    promotion.rollback(tr.client, NAME, reason="bad", run_id="manual__1")
    t1, t2 = (tr.client.get_model_version(NAME, v).tags for v in (v1, v2))
    assert t1["previous_champion"] == v2  # the rollback itself can be undone
    assert t1["promotion_decision"] == "champion (rollback)" and "promotion_checks" not in t1  # one record
    assert t1["promotion_dag_run_id"] == "manual__1" and "promotion_run_id" not in t1
    assert t2["rolled_back"] == "true" and t2["promotion_decision"] == "rolled back"
    promotion.rollback(tr.client, NAME, reason="undo")  # back to v2 via previous_champion
    t2 = tr.client.get_model_version(NAME, v2).tags
    assert _alias(tr, "champion") == v2 and "rolled_back" not in t2 and t2["previous_champion"] == v1
    v3 = _register(tr, tmp_path, W3, row(10.0, ece=0.4), data="d3")
    _promote(tr, v3, W3, row(10.0, ece=0.4), force=False, reeval={v2: row(50.0)})
    assert "promotion_forced" not in tr.client.get_model_version(NAME, v3).tags  # nothing was promoted


def test_a_retrained_model_is_a_new_version_identical_content_is_reused(mlflow_tracking, tmp_path):
    """D16: the key holds the model folder's content hash; the same interval, code and data with other weights
    (a rerun that retrained) is a new version, identical weights reuse the old one."""
    tr = mlflow_tracking
    src = tmp_path / "m"
    src.mkdir()
    log_model = lambda: SimpleNamespace(model_uri=src.as_uri(), model_id=None)  # noqa: E731
    first = models.register_student(tr.client, NAME, _key(W2, model="weights-a"), {}, log_model)
    again = models.register_student(tr.client, NAME, _key(W2, model="weights-a"), {}, log_model)
    other = models.register_student(tr.client, NAME, _key(W2, model="weights-b"), {}, log_model)
    assert again["reused"] and again["model_version"] == first["model_version"]
    assert not other["reused"] and other["model_version"] != first["model_version"]
