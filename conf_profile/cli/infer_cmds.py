"""`conf-profile infer-shard`: profile one shard of a day's active users (the GPU pod of the inference DAG);
`conf-profile infer-export`: the champion's HF folder on local disk, for `vllm serve` (the student server)."""

from __future__ import annotations

import argparse

from conf_profile.cli import Result, settings_from_args


def register(sub, common) -> None:
    p = sub.add_parser("infer-shard", parents=[common], help="profile one shard of a day's users with the champion",
                       description="Profile shard I of N of the day's committed documents (runs/<interval>/"
                       "documents) with one registered version of the student, with the inference backend of "
                       "the settings (or --backend); commits the predictions under "
                       "profiles/dt=<day>/_shards/shard-I-of-N. The inference DAG's GPU pods run this.")
    p.add_argument("--interval", required=True, metavar="START..END", help="the day, e.g. 2026-11-16..2026-11-17")
    p.add_argument("--shard", type=int, required=True, help="this shard's index, 0-based")
    p.add_argument("--shards", type=int, required=True, help="number of shards")
    p.add_argument("--model-version", required=True, help="the pinned version of mlflow.model_name")
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
    from conf_profile.errors import ConfProfileError
    from conf_profile.inference.pod import run_shard
    from conf_profile.intervals import Interval
    from conf_profile.storage import Lake

    settings = settings_from_args(args)
    if args.backend:
        settings.inference.backend = args.backend
    if args.samples is not None:
        if args.samples < 1:
            raise ConfProfileError(f"--samples {args.samples} must be at least 1.", "Pass --samples 1 for greedy.")
        settings.inference.samples = args.samples
    if args.shards < 1:
        raise ConfProfileError(f"--shards {args.shards} must be at least 1.", "Pass the number of shards.")
    lake = Lake.from_settings(settings)
    s = run_shard(settings, lake, Interval.parse(args.interval), args.shard, args.shards, args.model_version)
    return Result(s, s.pop("summary_text", ""))


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
