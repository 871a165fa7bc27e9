"""`conf-profile infer-shard`: profile one shard of a day's active users (the GPU pod of the inference DAG)."""

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
