"""Training commands: `train sft`, `train rl`, `evaluate` (Stage 2)."""

from __future__ import annotations

import argparse
import shlex

from conf_profile.cli import Result, settings_from_args
from conf_profile.cli.data_cmds import add_interval_arg, resolve_interval, run_stage


def register(sub, common) -> None:
    p = sub.add_parser("train", help="train the student: sft, then rl (confidence-guided GRPO)",
                       description="Train the student on one interval's Stage-1 labels. `sft` distils the "
                       "distillation set (TRL SFTTrainer, resumable checkpoints); `rl` runs confidence-guided GRPO "
                       "from the SFT model. Models go to runs/<interval>/models/<stage>/.")
    tsub = p.add_subparsers(dest="stage", metavar="STAGE", required=True)

    s = tsub.add_parser("sft", parents=[common], help="supervised distillation (TRL SFTTrainer)",
                        description="Fine-tune the student (train.student: the 'tiny' preset, a local HF folder or "
                        "a models:/ URI) on runs/<interval>/labels/distill; resumes from the newest checkpoint of "
                        "an interrupted run with the same data and settings.")
    add_interval_arg(s)
    s.add_argument("--student", help="preset, HF folder or models:/ URI (default: train.student = tiny)")
    s.add_argument("--epochs", type=float, help="epochs (default: train.sft.epochs)")
    s.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    s.add_argument("--warm-start", choices=["auto", "champion", "cold"],
                   help="auto: continue the champion when compatible; champion: require it; cold: from scratch "
                   "(default: train.warm_start = auto)")
    s.add_argument("--launcher-command", metavar="CONFIG", choices=["single_gpu", "zero2", "zero3"],
                   help="print the `accelerate launch` command for a GPU pod with this config and exit")
    s.set_defaults(handler=cmd_sft)

    r = tsub.add_parser("rl", parents=[common], help="confidence-guided GRPO (TRL GRPOTrainer)",
                        description="GRPO from runs/<interval>/models/sft on the difficulty-filtered RL prompts, "
                        "rewarded by agreement with a confidence-weighted vote of the rollouts and the Stage-1 "
                        "profile (train.rl.voters: stage1) or raw teacher answers (teachers), a format reward and a "
                        "calibration term.")
    add_interval_arg(r)
    r.add_argument("--steps", type=int, help="GRPO steps (default: train.rl.steps)")
    r.add_argument("--teacher-vote-weight", type=float, help="weight of the Stage-1 voters in the quasi-ground truth (default: train.rl.teacher_vote_weight)")
    r.add_argument("--reward", choices=["confidence", "random"], help="'random' = the control experiment")
    r.add_argument("--launcher-command", metavar="CONFIG", choices=["single_gpu", "zero2", "zero3"],
                   help="print the `accelerate launch` command for a GPU pod with this config and exit")
    r.set_defaults(handler=cmd_rl)

    e = sub.add_parser("evaluate", parents=[common], help="score a student on the gold eval users",
                       description="Greedy answers of a student for the eval users, parsed and scored with the "
                       "shared metric (F1, coverage, ECE, valid JSON rate); writes the report-card row to "
                       "runs/<interval>/eval/<name>.json.")
    add_interval_arg(e)
    e.add_argument("--model", required=True, help="base | sft | rl (this run's models), an HF folder, or an MLflow "
                   "URI (models:/name@alias, runs:/...)")
    e.add_argument("--name", help="report-card row name (default: student:<model> for base/sft/rl)")
    e.add_argument("--samples", type=int, help="also report avg@k and maj@k over k sampled answers")
    e.set_defaults(handler=cmd_evaluate)


def _settings(args: argparse.Namespace):
    from conf_profile.config.params import apply

    return apply(settings_from_args(args), _overrides(args))


def _overrides(args: argparse.Namespace) -> dict:
    return {"train.student": getattr(args, "student", None), "train.sft.epochs": getattr(args, "epochs", None),
            "train.rl.steps": getattr(args, "steps", None),
            "train.rl.teacher_vote_weight": getattr(args, "teacher_vote_weight", None),
            "train.rl.reward": getattr(args, "reward", None),
            "train.warm_start": getattr(args, "warm_start", None)}


