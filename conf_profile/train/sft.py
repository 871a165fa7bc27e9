"""Stage 2.1: supervised distillation of the Stage-1 profiles into the student (TRL SFTTrainer).

Conversational data (system / user = document / assistant = target JSON) with the loss on the assistant turn
only. Checkpoints live in a local work dir and a rerun resumes from the newest one, provided it was made from
the same data and base (a fingerprint file guards that); the final model goes to runs/<key>/models/sft/.
On GPU the same function runs under `accelerate launch` (DeepSpeed ZeRO-2/3 configs in configs/accelerate/).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

from conf_profile import progress
from conf_profile.config import Settings
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.train import augment, runtime, student, validation, warm_start
from conf_profile.train.data import SYSTEM_PROMPT, load_distill, messages
from conf_profile.train.tokenizer import tokenizer_hash

ACCELERATE_CONFIGS = ("single_gpu", "zero2", "zero3")
_SFT_FIELDS = {"student", "lora", "lora_r", "seed", "tokenizer", "tokenizer_version"}


def fingerprint(rows: list[dict], settings: Settings, warm_from: str = "") -> str:
    """Identity of a training run: the data, every setting that shapes the model, and the warm-start source."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r['user_id']}\x1f{r['document']}\x1f{r['target']}\x1e".encode())
    ts = settings.train
    shaping = {k: v for k, v in ts.model_dump().items() if k in _SFT_FIELDS}
    shaping["sft"] = ts.sft.model_dump()
    shaping["preset"] = repr(student.PRESETS.get(ts.student))  # a preset's architecture is part of its identity
    h.update(json.dumps(shaping, sort_keys=True, default=str).encode())
    if warm_from:
        h.update(f"\x1dwarm:{warm_from}".encode())
    return h.hexdigest()[:16]


def schedule(train_examples: int, settings: Settings, warm: bool = False) -> dict:
    """Optimizer steps for `train_examples`: by compute budget (train.sft.budget_examples example-passes,
    at most max_epochs passes, at least min_steps steps), or the fixed train.sft.epochs when that is > 0.

    Why a budget: a fixed epoch count tuned on one week's size gives a smaller week proportionally fewer
    updates (measured: 5 epochs at 2,500 users fell 10 F1 short of 6,000 users; docs/training.md), while
    the attributes that need a rare token to be found (city tier) only appear after enough updates.
    A warm start (from the champion) uses train.sft.warm_budget_examples instead (0: the cold budget)."""
    sft = settings.train.sft
    n = max(1, train_examples)
    if sft.epochs > 0:
        steps, mode = math.ceil(sft.epochs * n / sft.batch_size), "epochs"
    else:
        budget = sft.warm_budget_examples if warm and sft.warm_budget_examples > 0 else sft.budget_examples
        passes = min(float(budget), sft.max_epochs * n)
        steps = max(sft.min_steps, math.ceil(passes / sft.batch_size))
        mode = "warm_budget" if warm and sft.warm_budget_examples > 0 else "budget"
    return {"mode": mode, "steps": steps, "epochs": round(steps * sft.batch_size / n, 2)}


def prepare_base(lake: Lake, interval: Interval, settings: Settings, rows: list[dict]) -> Path:
    """The untrained student as a local HF folder. Presets are built and committed to runs/<key>/models/base
    so `student:base` can be evaluated; a committed base built from the same data is reused, so a resumed run
    keeps its tokenizer. The tokenizer is the deployment's (train.tokenizer: lake; trained on the first week's
    documents and targets at deployment/tokenizers/<preset>-<version>, reused every week, so a champion's
    token ids mean the same next week) or this run's own (train.tokenizer: run)."""
    ref = settings.train.student
    if ref not in student.PRESETS:
        return student.resolve(ref, settings, lake, interval)
    rel = student.model_dir(interval, "base")
    data_hash = fingerprint(rows, settings)
    if lake.is_committed(rel) and lake.manifest(rel).get("meta", {}).get("fingerprint") == data_hash:
        return lake.local_dir(rel, runtime.work_dir(settings, interval, "base-cache"))
    out = runtime.work_dir(settings, interval, "base")
    shutil.rmtree(out, ignore_errors=True)

    def texts() -> list[str]:
        # The chat frame (role names, system prompt) is in every example: make it frequent so it merges.
        frame = ["system\nuser\nassistant\n" + SYSTEM_PROMPT] * len(rows)
        return [r["document"] for r in rows] + [r["target"] for r in rows] + frame

    tok, tok_info = None, {"source": "run"}
    if settings.train.tokenizer == "lake":
        from conf_profile.layout import LakeLayout
        from conf_profile.train.tokenizer import lake_tokenizer

        tok, tok_info = lake_tokenizer(
            lake, LakeLayout.tokenizer(ref, settings.train.tokenizer_version), student.PRESETS[ref].vocab, texts,
            runtime.work_dir(settings, interval, "tokenizer"), trained_on=str(interval))
    student.build_preset(ref, texts() if tok is None else [], out, seed=settings.train.seed, tokenizer=tok)
    lake.upload_dir(out, rel, meta={"preset": ref, "fingerprint": data_hash, "train_users": len(rows),
                                    "tokenizer": tok_info})
    return out


