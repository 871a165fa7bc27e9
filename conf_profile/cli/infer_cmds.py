"""`conf-profile infer-shard`: profile one user shard of a day with a pinned model version (what an inference
pod runs); `conf-profile infer-export`: the champion's HF folder on local disk, for `vllm serve`."""

from __future__ import annotations

import argparse
import os

from conf_profile.cli import Result, settings_from_args


def register(sub, common) -> None:
    p = sub.add_parser(
        "infer-shard", parents=[common], help="profile one user shard of a day (daily inference, one pod)",
        description="Build the day's documents of one user shard and profile them with the given registered "
        "model version and the inference backend of the settings (or --backend); commits "
        "profiles/dt=<day>/shard-<i>/ (reused when current). The inference DAG's `profile_done` task then "
        "writes the day's manifest over every shard.")
    p.add_argument("--interval", required=True, metavar="DAY..NEXT", help="the day, e.g. 2026-11-10..2026-11-11")
    p.add_argument("--shard", type=int, required=True, metavar="I", help="the shard, 0 .. labels.shards-1")
    p.add_argument("--model-version", required=True, metavar="V", help="the registered model version to use")
    p.add_argument("--backend", choices=["local", "vllm", "openai"], help="default: inference.backend")
    p.add_argument("--samples", type=int, help="answers voted per user (default: inference.samples)")
    p.set_defaults(handler=cmd_infer_shard)

    e = sub.add_parser("infer-export", parents=[common], help="export a registered student as an HF folder",
                       description="Download a registered student (default: the champion) from MLflow and write "
                       "its plain HF folder (config, weights, tokenizer with the chat template) to --out, "
                       "replacing what was there: what `vllm serve` of the student server loads.")
    e.add_argument("--model", help="models:/ URI or HF folder (default: models:/<mlflow.model_name>@champion)")
    e.add_argument("--out", required=True, help="destination folder")
    e.set_defaults(handler=cmd_infer_export)


def cmd_infer_shard(args: argparse.Namespace) -> Result:
    from conf_profile.config.params import env_var
    from conf_profile.errors import ConfProfileError
    from conf_profile.stages import runner

    # Overrides go through the settings' own environment layer, so they are validated like any setting.
    if args.backend:
        os.environ[env_var("inference.backend")] = args.backend
    if args.samples is not None:
        if args.samples < 1:
            raise ConfProfileError(f"--samples {args.samples} must be at least 1.", "Pass --samples 1 for greedy.")
        os.environ[env_var("inference.samples")] = str(args.samples)
    out = runner.run("infer_profiles", interval=args.interval, config=args.config, lake=args.lake,
                     tracking=False, shard=args.shard, model_version=args.model_version)
    text = (f"Profiles of shard {out['shard']} for {out['interval']}: {out['status']}, "
            f"{out.get('users') or 0:,} users")
    if out.get("failed_users"):
        text += f", {out['failed_users']:,} left out ({', '.join(out.get('failure_reasons') or {})})"
    return Result(out, f"{text} -> {out['path']}")


def cmd_infer_export(args: argparse.Namespace) -> Result:
    import shutil
    import tempfile
    from pathlib import Path

    from conf_profile.train import student

    settings = settings_from_args(args)
    ref = args.model or f"models:/{settings.mlflow.model_name}@champion"
    out = Path(args.out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conf-profile-export-") as tmp:
        folder = student.resolve(ref, settings, cache=Path(tmp) / "dl")
        staged = out.with_name(out.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(folder, staged)
        shutil.rmtree(out, ignore_errors=True)  # replaced only once the new copy is whole
        staged.rename(out)
    files = sorted(p.name for p in out.iterdir())
    return Result({"model": ref, "out": str(out), "files": files}, f"{ref} -> {out} ({len(files)} files)")
