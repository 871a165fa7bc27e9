"""infer-shard: profile one user shard of a day with a pinned model version (what an inference pod runs)."""

from __future__ import annotations

import argparse

from conf_profile.cli import Result


def register(sub, common) -> None:
    p = sub.add_parser(
        "infer-shard", parents=[common], help="profile one user shard of a day (daily inference, one pod)",
        description="Build the day's documents of one user shard and profile them with the given registered "
        "model version; commits profiles/dt=<day>/shard-<i>/ (reused when current). The inference DAG's "
        "`profile_done` task then writes the day's manifest over every shard.")
    p.add_argument("--interval", required=True, metavar="DAY..NEXT", help="the day, e.g. 2026-11-10..2026-11-11")
    p.add_argument("--shard", type=int, required=True, metavar="I", help="the shard, 0 .. labels.shards-1")
    p.add_argument("--model-version", required=True, metavar="V", help="the registered model version to use")
    p.set_defaults(handler=cmd_infer_shard)


def cmd_infer_shard(args: argparse.Namespace) -> Result:
    from conf_profile.stages import runner

    out = runner.run("infer_profiles", interval=args.interval, config=args.config, lake=args.lake,
                     tracking=False, shard=args.shard, model_version=args.model_version)
    return Result(out, f"Profiles of shard {out['shard']} for {out['interval']}: {out['status']}, "
                       f"{out.get('users') or 0:,} users -> {out['path']}")
