"""`conf-profile`: one command per pipeline stage, a shared contract.

Every command takes --lake, --config, --json and --debug; prints a short human summary (or, with --json,
exactly one JSON object on stdout); and on a user error exits non-zero with one paragraph naming the fix
(a traceback only with --debug). Command modules live beside this file and expose `register(sub, common)`;
a handler returns a `Result` (its summary dict plus the human text).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conf_profile import __version__
from conf_profile.errors import ConfProfileError, LakeError

# Command modules, in the order `--help` lists them. Each adds its subcommand(s).
COMMAND_MODULES = [
    "conf_profile.cli.data_cmds",  # simulate, validate, documents
    "conf_profile.cli.import_cmds",  # import (a platform's own export into a raw table)
    "conf_profile.cli.label_cmds",  # label (teachers)
    "conf_profile.cli.lexicon_cmds",  # lexicon init (starter lexicon for a taxonomy)
    "conf_profile.cli.aggregate_cmds",  # aggregate, report
    "conf_profile.cli.train_cmds",  # train sft|rl, evaluate
    "conf_profile.cli.run_cmds",  # run (the whole weekly refresh)
    "conf_profile.cli.infer_cmds",  # infer-shard (one shard of the daily profiles: the inference pod)
    "conf_profile.cli.ops_cmds",  # registry/promote, doctor, taxonomy
    "conf_profile.cli.config_cmds",  # config
]


@dataclass
class Result:
    """What a command returns: `summary` is printed as JSON with --json; `text` otherwise."""

    summary: dict[str, Any]
    text: str = ""
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[argparse.Namespace], Result]


class UsageError(ConfProfileError):
    """A command line argparse refuses (unknown option, bad value); exit 2 like argparse."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (main() prints it: as one JSON object too with --json)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}.", f"See `{self.prog} --help`.")


def common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--lake", metavar="URI", help="lake root: a folder or s3://bucket/prefix (default: data/lake)")
    g.add_argument("--config", metavar="FILE", help="YAML settings file (default: embedded defaults; env CONF_PROFILE_CONFIG)")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of the human summary")
    g.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conf-profile",
        description=(
            "Label-free user profiling, refreshed weekly: simulate or read platform logs, validate them, build "
            "user documents, label them with teacher LLMs, vote and calibrate, train a student (SFT + "
            "confidence-guided GRPO), evaluate, register and promote it in MLflow."
        ),
        epilog="Start with `conf-profile run` (the whole weekly pipeline on embedded defaults). "
        "Every command accepts --json for scripts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"conf-profile {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_parser()
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # stage not built yet
            raise
        module.register(sub, common)
    return parser


def settings_from_args(args: argparse.Namespace, **overrides: Any):
    """Settings with --config and --lake applied (CLI flags beat env and file)."""
    from conf_profile.config import Settings

    return Settings.load(getattr(args, "config", None), lake=getattr(args, "lake", None), **overrides)


# Errors of the machine, not of conf-profile: a folder that cannot be written, a full disk. Each gets one
# paragraph naming the path and the settings that choose where outputs go, instead of "likely a bug".
_STORAGE_ERRNOS = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                   errno.EPERM: "operation not permitted", errno.ENOSPC: "no space left on the device",
                   errno.EDQUOT: "disk quota exceeded"}
_ERRNO_IN_TEXT = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)  # pyarrow's filesystem errors carry it as text
_QUOTED_PATH = re.compile(r"'(/[^']*)'")


def storage_error(exc: BaseException) -> ConfProfileError | None:
    """The user-facing form of an OSError caused by where outputs are written (None for anything else)."""
    if not isinstance(exc, OSError) or isinstance(exc, BrokenPipeError):
        return None
    code = exc.errno
    if code not in _STORAGE_ERRNOS:
        found = _ERRNO_IN_TEXT.search(str(exc))
        code = int(found.group(1)) if found else None
    if code not in _STORAGE_ERRNOS:
        return None
    path = exc.filename or ((m := _QUOTED_PATH.search(str(exc))) and m.group(1)) or "a file"
    why = _STORAGE_ERRNOS[code]
    fix = ("Free space on that device (or point the lake and data_dir at another device) and rerun the same command: finished "
           "stages are kept." if code in (errno.ENOSPC, errno.EDQUOT) else
           "Point the lake (--lake, `lake`, CONF_PROFILE_LAKE) or data_dir at a folder you can write, or make "
           "this one writable, and rerun: conf-profile writes its outputs under runs/ of the lake and MLflow's "
           "store under data_dir; raw/ is only read.")
    return LakeError(f"Cannot write {path}: {why}.", fix)


def _format_error(exc: BaseException) -> str:
    if isinstance(exc, ConfProfileError):
        text = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        text = "Interrupted. Finished stages are kept; rerun the same command to resume."
    else:
        text = (
            f"Unexpected error: {type(exc).__name__}: {exc}. This is likely a bug in conf-profile; "
            "rerun with --debug for the traceback and report it."
        )
    # No breaks at hyphens or inside long words: commands and paths in the fix must stay copy-pasteable.
    lines = textwrap.wrap("error: " + text, width=100, break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines) if len(text) < 2000 else "error: " + text


def main(argv: list[str] | None = None) -> int:
    """Run one command. A reader that goes away (`conf-profile ... | head`) ends it quietly, as the Python
    docs recommend for SIGPIPE: stdout is pointed at /dev/null so the final flush cannot raise again."""
    try:
        return _main(argv)
    except BrokenPipeError:
        if not _stdout_broken():
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _stdout_broken() -> bool:
    """Whether our stdout is a pipe whose reader has gone (not a BrokenPipeError from some socket)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() (Windows) or no real stdout: assume ours
        return True


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        if "--json" in argv:
            print(json.dumps({"ok": False, "error": "UsageError", "message": str(exc)}))
        print(_format_error(exc), file=sys.stderr)
        return exc.exit_code
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    debug = bool(getattr(args, "debug", False))
    as_json = bool(getattr(args, "json", False))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from conf_profile import progress

    progress.set_quiet(as_json)
    try:
        result: Result = args.handler(args)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the CLI contract: one readable paragraph
        if isinstance(exc, BrokenPipeError) and _stdout_broken():
            raise  # the reader of our stdout went away: main() ends quietly
        if debug:
            traceback.print_exc()
        exc = storage_error(exc) or exc
        code = getattr(exc, "exit_code", 1) if isinstance(exc, ConfProfileError) else 1
        if as_json:
            payload: dict[str, Any] = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
            report = getattr(exc, "report", None)
            if report:
                payload["report"] = report
            print(json.dumps(payload, default=str))
        print(_format_error(exc), file=sys.stderr)
        return code or 1
    if as_json:
        print(json.dumps({"ok": result.exit_code == 0, **result.summary}, default=str))
    else:
        print(result.text or json.dumps(result.summary, indent=2, default=str))
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
