"""Stage 2.2: confidence-guided GRPO from the SFT student (TRL GRPOTrainer), rewards in rewards.py.

Difficulty filtering keeps users whose Stage-1 aggregated confidence lies in train.rl.conf_band:
too easy gives every rollout the same answer (zero advantage), too hard is noise. Users without Stage-1
labels (outside the teacher budget, method.md 2.3) are filtered on the student's own agreement instead:
k pre-sampled rollouts per candidate prompt, kept when their mean vote share lies in train.rl.self_band. On GPU, rollouts come
from vLLM colocated with the trainer when vllm is installed; on CPU from transformers' generate.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile import progress
from conf_profile.config import Settings
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.layout import RunLayout
from conf_profile.splits import Split
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.train import runtime, student, validation
from conf_profile.train.data import load_distill, load_rl_prompts, messages
from conf_profile.train.rewards import ConfidenceRewards, class_priors
from conf_profile.train.student_eval import answer_budget


def difficulty_filter(table: pa.Table, band: tuple[float, float]) -> tuple[pa.Table, dict]:
    """Rows whose stage1_confidence lies in [lo, hi] (inclusive), and the kept/dropped counts."""
    lo, hi = band
    if not 0.0 <= lo <= hi <= 1.0:
        raise ConfProfileError(f"train.rl.conf_band {band} is not a band inside [0, 1].", "Set train.rl.conf_band: [lo, hi].")
    conf = pc.fill_null(table.column("stage1_confidence"), -1.0)
    keep = pc.and_(pc.greater_equal(conf, lo), pc.less_equal(conf, hi))
    kept = table.filter(keep)
    c = np.asarray(conf.to_numpy(zero_copy_only=False))
    stats = {"band": [lo, hi], "candidates": table.num_rows, "kept": kept.num_rows,
             "dropped_too_easy": int((c > hi).sum()), "dropped_too_hard": int(((c < lo) & (c >= 0)).sum()),
             "dropped_no_confidence": int((c < 0).sum())}
    return kept, stats


def self_difficulty_filter(model, tok, table: pa.Table, settings: Settings, max_new_tokens: int
                           ) -> tuple[pa.Table, dict]:
    """Prompts without a Stage-1 confidence, filtered on the SFT student's own agreement: `presample`
    rollouts (at the GRPO temperature) for each of `presample_pool` candidates (a seeded shuffle), kept
    when the mean vote share over attributes lies in `self_band`. Costs pool x k generations, once."""
    from conf_profile.teachers.parse import parse_answer
    from conf_profile.train.rewards import Rollout, self_agreement
    from conf_profile.train.student_eval import generate

    rl = settings.train.rl
    lo, hi = rl.self_band
    if not 0.0 <= lo <= hi <= 1.0:
        raise ConfProfileError(f"train.rl.self_band {rl.self_band} is not a band inside [0, 1].",
                               "Set train.rl.self_band: [lo, hi].")
    stats: dict = {"band": [lo, hi], "candidates": table.num_rows, "presample": rl.presample}
    if rl.presample == 0 or table.num_rows == 0:
        return table, {**stats, "presampled": 0, "kept": table.num_rows}
    pool = rl.presample_pool or 2 * rl.steps * rl.prompts_per_step
    order = np.random.default_rng(settings.train.seed).permutation(table.num_rows)[:pool]
    cand = table.take(pa.array(np.sort(order)))
    t0 = time.perf_counter()
    taxonomy = load_taxonomy(settings.taxonomy_path)
    texts = generate(model, tok, cand.column("document").to_pylist(), max_new_tokens, settings.train.eval.batch_size,
                     samples=max(2, rl.presample), temperature=rl.temperature, desc="presample")
    agree = np.array([self_agreement([Rollout(dict(p.labels), dict(p.confidences), p.error is None)
                                      for p in (parse_answer(t, taxonomy, confidence="probability") for t in per)],
                                     taxonomy, rl.rollout_unknown_weight) for per in texts])
    keep = (agree >= lo) & (agree <= hi)
    stats.update(presampled=cand.num_rows, kept=int(keep.sum()), dropped_too_easy=int((agree > hi).sum()),
                 dropped_too_hard=int((agree < lo).sum()), mean_agreement=round(float(agree.mean()), 4),
                 seconds=round(time.perf_counter() - t0, 1))
    return cand.filter(pa.array(keep)), stats


def stage1_voters(profile: str | None) -> str:
    """The Stage-1 profile as one voter per attribute, in the teacher-answers format {attr: [[label, conf, 1]]}.

    Why: raw teacher answers carry the teachers' majority-class bias that Stage 1 corrects (calibration and
    the balanced distribution); the Stage-1 profile is that corrected vote. Where Stage 1 abstained it votes
    `unknown` like any label: a rollout's `unknown` carries confidence 0 and so never wins the rollouts' vote,
    and without this voter every abstention scores 0 and GRPO teaches the student to guess (measured: coverage
    0.85 -> 0.96, F1 -3.6). An empty multi-label answer does not vote.

    The profile votes with full weight (`train.rl.teacher_vote_weight`), not weighted by its own confidence: it already
    is the confidence-weighted vote of every teacher, and its multi-label confidence (exact set match) is
    near 0, which would hand `interests` to the rollouts' self-vote (measured: interests 54 -> 46 F1)."""
    prof = json.loads(profile) if profile else {}
    return json.dumps({attr: [[v["label"], 1.0, 1.0]] for attr, v in prof.items()
                       if isinstance(v, dict) and v.get("label") not in (None, [])})