def _launcher(args: argparse.Namespace, stage: str, settings) -> Result:
    from conf_profile.intervals import Interval
    from conf_profile.train.sft import accelerate_command

    interval = Interval.parse(args.interval) if args.interval != "latest" else args.interval
    gpus = settings.compute.gpus if args.launcher_command != "single_gpu" else 1
    cmd = accelerate_command(stage, interval, args.launcher_command, lake_uri=settings.lake_uri, num_processes=gpus)
    return Result({"command": cmd}, shlex.join(cmd))


def cmd_sft(args: argparse.Namespace) -> Result:

    settings = _settings(args)
    if args.launcher_command:
        return _launcher(args, "sft", settings)
    s = run_stage(args, "train_sft", params=_overrides(args), resume=not args.no_resume)
    interval = s["interval"]
    resumed = f", resumed from {s['resumed_from']}" if s["resumed_from"] else ""
    text = (f"SFT {s['base']} on {s['train_users']:,} users of {interval}: {s['steps']} steps, {s['epochs']:g} epochs"
            f"{resumed}; final loss {_loss(s['final_loss'])}; {s['seconds']:.0f} s -> {s['path']}")
    if s.get("warm_start_from"):
        text += f"\n  warm start: {s['warm_start_from']}" + (f" ({s['warm_start_reason']})" if s.get("warm_start") else "")
    if s["dropped_too_long"]:
        text += f"\n  {s['dropped_too_long']} examples longer than train.sft.max_length were left out"
    return Result(s, text)


def cmd_rl(args: argparse.Namespace) -> Result:

    settings = _settings(args)
    if args.launcher_command:
        return _launcher(args, "rl", settings)
    s = run_stage(args, "train_rl", params=_overrides(args))
    interval = s["interval"]
    if s.get("status") == "skipped":  # same SFT model, prompts and settings: the committed model is the result
        return Result(s, f"GRPO on {interval}: unchanged since the committed model ({s['steps']} steps), "
                         f"not rerun -> {s['path']}")
    f = s["difficulty_filter"]
    text = (f"GRPO from sft on {interval}: {s['steps']} steps x {s['prompts_per_step']} prompts x "
            f"{s['num_generations']} rollouts; reward {s['reward_first']} -> {s['reward_last']}; "
            f"{s['seconds']:.0f} s -> {s['path']}\n"
            f"  difficulty band {f['band']}: kept {f['kept']:,} of {f['candidates']:,} users "
            f"({f['dropped_too_easy']:,} too easy, {f['dropped_too_hard']:,} too hard)")
    return Result(s, text)


def cmd_evaluate(args: argparse.Namespace) -> Result:
    from conf_profile.storage import Lake
    from conf_profile.train.student_eval import evaluate_model

    settings = _settings(args)
    lake = Lake.from_settings(settings)
    interval = resolve_interval(lake, args.interval, settings)
    name = args.name or (f"student:{args.model}" if args.model in ("base", "sft", "rl") else "student:custom")
    s = evaluate_model(lake, interval, settings, args.model, name, samples=args.samples)
    row = s["rows"][0]
    ece = "n/a" if row["ece"] is None else f"{row['ece']:.3f}"
    text = (f"{name} on {s['eval_users']} eval users of {interval}: F1 {row['f1']:.1f}, coverage "
            f"{row['coverage']:.2f}, ECE {ece}, valid JSON {row['valid_rate']:.1%} -> {s['path']}")
    if row.get("retried_users"):  # a retried answer is never passed off as a first answer
        text += (f"\n  {row['retried_users']} answers lacked attributes and were retried "
                 f"(train.eval.retry_invalid): valid JSON {row['valid_rate_first']:.1%} at first")
    if "sampling" in row:
        smp = row["sampling"]
        text += f"\n  sampled T=1: avg@{smp['k']} F1 {smp['avg_f1']:.1f}, maj@{smp['k']} F1 {smp['maj_f1']:.1f}"
    return Result(s, text)


def _loss(value: float | None) -> str:
    """The final loss, or why there is none (a run shorter than the logging interval logs no loss)."""
    return f"{value:.3f}" if value is not None else "not logged (fewer steps than the logging interval)"