def _lengths(rows: list[dict], tok) -> list[int]:
    return [len(tok.apply_chat_template(messages(r["document"], r["target"]), tokenize=True,
                                        return_dict=True)["input_ids"]) for r in rows]


def _fitting(rows: list[dict], tok, max_length: int) -> tuple[list[dict], list[int], int]:
    """Rows whose document + answer fit in max_length tokens (SFT would cut the answer off), their lengths,
    and how many were dropped."""
    lengths = _lengths(rows, tok)
    keep = [(r, n) for r, n in zip(rows, lengths, strict=True) if n <= max_length]
    return [r for r, _ in keep], [n for _, n in keep], len(rows) - len(keep)


def _dataset(rows: list[dict], lengths: list[int], tok, max_length: int, views: int = 1, mode: str = "none",
             seed: int = 0, drop: float = 0.0):
    """Conversational dataset of fitting rows (`_fitting`). With `views` > 1 every user is there `views`
    times, as document views (train/augment.py); a view is re-measured only when its document is within a
    margin of max_length (a view is rarely longer than its document), and left out if it does not fit."""
    from datasets import Dataset

    examples = augment.expand(rows, views, mode, seed, drop)
    if views > 1:
        near = {r["user_id"] for r, n in zip(rows, lengths, strict=True) if n > max_length - 32}
        extra = [e for e in examples[len(rows):] if e["user_id"] in near]
        too_long = {id(e) for e, n in zip(extra, _lengths(extra, tok), strict=True) if n > max_length}
        examples = [e for e in examples if id(e) not in too_long]
    return Dataset.from_list([{"messages": messages(e["document"], e["target"])} for e in examples])


