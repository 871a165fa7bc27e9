"""Weekly warm start vs cold, at the same compute, over consecutive weeks (issue 4/5, docs/training.md).

One simulated lake of `--weeks` weeks goes through Stage 1 once. The warm chain is the weekly refresh as it
runs in production: `conf-profile run --no-airflow --force-promote` week after week in one MLflow store, so
every week's SFT starts from the previous week's champion (`train.warm_start: auto`; week 1 has none and is
cold). The cold row of every later week trains the same week from scratch (`train sft --warm-start cold`) at
the same SFT budget (`train.sft.warm_budget_examples: 0`, the default). Both are scored by the evaluate stage
/ `conf-profile evaluate` on all gold evaluation users, the users the calibrated vote of the report card is
scored on, so the student-vs-vote gap is read on the same users. GRPO is off (`--rl-steps 0`) to compare SFT
alone. Force-promote: the chain measures what warm starts give; whether the gate would promote each week is
the gate's business (at this size a week's ECE may keep a challenger, and the next week then starts from the
older champion).

Run: `python -m bench.bench_warm_start --out /tmp/ws [--users 2500] [--weeks 3] [--seed 7] [--train-seed 13]
[--sft-budget 24000] [--jobs 2]`; prints one JSON object and writes `results.json` and `table.md` under --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from bench.bench_teacher_budget import cli, f1_row

START = dt.date(2026, 11, 2)


def weeks(n: int) -> list[str]:
    return [f"{START + dt.timedelta(7 * i)}..{START + dt.timedelta(7 * (i + 1))}" for i in range(n)]


def key(interval: str) -> str:
    return interval.replace("..", "_")


def settings_file(path: Path, a: argparse.Namespace) -> Path:
    path.write_text(yaml.safe_dump({"train": {
        "seed": a.train_seed, "threads": 1, "rl": {"steps": a.rl_steps},
        "sft": {"budget_examples": a.sft_budget, "warm_budget_examples": a.warm_budget},
        "eval": {"users": 0, "plots": False}}}))
    return path


def sft_meta(lake: Path, interval: str) -> dict:
    meta = json.loads((lake / "runs" / key(interval) / "models" / "sft" / "_manifest.json").read_text())["meta"]
    return {k: meta.get(k) for k in ("warm_start_from", "steps", "best_step", "val_score", "train_seconds")}


def vote_f1(lake: Path, interval: str) -> float | None:
    card = lake / "runs" / key(interval) / "report.json"
    if not card.exists():
        return None
    return next((round(r["f1"], 2) for r in json.loads(card.read_text())["rows"] if r["name"] == "vote:calibrated"), None)


def warm_chain(out: Path, base: Path, ivs: list[str], cfg: Path) -> list[dict]:
    lake = out / "warm" / "lake"
    shutil.rmtree(out / "warm", ignore_errors=True)
    shutil.copytree(base, lake)
    rows = []
    for i, iv in enumerate(ivs):
        t0 = time.perf_counter()
        cli_env(out / "warm" / "data", lake, "run", "--no-airflow", "--interval", iv, "--force-promote", config=cfg)
        ev = json.loads((lake / "runs" / key(iv) / "eval" / "student-sft.json").read_text())
        rows.append({"week": i + 1, "interval": iv, "start": "warm" if i else "cold (no champion)",
                     **f1_row(ev), "vote": vote_f1(lake, iv), **sft_meta(lake, iv),
                     "run_s": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def cold_row(out: Path, base: Path, i: int, iv: str, cfg: Path) -> dict:
    lake = out / f"cold-w{i + 1}" / "lake"
    shutil.rmtree(lake.parent, ignore_errors=True)
    shutil.copytree(base, lake)
    t0 = time.perf_counter()
    data = lake.parent / "data"
    cli_env(data, lake, "train", "sft", "--interval", iv, "--warm-start", "cold", "--no-resume", config=cfg)
    ev = cli_env(data, lake, "evaluate", "--interval", iv, "--model", "sft", config=cfg)
    row = {"week": i + 1, "interval": iv, "start": "cold", **f1_row(ev), **sft_meta(lake, iv),
           "run_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def cli_env(data_dir: Path, lake: Path, *args: str, config: Path) -> dict:
    """Each chain its own data dir (MLflow store, work dirs); cold starts need no registry at all."""
    return cli(lake, *args, config=config, env={"CONF_PROFILE_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"})


def table(rows: list[dict]) -> str:
    lines = ["| week | start | SFT steps (best) | label-free val score | gold F1 | ECE | calibrated vote | F1 − vote | "
             "train s |", "|---|---|---|---|---|---|---|---|---|"]
    votes = {r["week"]: r["vote"] for r in rows if r.get("vote") is not None}
    for r in sorted(rows, key=lambda r: (r["week"], r["start"] != "cold")):
        v = votes.get(r["week"])
        lines.append(f"| {r['week']} | {r['start']} | {r['steps']} ({r['best_step']}) | {r['val_score']} | {r['f1']} | "
                     f"{r['ece']} | {v} | {(r['f1'] - v) if v is not None else float('nan'):+.1f} | "
                     f"{r['train_seconds']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--users", type=int, default=2500)
    ap.add_argument("--weeks", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7, help="simulator seed (the data)")
    ap.add_argument("--train-seed", type=int, default=13)
    ap.add_argument("--sft-budget", type=int, default=24000)
    ap.add_argument("--warm-budget", type=int, default=0, help="train.sft.warm_budget_examples (0 = the cold budget)")
    ap.add_argument("--rl-steps", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ivs = weeks(a.weeks)
    base = out / "base"
    cfg = settings_file(out / "settings.yaml", a)
    if not (base / "runs").exists():  # Stage 1 once for every week (teachers and votes do not depend on the student)
        shutil.rmtree(base, ignore_errors=True)
        data = out / "stage1-data"
        cli_env(data, base, "simulate", "--users", str(a.users), "--weeks", str(a.weeks), "--start", str(START),
                "--seed", str(a.seed), config=cfg)
        for iv in ivs:
            cli_env(data, base, "run", "--no-airflow", "--interval", iv, "--stages", "aggregate", config=cfg)
    with ThreadPoolExecutor(a.jobs) as pool:
        warm = pool.submit(warm_chain, out, base, ivs, cfg)
        cold = [pool.submit(cold_row, out, base, i, iv, cfg) for i, iv in enumerate(ivs) if i > 0]
        rows = warm.result() + [c.result() for c in cold]
    result = {"users": a.users, "weeks": ivs, "rows": rows, "settings": vars(a), "loadavg": os.getloadavg()}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "table.md").write_text(table(rows) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
