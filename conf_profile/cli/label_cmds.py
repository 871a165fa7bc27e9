"""Label command: run the configured teachers over one interval's documents, shard by shard."""

from __future__ import annotations

import argparse

from conf_profile.cli import Result, settings_from_args
from conf_profile.cli.data_cmds import add_interval_arg, resolve_interval


def register(sub, common) -> None:
    p = sub.add_parser(
        "label", parents=[common], help="label user documents with the configured teachers",
        description="Run every configured teacher (labels.teachers; lexicon on CPU, openai against any "
        "OpenAI-compatible server such as `vllm serve`, vllm offline on a GPU, hf local models) over the "
        "interval's documents. Output per teacher and shard under runs/<interval>/teachers/<teacher>/shard-<i>/; "
        "finished shards are skipped on rerun, failed ones redone. Bad model answers are kept as rows with "
        "an error reason.")
    add_interval_arg(p)
    p.add_argument("--teacher", metavar="NAME", help="only this teacher (default: all configured teachers)")
    p.add_argument("--shard", type=int, metavar="I", help="only this shard, 0 .. labels.shards-1 (default: all)")
    p.add_argument("--force", action="store_true", help="redo finished shards too")
    p.set_defaults(handler=cmd_label)


def cmd_label(args: argparse.Namespace) -> Result:
    from conf_profile.storage import Lake
    from conf_profile.teachers.labelling import label_interval
    from conf_profile.teachers.lexicon_file import check_lexicons

    settings = settings_from_args(args)
    check_lexicons(settings, args.teacher)
    lake = Lake.from_settings(settings)
    interval = resolve_interval(lake, args.interval, settings)
    shards = [args.shard] if args.shard is not None else None
    summary = label_interval(lake, interval, settings, teacher=args.teacher, force=args.force, shards=shards)
    text = format_summary(summary)
    if args.teacher is None and shards is None:  # every teacher and shard: commit the label stage
        from conf_profile.cli.data_cmds import run_stage

        summary["commit"] = run_stage(args, "label", part="commit")
        text += f"\nCommitted the label stage: {', '.join(summary['commit']['teachers'])}"
        if summary["commit"]["left_out"]:
            text += f" (LEFT OUT, incomplete: {', '.join(summary['commit']['left_out'])})"
    else:
        text += "\n(not committed: run without --teacher/--shard to commit the label stage)"
    return Result(summary, text)


def format_summary(summary: dict) -> str:
    lines = [f"Teacher labels for {summary['interval']}: {summary['users']:,} users with documents "
             f"({summary['shards']} shards, {summary['seconds']} s)"]
    for name, st in summary["teachers"].items():
        rate = st["errors"] / st["rows"] if st["rows"] else 0.0
        lines.append(
            f"  {name:<18} {st['backend']:<8} shards {st['shards_done']} done, {st['shards_skipped']} skipped"
            f"{', ' + str(st['shards_failed']) + ' failed' if st['shards_failed'] else ''}   "
            f"{st['users']:>9,} users {st['rows']:>11,} rows {st['errors']:>9,} errors ({rate:.1%})")
    if summary["paths"]:
        lines.append(f"Output: {next(iter(summary['paths'].values())).rsplit('/', 1)[0]}/<teacher>/shard-<i>/")
    return "\n".join(lines)