def validation_set(lake: Lake, interval: Interval, settings: Settings) -> validation.ValidationSet:
    """The SFT stage's label-free validation users (same share, same users), from labels/distill."""
    table, _ = load_distill(lake, interval)
    rows = table.select(["user_id", "document", "target"]).to_pylist()
    _, val_rows = validation.split_rows(rows, settings.train.sft.val_share)
    return validation.build_set(val_rows, load_taxonomy(settings.taxonomy_path), settings.train.sft.val_users)


def _dataset(table: pa.Table, voters: str = "teachers"):
    from datasets import Dataset

    rows = table.select(["user_id", "document", "teacher_answers", "stage1"]).to_pylist()
    answers = [stage1_voters(r["stage1"]) if voters == "stage1" else (r["teacher_answers"] or "{}") for r in rows]
    return Dataset.from_list([{"prompt": messages(r["document"]), "teacher_answers": a, "user_id": r["user_id"]}
                              for r, a in zip(rows, answers, strict=True)])


def _world_size() -> int:
    try:
        from accelerate import PartialState

        return PartialState().num_processes
    except Exception:  # noqa: BLE001 - no accelerate state: one process
        return 1


def grpo_config(settings: Settings, output_dir: str, max_completion_length: int):
    """GRPOConfig for our settings: one generation batch (prompts_per_step x G completions) per step."""
    from trl import GRPOConfig

    ts = settings.train
    g = ts.rl.num_generations
    per_device = g * max(1, ts.rl.prompts_per_step // _world_size())
    gpu = runtime.has_gpu()
    vllm = runtime.use_vllm()
    return GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=per_device,
        num_generations=g,
        max_completion_length=max_completion_length,
        temperature=ts.rl.temperature,
        top_k=0,
        learning_rate=ts.rl.lr,
        lr_scheduler_type="constant",
        max_steps=ts.rl.steps,
        beta=ts.rl.beta,
        loss_type=ts.rl.loss_type,
        reward_weights=list(ts.rl.reward_weights),
        logging_steps=max(1, min(5, ts.rl.steps)),
        save_strategy="no",
        report_to="none",
        disable_tqdm=not progress.enabled(),
        seed=ts.seed,
        use_vllm=vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.3,
        bf16=gpu,
        use_cpu=not gpu,
        activation_checkpointing=False,
        dataloader_num_workers=0,
    )


