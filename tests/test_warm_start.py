"""Weekly warm start: the deployment's tokenizer is reused across weeks, SFT continues from a compatible
champion (its weights before the first step), an incompatible one is refused with a readable reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import TrainerCallback

from conf_profile.config import Settings
from conf_profile.config.params import BY_NAME, apply, json_schema
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.train import warm_start
from conf_profile.train.sft import prepare_base, schedule

W1, W2 = Interval.parse("2026-11-02..2026-11-09"), Interval.parse("2026-11-09..2026-11-16")


def _settings(tmp_path, **updates) -> Settings:
    s = Settings.load(data_dir=tmp_path / "data", lake=str(tmp_path / "lake"))
    return apply(s, {"train.threads": 1, **updates})


def _rows(week: int, n: int = 40) -> list[dict]:
    words = ["gaming", "baking", "stroller", "guitar", "football", "lipstick"]
    return [{"user_id": f"u{i:04d}", "document": f"## watch\n- [{words[i % 6]}] ⟦week {week} video {i}⟧",
             "target": '{"gender": {"label": "female", "confidence": 0.8}}'} for i in range(n)]


def test_the_deployment_tokenizer_is_reused_across_weeks_and_covers_unseen_words(tmp_path):
    from transformers import AutoTokenizer

    from conf_profile.train.tokenizer import tokenizer_hash

    settings = _settings(tmp_path)
    lake = Lake.from_settings(settings, create=True)
    first = prepare_base(lake, W1, settings, _rows(1))
    rel = LakeLayout.tokenizer("tiny", "v1")
    assert lake.is_committed(rel) and lake.manifest(rel)["meta"]["trained_on"] == str(W1)
    second = prepare_base(lake, W2, settings, _rows(2, 60))  # another week, other documents
    tok1, tok2 = AutoTokenizer.from_pretrained(first), AutoTokenizer.from_pretrained(second)
    assert tokenizer_hash(tok1) == tokenizer_hash(tok2) == lake.manifest(rel)["meta"]["hash"]
    assert lake.manifest(Lake.run_dir(W2, "models", "base"))["meta"]["tokenizer"]["reused"] is True
    unseen = "## search\n- ⟦quokka skateboarding 新词 🦜⟧"  # words no week ever had: byte-level BPE covers them
    ids = tok2(unseen)["input_ids"]
    assert tok2.decode(ids) == unseen and tok2.unk_token_id not in ids

    # A new tokenizer version is a new tokenizer (and so, for warm starts, a cold start).
    apply(settings, {"train.tokenizer_version": "v2"})
    third = prepare_base(lake, W2, settings, _rows(2, 60))
    assert tokenizer_hash(AutoTokenizer.from_pretrained(third)) != tokenizer_hash(tok1)
    assert lake.is_committed(LakeLayout.tokenizer("tiny", "v2"))


def _champion(tags: dict) -> SimpleNamespace:
    return SimpleNamespace(version="3", tags=tags)


def test_an_incompatible_champion_is_refused_with_the_reason(tmp_path):
    expected = {"taxonomy_hash": "tax1", "tokenizer_hash": "tok1", "student_base": "tiny"}
    ok = {**expected, "data_interval": str(W1)}
    cases = {
        "tokenizer differs": {**ok, "tokenizer_hash": "tok2"},
        "taxonomy differs": {**ok, "taxonomy_hash": "tax2"},
        "no tokenizer_hash tag": {k: v for k, v in ok.items() if k != "tokenizer_hash"},
        "not before 2026-11-09..2026-11-16": {**ok, "data_interval": str(W2)},  # a rerun of this week
    }
    for mode in ("auto", "champion"):
        settings = _settings(tmp_path, **{"train.warm_start": mode})
        for why, tags in cases.items():
            if mode == "auto":
                ws = warm_start.decide(settings, W2, expected, tmp_path, champion=_champion(tags))
                assert not ws.warm and why in ws.reason and ws.tag.startswith("cold: champion models:/")
            else:
                with pytest.raises(warm_start.WarmStartRefused) as err:
                    warm_start.decide(settings, W2, expected, tmp_path, champion=_champion(tags))
                assert why in err.value.message and "warm_start: cold" in err.value.fix
    # No registry at all: cold in auto, a clear error naming the fix in champion mode.
    none = warm_start.decide(_settings(tmp_path), W2, expected, tmp_path)
    assert not none.warm and "no champion" in none.reason
    with pytest.raises(ConfProfileError, match="no champion"):
        warm_start.decide(_settings(tmp_path, **{"train.warm_start": "champion"}), W2, expected, tmp_path)
    cold = warm_start.decide(_settings(tmp_path, **{"train.warm_start": "cold"}), W2, expected, tmp_path,
                             champion=_champion(ok))
    assert not cold.warm and cold.tag == "cold: train.warm_start is cold (requested)"


def test_a_rerun_after_a_cold_attempt_starts_cold_again(tmp_path):
    """A champion promoted after this week's first (cold) attempt, e.g. by a backfill, must not make the
    rerun warm: it would train another model and register a second version of the week."""
    expected = {"taxonomy_hash": "tax1", "tokenizer_hash": "tok1", "student_base": "tiny"}
    champion = _champion({**expected, "data_interval": str(W1)})  # compatible, trained before W2
    auto = _settings(tmp_path)
    first = "cold: conf-profile-student has no champion yet"
    again = warm_start.decide(auto, W2, expected, tmp_path, champion=champion, pinned=first)
    assert not again.warm and again.reason.startswith("conf-profile-student has no champion yet (kept from")
    third = warm_start.decide(auto, W2, expected, tmp_path, champion=champion, pinned=again.tag)
    assert third.tag == again.tag  # the reason does not grow with every rerun
    # An explicit `champion` decides again; a cold start that was requested does not stick once auto is asked.
    with pytest.raises(ConfProfileError, match="no champion"):
        warm_start.decide(_settings(tmp_path, **{"train.warm_start": "champion"}), W2, expected, tmp_path,
                          pinned=first)
    requested = warm_start.decide(auto, W2, expected, tmp_path, pinned="cold: train.warm_start is cold (requested)")
    assert "kept from" not in requested.reason and "no champion" in requested.reason


def test_warm_schedule_and_run_parameter(tmp_path):
    s = _settings(tmp_path, **{"train.sft.warm_budget_examples": 2000, "train.sft.min_steps": 10})
    assert schedule(1000, s, warm=True) == {"mode": "warm_budget", "steps": 250, "epochs": 2.0}
    assert schedule(1000, s)["steps"] == 1500  # cold: the cold budget
    apply(s, {"train.sft.warm_budget_examples": 0})
    assert schedule(1000, s, warm=True) == schedule(1000, s)
    assert json_schema(s, BY_NAME["warm_start"])["enum"] == ["auto", "champion", "cold"]
    apply(s, {"warm_start": "cold"})
    assert s.train.warm_start == "cold"


class _FirstWeights(TrainerCallback):
    """The model's weights when training begins (before the first optimizer step)."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_sft_warm_starts_from_the_registered_champion(tmp_path):
    import mlflow
    import torch

    from conf_profile.registry import models, tracking
    from conf_profile.testing.stage1 import build_synthetic
    from conf_profile.train import student
    from conf_profile.train.sft import train_sft

    settings = _settings(tmp_path, **{"train.sft.epochs": 1.0, "train.sft.save_steps": 100,
                                      "train.sft.val_share": 0.0, "train.warm_start": "champion"})
    lake = Lake.from_settings(settings, create=True)
    tax = load_taxonomy()
    for week, seed in ((W1, 3), (W2, 4)):
        build_synthetic(lake, week, tax, users=40, seed=seed)
    with pytest.raises(ConfProfileError, match="no champion"):  # champion mode with nothing registered
        train_sft(lake, W1, settings)
    apply(settings, {"train.warm_start": "auto"})
    first = train_sft(lake, W1, settings)
    assert first["warm_start"] is False and first["warm_start_from"].startswith("cold: ")

    # Register week 1's model as the champion, with the tags the register stage writes.
    tr = tracking.configure(settings)
    name = settings.mlflow.model_name
    w1_model = lake.local_dir(Lake.run_dir(W1, "models", "sft"))
    with mlflow.start_run(experiment_id=tr.experiment_id) as run:
        info = models.log_student(w1_model, settings.taxonomy_path, batch_size=2)
    tags = {k: str(first[k]) for k in ("taxonomy_hash", "tokenizer_hash")}
    key = {"data_interval": str(W1), "code_version": "t", "dataset_hash": "d", "config_hash": "c", "model_hash": "m"}
    out = models.register_student(tr.client, name, key, {**tags, "student_base": "tiny"}, lambda: info,
                                  run_id=run.info.run_id)
    tr.client.set_registered_model_alias(name, "champion", out["model_version"])

    seen = _FirstWeights()
    apply(settings, {"train.warm_start": "champion"})
    second = train_sft(lake, W2, settings, callbacks=[seen])
    assert second["warm_start"] is True and second["warm_start_from"] == f"models:/{name}/{out['model_version']}"
    assert second["tokenizer_hash"] == first["tokenizer_hash"]
    champ, _ = student.load(w1_model, for_training=True)
    assert set(seen.state) == set(champ.state_dict())
    assert all(torch.equal(seen.state[k], v) for k, v in champ.state_dict().items())  # continued from its weights
    base, _ = student.load(lake.local_dir(Lake.run_dir(W2, "models", "base")), for_training=True)
    assert not all(torch.equal(seen.state[k], v) for k, v in base.state_dict().items())  # not the fresh init
    meta = lake.manifest(Lake.run_dir(W2, "models", "sft"))["meta"]
    assert meta["warm_start_from"] == second["warm_start_from"]

    # A rerun of week 2 after week 2's own model became the champion starts from the same version again
    # (the earlier attempt's source is pinned); the decision is what is tested, so no third training.
    v2 = models.register_student(tr.client, name, {**key, "data_interval": str(W2)}, {**tags, "student_base": "tiny"},
                                 lambda: info, run_id=run.info.run_id)["model_version"]
    tr.client.set_registered_model_alias(name, "champion", v2)
    hashes = {k: second[k] for k in ("taxonomy_hash", "tokenizer_hash")} | {"student_base": "tiny"}
    cache = tmp_path / "dl"
    assert warm_start.decide(settings, W2, hashes, cache, pinned=meta["warm_start_from"]).ref == second["warm_start_from"]
    unpinned = warm_start.decide(_settings(tmp_path, **{"train.warm_start": "auto"}), W2, hashes, cache)
    assert not unpinned.warm and "not before" in unpinned.reason  # this week's own model: never its own start

    # The same champion with another tokenizer: refused (auto goes cold and says why).
    tr.client.set_model_version_tag(name, out["model_version"], "tokenizer_hash", "0123456789abcdef")
    apply(settings, {"train.warm_start": "auto"})
    cold = warm_start.decide(settings, W2, hashes, cache, pinned=meta["warm_start_from"])
    assert not cold.warm and "tokenizer differs" in cold.reason and cold.tag.startswith("cold: champion models:/")
