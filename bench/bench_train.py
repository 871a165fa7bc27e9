"""Stage-2 throughput on CPU for the default student: SFT steps, GRPO steps, evaluation generation.

Each number is a median over steps (or batches) of one run, with a baseline measured in the same run:
- SFT: ours (our pre-split BPE tokenizer, LM head scored only at label positions: runtime.compact_logprobs_on_cpu)
  vs TRL's default on CPU (every position scored) and vs a GPT-2-style byte-level BPE of the same vocabulary size
  (same model config, same examples) — the split decides how many tokens every example and answer costs;
- GRPO: ours vs TRL's default LM head on CPU, seconds per step (prompts_per_step x num_generations rollouts)
  and rollout tokens/s, from the student after the SFT steps above (a barely trained student writes long rollouts: this is close to the worst case);
- evaluation: length-sorted batched greedy generation vs one user at a time;
- self-consistency: answering with the confidence-weighted vote over k=4 samples vs greedy (users/s).
Data: a small simulated lake run through the real Stage-1 commands (simulate .. aggregate).
Run: `python -m bench.bench_train [--users N]` (prints one JSON object; the load average is part of it,
because this machine is shared and numbers under load are slower).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import trl.trainer.utils as trl_utils
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, TrainerCallback

from conf_profile.cli import main as cli
from conf_profile.config import Settings
from conf_profile.storage import Lake
from conf_profile.taxonomy import load_taxonomy
from conf_profile.train import runtime, student
from conf_profile.train.data import eval_users, load_distill, messages
from conf_profile.train.rewards import ConfidenceRewards
from conf_profile.train.rl import _dataset as rl_dataset
from conf_profile.train.rl import grpo_config
from conf_profile.train.sft import _dataset as sft_dataset
from conf_profile.train.sft import prepare_base
from conf_profile.train.student_eval import answer, answer_budget, generate
from conf_profile.train.tokenizer import CHAT_TEMPLATE, IM_END, IM_START, PAD, SPECIAL_TOKENS

TRL_DEFAULT_HEAD = trl_utils._use_triton  # captured before runtime.setup_torch patches it


def lm_head(compact: bool) -> None:
    """Ours (compact: only label positions through the LM head on CPU) or TRL's CPU default (every position)."""
    trl_utils._use_triton = TRL_DEFAULT_HEAD
    if compact:
        runtime.compact_logprobs_on_cpu()


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


def make_lake(root: Path, users: int) -> tuple[Lake, object, Settings]:
    lake_uri = str(root / "lake")
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["simulate", "--lake", lake_uri, "--users", str(users), "--weeks", "1", "--json"]) == 0
        for cmd in ("validate", "documents", "label", "aggregate"):
            assert cli([cmd, "--lake", lake_uri, "--json"]) == 0, cmd
    settings = Settings.load(lake=lake_uri)
    settings.data_dir = root
    lake = Lake.from_settings(settings)
    from conf_profile.data.extract import latest_interval

    return lake, latest_interval(lake), settings