def rl_candidates(lake: Lake, interval: Interval, settings: Settings) -> tuple[pa.Table, int, np.ndarray]:
    """The RL prompts GRPO may draw from: labels/rl_prompts without evaluation users (dropped again) and without
    the label-free validation users. With a teacher budget these are the users the teachers never saw.
    Returns (table, eval users dropped, validation mask over the rows read)."""
    table, dropped_eval = load_rl_prompts(lake, interval, Split.of(settings))
    held = validation.validation_mask(table.column("user_id"), settings.train.sft.val_share)
    return table.filter(pa.array(~held)), dropped_eval, held  # validation users never train, in SFT or here


def fingerprint(lake: Lake, interval: Interval, settings: Settings) -> str:
    """Identity of a GRPO run: the SFT model it starts from, the RL prompts, and the settings that shape it
    (the RL section, the seed, the validation share, the student preset). A rerun with the same identity
    returns the committed model instead of sampling again, so a rerun of a week registers no new version."""
    ts = settings.train
    shaping = {"rl": ts.rl.model_dump(), "seed": ts.seed, "val_share": ts.sft.val_share, "student": ts.student,
               "preset": repr(student.PRESETS.get(ts.student))}
    h = hashlib.sha256()
    for rel in (student.model_dir(interval, "sft"), RunLayout(interval).rl_prompts):
        h.update(f"{rel}\x1f{lake.fingerprint(rel)}\x1e".encode())
    h.update(json.dumps(shaping, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def train_rl(lake: Lake, interval: Interval, settings: Settings) -> dict:
    """GRPO on runs/<key>/labels/rl_prompts from models/sft; saves models/rl."""
    from trl import GRPOTrainer

    t0 = time.perf_counter()
    runtime.setup_torch(settings)
    ts = settings.train
    taxonomy = load_taxonomy(settings.taxonomy_path)
    table, dropped_eval, held = rl_candidates(lake, interval, settings)
    rl_rel = student.model_dir(interval, "rl")
    fp = fingerprint(lake, interval, settings) if lake.is_committed(student.model_dir(interval, "sft")) else None
    done = lake.manifest(rl_rel).get("meta", {}) if lake.is_committed(rl_rel) else {}
    if fp is not None and done.get("fingerprint") == fp:  # same SFT model, prompts and settings: rerunning gives the committed model
        return {"stage": "rl", "interval": str(interval), "path": lake.uri_of(rl_rel), **done, "status": "skipped",
                "dropped_eval_users": dropped_eval, "seconds": round(time.perf_counter() - t0, 1)}
    labelled = pc.is_valid(table.column("stage1_confidence"))
    kept, filt = difficulty_filter(table.filter(labelled), ts.rl.conf_band)
    sft_path = student.resolve("sft", settings, lake, interval, cache=runtime.work_dir(settings, interval, "rl-base"))
    model, tok = student.load(sft_path, for_training=True)
    unlabelled = table.filter(pc.invert(labelled))
    self_filt = None
    if unlabelled.num_rows:  # users outside the teacher budget: the student's own difficulty
        own, self_filt = self_difficulty_filter(model, tok, unlabelled, settings, answer_budget(tok, taxonomy))
        model.train()
        kept = pa.concat_tables([kept, own.cast(kept.schema)]) if kept.num_rows else own
    if kept.num_rows < ts.rl.prompts_per_step:
        raise ConfProfileError(
            f"Only {kept.num_rows} RL prompts lie in the confidence band {list(ts.rl.conf_band)} "
            f"({filt['dropped_too_easy']} too easy, {filt['dropped_too_hard']} too hard"
            + (f"; own agreement band {list(ts.rl.self_band)}: {self_filt['kept']} kept" if self_filt else "") + ").",
            "Widen train.rl.conf_band / train.rl.self_band or lower train.rl.prompts_per_step.")
    work = runtime.work_dir(settings, interval, "rl")
    args = grpo_config(settings, str(work / "checkpoints"), answer_budget(tok, taxonomy))
    priors = class_priors(kept.column("stage1").to_pylist(), taxonomy) if ts.rl.prior_power > 0 else None
    rewards = ConfidenceRewards(taxonomy, ts.rl.teacher_vote_weight, control=ts.rl.reward == "random", seed=ts.seed,
                                priors=priors, prior_power=ts.rl.prior_power,
                                unknown_weight=ts.rl.rollout_unknown_weight)
    vset = validation_set(lake, interval, settings) if ts.rl.val_every else None
    val_cb = validation.validation_callback(vset, tok, taxonomy, ts.rl.val_every, 0, 0.0,
                                            ts.eval.batch_size) if vset is not None and len(vset) else None
    trainer = GRPOTrainer(model=model, reward_funcs=rewards.functions(), args=args, train_dataset=_dataset(kept, ts.rl.voters),
                          processing_class=tok, callbacks=[runtime.stage_logger("rl"), *([val_cb] if val_cb else [])])
    params = {"rl.steps": ts.rl.steps, "rl.lr": ts.rl.lr, "rl.num_generations": ts.rl.num_generations,
              "rl.prompts_per_step": ts.rl.prompts_per_step, "rl.conf_band": list(ts.rl.conf_band),
              "rl.teacher_vote_weight": ts.rl.teacher_vote_weight, "rl.voters": ts.rl.voters, "rl.beta": ts.rl.beta,
              "rl.loss_type": ts.rl.loss_type, "rl.reward": ts.rl.reward, "rl.prior_power": ts.rl.prior_power, "rl.temperature": ts.rl.temperature,
              "rl.reward_weights": list(ts.rl.reward_weights), "rl.use_vllm": args.use_vllm,
              "rl.self_band": list(ts.rl.self_band), "rl.presample": ts.rl.presample,
              "rl.rollout_unknown_weight": ts.rl.rollout_unknown_weight}
    runtime.log_params(params)
    runtime.quiet_stdout(trainer)
    result = trainer.train()
    val = None
    if val_cb is not None:
        val_cb.restore(trainer.model)  # the best validated RL step, not necessarily the last
        val = val_cb.summary()

    n_kept = kept.num_rows
    meta = {"base": "sft", "steps": trainer.state.global_step, "prompts_kept": n_kept,
            "prompts_with_stage1": filt["kept"], "prompts_unlabelled": n_kept - filt["kept"],
            "best_step": val["best_step"] if val else trainer.state.global_step,
            "val_score": (val["best"] or {}).get("score") if val else None, "held_out_users": int(held.sum()),
            "prompts_dropped": table.num_rows - n_kept, "train_seconds": round(time.perf_counter() - t0, 1),
            "fingerprint": fp,
            **{k.split(".", 1)[1]: v for k, v in params.items()}}
    student.save_final(trainer, tok, work / "final", lake, student.model_dir(interval, "rl"), meta, sft_path)
    logs = [h for h in trainer.state.log_history if "reward" in h]
    curve = {k: [round(h[k], 4) for h in logs if k in h] for k in
             ("reward", "rewards/agreement/mean", "rewards/format/mean", "rewards/calibration/mean", "entropy")}
    summary = {"stage": "rl", "interval": str(interval), "path": lake.uri_of(student.model_dir(interval, "rl")),
               **meta, "difficulty_filter": filt, "self_difficulty_filter": self_filt,
               "dropped_eval_users": dropped_eval, "validation": val,
               "reward_first": curve["reward"][0] if curve["reward"] else None,
               "reward_last": curve["reward"][-1] if curve["reward"] else None, "curves": curve,
               "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
               "seconds": round(time.perf_counter() - t0, 1)}
    runtime.log_metrics({"rl.seconds": summary["seconds"], "rl.prompts_kept": n_kept})
    return summary
