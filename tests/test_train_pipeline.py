"""Stage 2 end to end on a handful of synthetic users: SFT -> GRPO -> evaluate, resume, CLI.

Artefacts and the shape of the metrics are asserted, not their values: a few steps on 50 users learn nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from conf_profile.cli import main
from conf_profile.config import Settings
from conf_profile.config.params import apply
from conf_profile.intervals import Interval
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.testing.stage1 import build_synthetic
from conf_profile.train.rl import train_rl
from conf_profile.train.select import choose_student, read_selection, version_tags
from conf_profile.train.sft import accelerate_command, train_sft
from conf_profile.train.student_eval import evaluate_model

INTERVAL = Interval.parse("2026-11-16..2026-11-23")


@pytest.fixture(scope="module")
def lake_settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    settings = Settings.load(lake=str(root / "lake"))
    settings.data_dir = root
    apply(settings, {"train.sft.epochs": 1.0, "train.sft.batch_size": 8, "train.sft.save_steps": 2,
                     "train.rl.steps": 2, "train.rl.prompts_per_step": 2, "train.rl.num_generations": 4,
                     "train.rl.conf_band": (0.0, 1.0), "train.eval.users": 6, "train.eval.batch_size": 8,
                     "train.threads": 2})
    lake = Lake.from_settings(settings, create=True)
    build_synthetic(lake, INTERVAL, load_taxonomy(), users=60, seed=3)
    return lake, settings


class _Crash(TrainerCallback):
    """Simulates a crash (pod eviction) right after step `at`."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt("simulated crash")


