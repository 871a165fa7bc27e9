"""Stage 1 aggregation and the report card: aggregate, report."""

from __future__ import annotations

import argparse

from conf_profile.cli import Result, settings_from_args
from conf_profile.cli.data_cmds import add_interval_arg, resolve_interval
from conf_profile.layout import RunLayout


def register(sub, common) -> None:
    p = sub.add_parser("aggregate", parents=[common], help="vote and calibrate teacher answers into quasi-labels",
                       description="Confidence-weighted voting over the interval's teacher answers, label-free "
                       "calibration (leave-one-teacher-out isotonic map, EM class priors, class caps), then the "
                       "distillation set and RL prompts (evaluation users left out). Writes runs/<interval>/labels/.")
    add_interval_arg(p)
    p.set_defaults(handler=cmd_aggregate)

    p = sub.add_parser("report", parents=[common], help="score teachers, votes and students on the gold eval users",
                       description="The report card: F1 (macro, per attribute and headline), coverage and ECE of every "
                       "teacher, the three votes and any evaluated students, on the gold evaluation users. Writes "
                       "runs/<interval>/report.json and reliability diagrams under runs/<interval>/plots/.")
    add_interval_arg(p)
    p.set_defaults(handler=cmd_report)


def cmd_aggregate(args: argparse.Namespace) -> Result:
    from conf_profile.cli.data_cmds import run_stage

    s = run_stage(args, "aggregate")
    interval = s["interval"]
    errors = sum(s["excluded_error_rows"].values())
    invalid = sum(s["excluded_invalid_rows"].values())
    text = (
        f"Aggregated {s['answers']:,} teacher answers for {s['users']:,} users ({interval}); "
        f"excluded {errors:,} error rows"
        + (f" ({', '.join(f'{t}: {n}' for t, n in s['excluded_error_rows'].items())})" if errors else "")
        + (f" and {invalid:,} malformed rows" if invalid else "")
        + f".\n  calibration: {s['calibration']} ({s['calibration_points']:,} points"
        + (f", {s['gold_dev_users']} gold dev users" if s["gold_dev_users"] else "") + ")"
        + f"\n  distillation set: {s['distill_records']:,} records ({s['capped_out']:,} capped out, "
        f"{s['eval_users']:,} eval users left out) -> {s['paths']['distill']}"
        + f"\n  RL prompts: {s['rl_prompts']:,} -> {s['paths']['rl_prompts']}"
        + f"\n  votes -> {s['paths']['votes']}"
        + (f"\n  LEFT OUT (incomplete labels): {', '.join(s['left_out_teachers'])}" if s["left_out_teachers"] else "")
    )
    return Result(s, text)


def cmd_report(args: argparse.Namespace) -> Result:
    from conf_profile.evaluate import format_report, report_interval
    from conf_profile.storage import Lake

    settings = settings_from_args(args)
    lake = Lake.from_settings(settings)
    interval = resolve_interval(lake, args.interval, settings)
    report = report_interval(lake, interval, settings)
    text = format_report(report) + f"\n-> {lake.uri_of(RunLayout(interval).report)}"
    return Result(report, text)
