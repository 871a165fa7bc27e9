"""Budget schedule, label-free validation score, early stopping with the best step kept, SFT/RL selection,
k-sample voting, and the plots of the student evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import TrainerCallback

from conf_profile.config import Settings
from conf_profile.config.params import apply
from conf_profile.evaluate.plots import history_png
from conf_profile.intervals import Interval
from conf_profile.storage import Lake
from conf_profile.taxonomy import Taxonomy, load_taxonomy
from conf_profile.testing.stage1 import build_synthetic
from conf_profile.train import select, validation
from conf_profile.train import student_eval as ev
from conf_profile.train.rewards import Rollout, parse_rollout
from conf_profile.train.sft import schedule, train_sft

TAX = Taxonomy.model_validate({
    "name": "t",
    "attributes": [
        {"name": "gender", "classes": ["male", "female"]},
        {"name": "age_group", "classes": ["young", "old"]},
        {"name": "interests", "kind": "multi", "max_labels": 2, "classes": ["gaming", "music", "travel"]},
    ],
})
INTERVAL = Interval.parse("2026-11-16..2026-11-23")
PNG = b"\x89PNG\r\n\x1a\n"


def answer(gender="male", gc=0.9, age="young", ac=0.8, interests=("gaming",), ic=0.7) -> str:
    return json.dumps({"gender": {"label": gender, "confidence": gc}, "age_group": {"label": age, "confidence": ac},
                       "interests": {"label": list(interests), "confidence": ic}})


def test_budget_schedule_gives_small_weeks_more_epochs_not_fewer_steps():
    s = Settings()
    apply(s, {"train.sft.budget_examples": 24000, "train.sft.batch_size": 8, "train.sft.max_epochs": 12,
              "train.sft.min_steps": 200})
    big, small = schedule(4800, s), schedule(2000, s)
    assert big["mode"] == small["mode"] == "budget"
    assert big["steps"] == small["steps"] == 3000  # same compute, whatever the week's size
    assert small["epochs"] > big["epochs"]
    tiny = schedule(100, s)  # capped at max_epochs passes, but never under the floor
    assert tiny["steps"] == 200
    assert schedule(1000, s)["steps"] == 1500  # 12 epochs x 1000 / 8
    apply(s, {"train.sft.epochs": 5.0})  # the old schedule, on request
    assert schedule(2000, s) == {"mode": "epochs", "steps": 1250, "epochs": 5.0}


def test_validation_split_is_deterministic_by_user_id():
    ids = [f"u{i:05d}" for i in range(4000)]
    m = validation.validation_mask(ids, 0.1)
    assert 0.08 < m.mean() < 0.12
    assert (validation.validation_mask(list(reversed(ids)), 0.1)[::-1] == m).all()
    rows = [{"user_id": u, "document": "d", "target": "{}"} for u in ids]
    train, val = validation.split_rows(rows, 0.1)
    assert len(val) == int(m.sum()) and not {r["user_id"] for r in train} & {r["user_id"] for r in val}
    assert validation.split_rows(rows, 0.0) == (rows, [])


def _vset(targets: list[str]) -> validation.ValidationSet:
    rows = [{"user_id": f"u{i}", "document": f"doc {i}", "target": t} for i, t in enumerate(targets)]
    return validation.build_set(rows, TAX)


def test_validation_score_weights_agreement_by_stage1_confidence():
    vset = _vset([answer(gc=0.9, ac=0.1, ic=0.5)])
    perfect = validation.score_rollouts(vset, [parse_rollout(answer(), TAX)])
    assert perfect["score"] == pytest.approx(1.0) and perfect["valid_rate"] == 1.0
    # Wrong where Stage 1 was sure (gender, 0.9) costs more than wrong where it was unsure (age, 0.1).
    wrong_sure = validation.score_rollouts(vset, [parse_rollout(answer(gender="female"), TAX)])
    wrong_unsure = validation.score_rollouts(vset, [parse_rollout(answer(age="old"), TAX)])
    assert wrong_sure["score"] == pytest.approx(0.6 / 1.5, abs=1e-4)
    assert wrong_unsure["score"] == pytest.approx(1.4 / 1.5, abs=1e-4)
    assert wrong_sure["agreement"] == wrong_unsure["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    nothing = validation.score_rollouts(vset, [Rollout()])
    assert nothing["score"] == 0.0 and nothing["valid_rate"] == 0.0


def test_k_sample_vote_is_confidence_weighted():
    per_user = [
        [parse_rollout(answer(gc=0.6), TAX), parse_rollout(answer(gc=0.6), TAX),
         parse_rollout(answer(gender="female", gc=0.9, interests=("music",)), TAX)],
        [parse_rollout(answer(gc=0.2), TAX), parse_rollout(answer(gc=0.2), TAX),
         parse_rollout(answer(gender="female", gc=0.9), TAX)],
        [Rollout(), parse_rollout(answer(age="old"), TAX)],
    ]
    voted = ev.vote_answers(per_user, TAX)
    assert voted[0].labels["gender"] == "male"
    assert voted[0].confidences["gender"] == pytest.approx(1.2 / 3)  # mean confidence, the dissenter counts 0
    assert voted[0].labels["interests"] == ["gaming"]  # 1.4 of 2.1 name gaming, 0.7 music: below half
    assert voted[1].labels["gender"] == "female"  # one sure sample outweighs two unsure ones
    assert voted[1].confidences["gender"] == pytest.approx(0.9 / 3)
    assert voted[0].confidences["interests"] == pytest.approx(1.4 / 3)  # exact set match for multi-label
    assert voted[2].labels["age_group"] == "old" and voted[2].has_json  # an unparsable sample does not vote


def _scripted_generate(answers: dict[str, str]):
    """evaluate.generate stand-in: the 'model' is a key into `answers` (a fixed answer per model)."""
    def fake(model, tok, documents, max_new_tokens, batch_size=64, samples=0, temperature=1.0, desc=""):
        return [[answers[model]] * max(samples, 1) for _ in documents]
    return fake


def test_selection_picks_the_model_that_agrees_with_the_quasi_labels(monkeypatch):
    vset = _vset([answer(), answer(gender="female", gc=0.8), answer(age="old", interests=("music", "travel"))])
    monkeypatch.setattr(ev, "generate", _scripted_generate({
        "close": answer(),  # right on most users' attributes
        "off": answer(gender="female", age="old", interests=("travel",)),
    }))
    monkeypatch.setattr(ev, "answer_budget", lambda tok, taxonomy: 40)
    s = Settings()
    monkeypatch.setattr(select, "load_taxonomy", lambda path: TAX)

    for sft, rl, winner in (("close", "off", "sft"), ("off", "close", "rl")):
        models = {"sft": (_ModelNamed(sft), None), "rl": (_ModelNamed(rl), None)}
        scores = select.score_candidates(models, vset, s)
        assert select.pick(scores) == winner
        assert scores[winner]["score"] > scores[{"sft": "rl", "rl": "sft"}[winner]]["score"]
    # A tie, or an RL gain below the margin, keeps the simpler SFT model.
    assert select.pick({"sft": {"score": 0.5}, "rl": {"score": 0.5}}) == "sft"
    assert select.pick({"sft": {"score": 0.5}, "rl": {"score": 0.505}}, min_gain=0.01) == "sft"
    assert select.pick({"rl": {"score": 0.1}}) == "rl"


class _ModelNamed(str):
    """A str that passes for a model in score_model (it only reads .training); the fake generate keys on it."""

    training = False


def test_history_plot_is_a_png():
    png = history_png([("2026-11-02..2026-11-09", 55.0, 0.05), ("2026-11-09..2026-11-16", None, None),
                       ("2026-11-16..2026-11-23", 58.1, 0.04)])
    assert png.startswith(PNG)


class _Record(TrainerCallback):
    """Keeps a copy of the weights after every step (runs after the validation callback)."""

    def __init__(self):
        self.states: dict[int, dict] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.states[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_sft_stops_early_and_keeps_the_best_step(tmp_path, monkeypatch):
    settings = Settings.load(lake=str(tmp_path / "lake"))
    settings.data_dir = tmp_path
    apply(settings, {"train.sft.budget_examples": 400, "train.sft.min_steps": 1, "train.sft.batch_size": 4,
                     "train.sft.val_share": 0.2, "train.sft.val_users": 4, "train.sft.val_every": 2,
                     "train.sft.patience": 2, "train.sft.save_steps": 100, "train.eval.batch_size": 8,
                     "train.threads": 2})
    lake = Lake.from_settings(settings, create=True)
    build_synthetic(lake, INTERVAL, load_taxonomy(), users=60, seed=3)
    scripted = iter([0.2, 0.5, 0.4, 0.45, 0.9, 0.9])  # best at the 2nd validation (step 4); then 2 worse: stop
    monkeypatch.setattr(validation, "score_model", lambda *a, **k: {
        "score": next(scripted), "agreement": 0.0, "quasi_ece": None, "valid_rate": 0.0, "users": 4})
    rec = _Record()
    out = train_sft(lake, INTERVAL, settings, resume=False, callbacks=[rec])
    assert out["schedule"]["mode"] == "budget" and out["schedule"]["steps"] == 100
    assert out["steps"] == 8  # stopped at the 4th validation (steps 2, 4, 6, 8), not after 100 steps
    val = out["validation"]
    assert val["stopped_early"] and val["best_step"] == 4 == out["best_step"]
    assert [h["step"] for h in val["history"]] == [2, 4, 6, 8]
    assert out["val_users"] == 4 and out["train_users"] + 4 <= 48

    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(lake.local_dir(Lake.run_dir(INTERVAL, "models", "sft")))
    kept = saved.state_dict()
    name = "model.layers.0.mlp.down_proj.weight"
    assert np.allclose(kept[name].numpy(), rec.states[4][name].numpy())  # the best step, not the last
    assert not np.allclose(rec.states[8][name].numpy(), rec.states[4][name].numpy())