def gpt2_style_base(texts: list[str], like: Path, out: Path) -> Path:
    """The baseline: same model config, GPT-2's byte-level pre-split instead of ours."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    cfg = AutoConfig.from_pretrained(like)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS,
                                                       min_frequency=2, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   additional_special_tokens=[IM_START])
    fast.chat_template = CHAT_TEMPLATE
    cfg.vocab_size = len(fast)
    cfg.eos_token_id, cfg.pad_token_id = fast.eos_token_id, fast.pad_token_id
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = fast.eos_token_id, fast.pad_token_id
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def sft_steps(base: Path, rows: list[dict], settings: Settings, out: Path, max_steps: int) -> dict:
    from trl import SFTConfig, SFTTrainer

    model, tok = student.load(base, for_training=True)
    ds, _ = sft_dataset(rows, tok, settings.train.sft.max_length)
    timer = StepTimer()
    args = SFTConfig(output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=settings.train.sft.batch_size,
                     learning_rate=settings.train.sft.lr, lr_scheduler_type="cosine", assistant_only_loss=True,
                     max_length=settings.train.sft.max_length, save_strategy="no", report_to="none",
                     disable_tqdm=True, logging_steps=max_steps, seed=0, **runtime.device_args())
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[timer])
    runtime.quiet_stdout(trainer)
    trainer.train()
    trainer.save_model(str(out / "final"))
    tok.save_pretrained(out / "final")
    n_tok = [len(tok.apply_chat_template(messages(r["document"], r["target"]), tokenize=True, return_dict=True)["input_ids"])
             for r in rows]
    ans_tok = [len(tok(r["target"], add_special_tokens=False)["input_ids"]) for r in rows]
    step = statistics.median(timer.times[1:] or timer.times)
    per_example = statistics.mean(n_tok)
    return {"median_step_s": round(step, 3), "examples_per_s": round(settings.train.sft.batch_size / step, 1),
            "tokens_per_s": round(settings.train.sft.batch_size * per_example / step),
            "tokens_per_example": round(per_example, 1), "answer_tokens": round(statistics.mean(ans_tok), 1),
            "steps": len(timer.times)}


def grpo_steps(model_dir: Path, lake: Lake, interval, settings: Settings, out: Path, steps: int) -> dict:
    from trl import GRPOTrainer

    from conf_profile.train.data import load_rl_prompts

    tax = load_taxonomy(settings.taxonomy_path)
    model, tok = student.load(model_dir, for_training=True)
    settings.train.rl.steps = steps
    args = grpo_config(settings, str(out), answer_budget(tok, tax))
    table, _ = load_rl_prompts(lake, interval)
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=ConfidenceRewards(tax, 1.0).functions(), args=args,
                          train_dataset=rl_dataset(table), processing_class=tok, callbacks=[timer])
    runtime.quiet_stdout(trainer)
    trainer.train()
    lens = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    step = statistics.median(timer.times[1:] or timer.times)
    n = settings.train.rl.prompts_per_step * settings.train.rl.num_generations
    mean_len = statistics.mean(lens) if lens else float("nan")
    return {"median_step_s": round(step, 3), "rollouts_per_step": n, "mean_completion_tokens": round(mean_len, 1),
            "rollout_tokens_per_s": round(n * mean_len / step), "steps": len(timer.times)}


def generation(model_dir: Path, lake: Lake, interval, settings: Settings, users: int, baseline_users: int) -> dict:
    tax = load_taxonomy(settings.taxonomy_path)
    docs, _ = eval_users(lake, interval, users)
    texts = docs.column("document").to_pylist()
    model, tok = student.load(model_dir)
    budget = answer_budget(tok, tax)
    t = time.perf_counter()
    generate(model, tok, texts, budget, settings.train.eval.batch_size)
    batched = time.perf_counter() - t
    one = []
    for d in texts[:baseline_users]:
        t = time.perf_counter()
        generate(model, tok, [d], budget, 1)
        one.append(time.perf_counter() - t)
    return {"users": len(texts), "batched_users_per_s": round(len(texts) / batched, 1),
            "one_at_a_time_users_per_s": round(1 / statistics.median(one), 1),
            "speedup": round(len(texts) / batched * statistics.median(one), 1), "max_new_tokens": budget}


def self_consistency(model_dir: Path, lake: Lake, interval, settings: Settings, users: int, k: int = 4,
                     repeats: int = 3) -> dict:
    """The cost of answering with the k-sample vote (train.eval.answer_samples: k) vs greedy: users/s
    (median of `repeats`) of evaluate.answer over the same users, and the ratio."""
    tax = load_taxonomy(settings.taxonomy_path)
    docs, _ = eval_users(lake, interval, users)
    texts = docs.column("document").to_pylist()
    model, tok = student.load(model_dir)
    budget = answer_budget(tok, tax)
    out = {}
    for name, n in (("greedy", 1), (f"vote_k{k}", k)):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            answer(model, tok, texts, tax, budget, settings.train.eval.batch_size, answer_samples=n)
            times.append(time.perf_counter() - t)
        out[f"{name}_users_per_s"] = round(len(texts) / statistics.median(times), 1)
    out["cost_ratio"] = round(out["greedy_users_per_s"] / out[f"vote_k{k}_users_per_s"], 2)
    return {"users": len(texts), "k": k, **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--sft-steps", type=int, default=12)
    ap.add_argument("--grpo-steps", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    out: dict = {"load_avg_start": round(os.getloadavg()[0], 2), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        lake, interval, settings = make_lake(root, a.users)
        rows = load_distill(lake, interval)[0].to_pylist()
        base = prepare_base(lake, interval, settings, rows)
        texts = [r["document"] for r in rows] + [r["target"] for r in rows]
        baseline = gpt2_style_base(texts, base, root / "gpt2-base")
        lm_head(compact=True)
        ours = sft_steps(base, rows, settings, root / "sft-ours", a.sft_steps)
        theirs = sft_steps(baseline, rows, settings, root / "sft-gpt2", max(4, a.sft_steps // 2))
        lm_head(compact=False)
        trl_head = sft_steps(base, rows, settings, root / "sft-trl-head", max(4, a.sft_steps // 2))
        out["sft"] = {"ours": ours, "gpt2_split_baseline": theirs, "trl_cpu_head_baseline": trl_head,
                      "speedup_vs_gpt2_split": round(ours["examples_per_s"] / theirs["examples_per_s"], 2),
                      "speedup_vs_trl_cpu_head": round(ours["examples_per_s"] / trl_head["examples_per_s"], 2)}
        model = root / "sft-ours" / "final"
        grpo_trl = grpo_steps(model, lake, interval, settings, root / "grpo-trl", a.grpo_steps)
        lm_head(compact=True)
        grpo_ours = grpo_steps(model, lake, interval, settings, root / "grpo", a.grpo_steps)
        out["grpo"] = {"ours": grpo_ours, "trl_cpu_head_baseline": grpo_trl,
                       "speedup_vs_trl_cpu_head": round(grpo_trl["median_step_s"] / grpo_ours["median_step_s"], 2)}
        out["generation"] = generation(root / "sft-ours" / "final", lake, interval, settings, 128, 16)
        out["self_consistency"] = self_consistency(root / "sft-ours" / "final", lake, interval, settings, 128)
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
