"""Data commands: simulate, validate, documents."""

from __future__ import annotations

import argparse
from datetime import date

from conf_profile.cli import Result, settings_from_args
from conf_profile.config import SimulateSettings
from conf_profile.intervals import Interval


def add_interval_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interval", default="latest", metavar="START..END",
        help="data interval, ISO dates, END exclusive (e.g. 2026-11-16..2026-11-23), or 'latest' (default): "
        "the newest full week in the lake",
    )


def resolve_interval(lake, text: str, settings=None) -> Interval:
    """`latest` = the newest full week of the source's first event table (settings.source), else parse."""
    from conf_profile.data.extract import latest_interval

    if text != "latest":
        return Interval.parse(text)
    return latest_interval(lake, *(settings.source.event_tables()[:1] if settings is not None else []))


def register(sub, common) -> None:
    p = sub.add_parser("simulate", parents=[common], help="write ProfileBench-style platform logs to the lake",
                       description="Simulate W weeks of a video platform's logs for N users (deterministic for a "
                       "seed): five raw tables hive-partitioned by date under raw/, gold labels apart under gold/.")
    sim = SimulateSettings()
    p.add_argument("--users", type=int, help=f"number of users (default: simulate.users = {sim.users})")
    p.add_argument("--weeks", type=int, help=f"number of weeks (default: simulate.weeks = {sim.weeks})")
    p.add_argument("--start", type=date.fromisoformat, help="first day, ISO date (default: Monday four weeks ago)")
    p.add_argument("--seed", type=int, help=f"random seed (default: simulate.seed = {sim.seed})")
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("validate", parents=[common], help="validate one interval with Great Expectations",
                       description="Validate one interval's raw tables (critical expectations stop the run; "
                       "warnings quarantine rows with a reason). Writes the report (JSON + HTML), the clean tables "
                       "and the quarantine under runs/<interval>/validation/.")
    add_interval_arg(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("documents", parents=[common], help="build one redacted text document per user",
                       description="Build one text document per user for the interval from the validated tables: "
                       "profile fields, watch history, searches, comments, purchases; PII redacted; user text "
                       "delimited as data; bounded by a character budget.")
    add_interval_arg(p)
    p.set_defaults(handler=cmd_documents)


def cmd_simulate(args: argparse.Namespace) -> Result:
    from conf_profile.simulate import simulate
    from conf_profile.storage import Lake

    settings = settings_from_args(args)
    sim = settings.simulate.model_copy(update={k: v for k, v in {
        "users": args.users, "weeks": args.weeks, "start": args.start, "seed": args.seed}.items() if v is not None})
    lake = Lake.from_settings(settings, create=True)  # its job: a new lake (folder or bucket)
    summary = simulate(lake, sim)
    text = (
        f"Simulated {summary['users']} users x {summary['weeks']} week(s) from {summary['start']} "
        f"(seed {summary['seed']}) into {lake.uri}\n"
        + "\n".join(f"  {t:<13} {n:>10,} rows" for t, n in summary["rows"].items())
        + f"\n  gold labels   {summary['gold_users']:>10,} users (under gold/, read only by evaluation)"
        + f"\nIntervals: {', '.join(summary['intervals'])}"
    )
    return Result(summary, text)


def run_stage(args: argparse.Namespace, name: str, params: dict | None = None, **kwargs):
    """A CLI stage command = that stage through the stage runner (stage manifest included), no MLflow."""
    from conf_profile.stages import runner

    return runner.run(name, interval=args.interval, config=args.config, lake=args.lake, tracking=False,
                      params=params, **kwargs)


def cmd_validate(args: argparse.Namespace) -> Result:
    summary = run_stage(args, "validate")
    return Result(summary, summary.pop("summary_text", ""))


def cmd_documents(args: argparse.Namespace) -> Result:
    summary = run_stage(args, "documents")
    text = (
        f"Built {summary['documents']:,} user documents for {summary['interval']} "
        f"(median {summary['median_chars']} chars, budget {summary['char_budget']}; "
        f"{summary['pii_redactions']:,} PII redactions) -> {summary['path']}"
    )
    if summary.get("declared_gender_dropped"):
        text += (f"\n{summary['declared_gender_dropped']:,} declared genders outside documents.gender_values were "
                 "left out of the documents (not copied into prompts).")
    if summary.get("users_skipped"):
        text += (f"\n{summary['users_skipped']:,} users seen in the clean tables got no document (nothing left to "
                 "show after redaction and the budget).")
    if summary.get("rows_without_user"):
        text += f"\n{summary['rows_without_user']:,} event rows named no known user and were not used."
    if summary.get("truncated_users"):
        text += f"\n{summary['truncated_users']:,} documents were cut at documents.char_budget."
    return Result(summary, text)