def train_sft(lake: Lake, interval: Interval, settings: Settings, resume: bool = True,
              callbacks: list | None = None) -> dict:
    """Fine-tune the student on runs/<key>/labels/distill and save it to runs/<key>/models/sft.
    `callbacks` are extra transformers TrainerCallbacks (heartbeats, tests that simulate a crash)."""
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    runtime.setup_torch(settings)
    ts = settings.train
    table, dropped_eval = load_distill(lake, interval, Split.of(settings))
    rows = sorted(table.select(["user_id", "document", "target"]).to_pylist(), key=lambda r: r["user_id"])
    if not rows:
        raise ConfProfileError(f"The distillation set of {interval} has no training users.",
                               "Check the aggregate stage's output (labels/distill).")
    train_rows, val_rows = validation.split_rows(rows, ts.sft.val_share)
    if not train_rows:
        raise ConfProfileError(f"train.sft.val_share {ts.sft.val_share} leaves no training users in {interval}.",
                               "Lower train.sft.val_share.")
    base = prepare_base(lake, interval, settings, rows)  # tokenizer of every row: the same as before the split
    model, tok = student.load(base, for_training=True)
    tax = load_taxonomy(settings.taxonomy_path)
    hashes = {warm_start.TAXONOMY_TAG: warm_start.taxonomy_hash(tax), warm_start.TOKENIZER_TAG: tokenizer_hash(tok),
              warm_start.BASE_TAG: ts.student}
    sft_rel = student.model_dir(interval, "sft")
    earlier = lake.manifest(sft_rel).get("meta", {}).get(warm_start.FROM_TAG) if lake.is_committed(sft_rel) else None
    warm = warm_start.decide(settings, interval, hashes, runtime.work_dir(settings, interval, "warm-start"),
                             pinned=earlier)
    init = base
    if warm.warm:
        model, tok = student.load(warm.source, for_training=True)  # the champion's weights, same tokenizer
        init = warm.source
    kept, lengths, too_long = _fitting(train_rows, tok, ts.sft.max_length)
    train_users = len(kept)
    sched = schedule(train_users, settings, warm=warm.warm)
    views = augment.views_for(sched["epochs"], ts.sft.augment, ts.sft.augment_min_epochs)
    dataset = _dataset(kept, lengths, tok, ts.sft.max_length, views, ts.sft.augment, ts.seed, ts.sft.augment_drop)
    sched["views"] = views
    vset = validation.build_set(val_rows, tax, ts.sft.val_users)

    work = runtime.work_dir(settings, interval, "sft")
    ckpt_dir = work / "checkpoints"
    fp = fingerprint(rows, settings, warm_from=warm.ref or "")
    done = lake.manifest(sft_rel).get("meta", {}) if resume and lake.is_committed(sft_rel) else {}
    if done.get("fingerprint") == fp:  # same data, settings and start: rerunning gives the committed model
        return {"stage": "sft", "interval": str(interval), "path": lake.uri_of(sft_rel), **done, "status": "skipped",
                "resumed_from": None, "dropped_eval_users": dropped_eval, "dropped_too_long": too_long,
                "final_loss": done.get("final_loss"), "seconds": round(time.perf_counter() - t0, 1)}
    marker = work / "fingerprint"
    best_file = work / "validation.pt"
    if not resume or not marker.exists() or marker.read_text() != fp:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # checkpoints of other data/settings: never resume them
        best_file.unlink(missing_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp)
    last = get_last_checkpoint(str(ckpt_dir)) if resume else None

    if last is None:
        best_file.unlink(missing_ok=True)  # a fresh start must not inherit another attempt's best weights
    steps_per_epoch = math.ceil(train_users / ts.sft.batch_size)
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        max_steps=sched["steps"],
        per_device_train_batch_size=ts.sft.batch_size,
        learning_rate=ts.sft.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=ts.sft.weight_decay,
        assistant_only_loss=True,
        max_length=ts.sft.max_length,
        logging_steps=max(1, min(10, steps_per_epoch)),
        save_strategy="steps",
        save_steps=ts.sft.save_steps,
        save_total_limit=2,
        report_to="none",  # MLflow through runtime.stage_logger (see there why)
        disable_tqdm=not progress.enabled(),
        seed=ts.seed,
        data_seed=ts.seed,
        dataloader_num_workers=0,
        **runtime.device_args(),
    )
    val_cb = validation.validation_callback(
        vset, tok, load_taxonomy(settings.taxonomy_path), ts.sft.val_every, ts.sft.patience, ts.sft.min_delta,
        settings.train.eval.batch_size, state_file=best_file) if len(vset) else None
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                         peft_config=student.lora_config(settings),
                         callbacks=[runtime.stage_logger("sft"), *([val_cb] if val_cb else []), *(callbacks or [])])
    runtime.log_params({"sft.base": ts.student, "sft.lora": ts.lora, "sft.schedule": sched["mode"],
                        "sft.steps": sched["steps"], "sft.epochs": sched["epochs"], "sft.lr": ts.sft.lr,
                        "sft.batch_size": ts.sft.batch_size, "sft.train_users": train_users, "sft.views": views,
                        "sft.val_users": len(vset), "sft.warm_start_from": warm.tag})
    runtime.set_tags({warm_start.FROM_TAG: warm.tag})
    runtime.quiet_stdout(trainer)
    result = trainer.train(resume_from_checkpoint=last)
    val = None
    if val_cb is not None:
        val_cb.restore(trainer.model)  # keep the best validated weights, not the last ones
        val = val_cb.summary()
        runtime.log_metrics({"sft.val_score": (val["best"] or {}).get("score", 0.0)})

    meta = {"base": ts.student, "lora": ts.lora, "schedule": sched, "epochs": sched["epochs"],
            "steps": trainer.state.global_step, "train_users": train_users, "val_users": len(vset),
            "best_step": val["best_step"] if val else trainer.state.global_step,
            "val_score": (val["best"] or {}).get("score") if val else None, "fingerprint": fp,
            **hashes, warm_start.FROM_TAG: warm.tag, "warm_start": warm.warm, "warm_start_reason": warm.reason,
            "final_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
            "train_seconds": round(time.perf_counter() - t0, 1)}  # in the manifest: a GPU pod has no MLflow run
    student.save_final(trainer, tok, work / "final", lake, student.model_dir(interval, "sft"), meta, init)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {
        "stage": "sft", "interval": str(interval), "path": lake.uri_of(student.model_dir(interval, "sft")),
        **meta, "resumed_from": Path(last).name if last else None, "dropped_eval_users": dropped_eval,
        "dropped_too_long": too_long, "final_loss": losses[-1] if losses else None, "validation": val,
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    runtime.log_metrics({"sft.final_loss": summary["final_loss"] or 0.0, "sft.seconds": summary["seconds"]})
    return summary


def accelerate_command(stage: str, interval: Interval | str, config: str = "zero2", lake_uri: str | None = None,
                       num_processes: int | None = None, config_root: str = "configs/accelerate",
                       extra: list[str] | None = None) -> list[str]:
    """`accelerate launch ... -m conf_profile.cli train <stage>` for a GPU pod (the trainer image's working
    directory is the repository root, so `config_root` is relative to it)."""
    if config not in ACCELERATE_CONFIGS:
        raise ConfProfileError(f"Unknown accelerate config {config!r}.", f"Use one of {', '.join(ACCELERATE_CONFIGS)}.")
    if stage not in ("sft", "rl"):
        raise ConfProfileError(f"Unknown training stage {stage!r}.", "Use sft or rl.")
    cmd = ["accelerate", "launch", "--config_file", f"{config_root}/{config}.yaml"]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    cmd += ["-m", "conf_profile.cli", "train", stage, "--interval", str(interval), "--json"]
    if lake_uri:
        cmd += ["--lake", lake_uri]
    return cmd + list(extra or [])


def read_meta(lake: Lake, interval: Interval, stage: str) -> dict:
    return json.loads(json.dumps(lake.manifest(student.model_dir(interval, stage)).get("meta", {})))