class _Steps(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


@pytest.mark.slow
def test_sft_resumes_after_a_crash(lake_settings):
    lake, settings = lake_settings
    with pytest.raises(KeyboardInterrupt):
        train_sft(lake, INTERVAL, settings, callbacks=[_Crash(at=3)])
    assert not lake.is_committed(Lake.run_dir(INTERVAL, "models", "sft"))  # nothing half-written
    seen = _Steps()
    summary = train_sft(lake, INTERVAL, settings, callbacks=[seen])
    assert summary["resumed_from"] == "checkpoint-2"
    assert seen.steps[0] == 3  # continued after the checkpoint's global_step, not from 1
    assert summary["steps"] == seen.steps[-1] == -(-summary["train_users"] // 8)  # one epoch
    assert lake.manifest(Lake.run_dir(INTERVAL, "models", "sft"))["meta"]["steps"] == summary["steps"]
    # a rerun of the finished stage returns the committed model: no step, same files
    before = lake.fingerprint(Lake.run_dir(INTERVAL, "models", "sft"))
    again = _Steps()
    more = train_sft(lake, INTERVAL, settings, callbacks=[again])
    assert more["status"] == "skipped" and again.steps == [] and more["steps"] == summary["steps"]
    assert lake.fingerprint(Lake.run_dir(INTERVAL, "models", "sft")) == before


@pytest.mark.slow
def test_sft_rl_evaluate_end_to_end(lake_settings):
    lake, settings = lake_settings
    sft = train_sft(lake, INTERVAL, settings, resume=False)
    assert sft["resumed_from"] is None and sft["dropped_eval_users"] == 0
    for stage in ("base", "sft"):
        files = lake.manifest(Lake.run_dir(INTERVAL, "models", stage))["files"]
        assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(files)
    meta = lake.manifest(Lake.run_dir(INTERVAL, "models", "sft"))["meta"]
    assert {"base", "epochs", "steps", "train_users", "schedule", "best_step", "val_score"} <= set(meta)
    assert meta["schedule"]["mode"] == "epochs" and sft["validation"]["history"]  # validated at the end at least

    rl = train_rl(lake, INTERVAL, settings)
    assert rl["steps"] == 2 and rl["difficulty_filter"]["kept"] == rl["prompts_kept"] > 0
    assert rl["curves"]["reward"], "GRPO logged no reward"
    assert lake.is_committed(Lake.run_dir(INTERVAL, "models", "rl"))
    before = lake.fingerprint(Lake.run_dir(INTERVAL, "models", "rl"))
    again = train_rl(lake, INTERVAL, settings)  # a rerun of the week: the committed model, no new sampling
    assert again["status"] == "skipped" and again["steps"] == 2
    assert lake.fingerprint(Lake.run_dir(INTERVAL, "models", "rl")) == before

    for stage in ("base", "sft", "rl"):
        out = evaluate_model(lake, INTERVAL, settings, stage, f"student:{stage}")
        row = out["rows"][0]
        assert out["eval_users"] == 6
        assert set(row) >= {"name", "f1", "coverage", "ece", "valid_rate", "per_attribute"}
        assert 0.0 <= row["f1"] <= 100.0 and 0.0 <= row["valid_rate"] <= 1.0
        assert row["valid_rate_first"] <= row["valid_rate"] and row["retried_users"] >= 0  # retries only add
        assert row["ece"] is None or 0.0 <= row["ece"] <= 1.0  # None: the model never answered anything
        assert set(row["per_attribute"]) == set(load_taxonomy().names)
        assert lake.read_json(Lake.run_dir(INTERVAL, "eval", f"student-{stage}.json")) == json.loads(json.dumps(row))
        png = lake.read_bytes(Lake.run_dir(INTERVAL, "plots", f"reliability_student-{stage}.png"))
        assert png.startswith(b"\x89PNG") and out["plot"].endswith(f"reliability_student-{stage}.png")

    choice = choose_student(lake, INTERVAL, settings)
    assert choice["stage"] in ("sft", "rl") and set(choice["scores"]) == {"sft", "rl"}
    best = max(choice["scores"], key=lambda k: (choice["scores"][k]["score"], k == "sft"))
    assert choice["stage"] == best
    assert lake.read_json(Lake.run_dir(INTERVAL, "models", "selection.json"))["stage"] == choice["stage"]
    tags = version_tags(read_selection(lake, INTERVAL))
    assert tags["student_stage"] == choice["stage"] and {"selection.sft_score", "selection.rl_score"} <= set(tags)
    voted = evaluate_model(lake, INTERVAL, settings, "sft", "student:sft-vote", answer_samples=2)["rows"][0]
    assert voted["answer"]["samples"] == 2 and 0.0 <= voted["f1"] <= 100.0

    smp = evaluate_model(lake, INTERVAL, settings, "rl", "student:rl-sampled", samples=2)["rows"][0]["sampling"]
    assert smp["k"] == 2 and {"avg_f1", "maj_f1", "avg_ece", "maj_ece"} <= set(smp)


@pytest.mark.slow
def test_cli_evaluate_json(lake_settings, capsys):
    lake, settings = lake_settings
    if not lake.is_committed(Lake.run_dir(INTERVAL, "models", "sft")):
        train_sft(lake, INTERVAL, settings)
    cfg = settings.data_dir / "train.yaml"
    cfg.write_text(json.dumps({"data_dir": str(settings.data_dir), "train": {"eval": {"users": 4}, "threads": 2}}))
    code = main(["evaluate", "--model", "sft", "--interval", str(INTERVAL), "--lake", lake.uri, "--config", str(cfg),
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["eval_users"] == 4
    assert out["rows"][0]["name"] == "student:sft"

    code = main(["evaluate", "--model", "/nowhere", "--interval", str(INTERVAL), "--lake", lake.uri, "--json"])
    err = json.loads(capsys.readouterr().out)
    assert code != 0 and err["error"] == "ModelNotFound"


def test_accelerate_command_for_gpu_pods():
    cmd = accelerate_command("sft", INTERVAL, "zero3", lake_uri="s3://lake/prefix", num_processes=4)
    assert cmd[:6] == ["accelerate", "launch", "--config_file", "configs/accelerate/zero3.yaml", "--num_processes", "4"]
    assert cmd[6:10] == ["-m", "conf_profile.cli", "train", "sft"]
    assert Path(__file__).parents[1].joinpath("configs/accelerate/zero3.yaml").is_file()
    assert "--lake" in cmd and "s3://lake/prefix" in cmd and str(INTERVAL) in cmd
    with pytest.raises(Exception, match="zero4"):
        accelerate_command("sft", INTERVAL, "zero4")


@pytest.mark.slow
def test_lora_sft_saves_a_merged_plain_model(tmp_path):
    settings = Settings.load(lake=str(tmp_path / "lake"))
    settings.data_dir = tmp_path
    apply(settings, {"train.lora": True, "train.lora_r": 4, "train.sft.epochs": 1.0, "train.sft.batch_size": 8,
                     "train.sft.lr": 1e-3, "train.threads": 2})
    lake = Lake.from_settings(settings, create=True)
    build_synthetic(lake, INTERVAL, load_taxonomy(), users=30, seed=5)
    summary = train_sft(lake, INTERVAL, settings)
    files = set(lake.manifest(Lake.run_dir(INTERVAL, "models", "sft"))["files"])
    assert summary["lora"] and "config.json" in files and "adapter_config.json" not in files
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lake.local_dir(Lake.run_dir(INTERVAL, "models", "sft")))
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_cli_rl_rerun_says_it_kept_the_committed_model(monkeypatch, tmp_settings):
    """A rerun that returns the committed GRPO model has no sampling stats to print: the summary says so."""
    import argparse

    from conf_profile.cli import train_cmds

    skipped = {"stage": "train_rl", "interval": str(INTERVAL), "status": "skipped", "steps": 40, "path": "/lake/rl"}
    monkeypatch.setattr(train_cmds, "run_stage", lambda *a, **k: skipped)
    monkeypatch.setattr(train_cmds, "_settings", lambda args: tmp_settings)
    monkeypatch.setattr(train_cmds, "_overrides", lambda args: {})
    out = train_cmds.cmd_rl(argparse.Namespace(launcher_command=None))
    assert "not rerun" in out.text and "/lake/rl" in out.text
