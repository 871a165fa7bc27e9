"""F1 against the teacher budget, with and without GRPO, at equal compute (method.md 2.3, docs/training.md).

One simulated week goes through Stage 1 once per budget (teachers label only the budgeted users; the rest
become the RL prompts), then per seed: SFT on the labelled users, GRPO on the unlabelled ones, and, for equal
compute, an SFT run whose example budget is raised by what GRPO cost (GRPO's seconds x SFT's examples/s of
the same run). Every row is scored by `conf-profile evaluate` (the only reader of gold). Budget `all` is
today's pipeline (no budget: GRPO on the labelled users with the Stage-1 voter), the baseline.

Run: `python -m bench.bench_teacher_budget --out /tmp/tb [--users 2500] [--budgets 0.25,0.5,all]
[--seeds 13,14] [--sft-budget 6000] [--rl-steps 30] [--eval-users 300] [--jobs 2] [--no-extra]
[--generations 8] [--presample-pool 64] [--val-every 200] [--unknown-weight 0]`; GRPO keeps its last step here
(`train.rl.val_every: 0`, validation costs time), SFT validates on 64 users;
prints one JSON object (rows, medians of RL - SFT per budget, load average) and writes `results.json` and
`table.md` under --out. Each (budget, seed) runs as CLI subprocesses in its own lake copy, `--jobs` at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

INTERVAL = "2026-11-02..2026-11-09"


def cli(lake: Path, *args: str, config: Path | None = None, env: dict | None = None) -> dict:
    cmd = [sys.executable, "-m", "conf_profile.cli", *args, "--lake", str(lake), "--json"]
    if config is not None:
        cmd += ["--config", str(config)]
    p = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, **(env or {}), "CONF_PROFILE_PROGRESS": "0"})
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout)


def config(path: Path, work: Path, budget: str, seed: int, a: argparse.Namespace, sft_budget: int) -> Path:
    cfg: dict = {"train": {"seed": seed, "threads": 1, "work_dir": str(work),
                           "sft": {"budget_examples": sft_budget, "val_every": a.val_every, "val_users": 64},
                           "rl": {"steps": a.rl_steps, "rollout_unknown_weight": a.unknown_weight,
                                  "num_generations": a.generations, "presample_pool": a.presample_pool,
                                  "val_every": 0},
                           "eval": {"users": a.eval_users, "plots": False}}}
    if budget != "all":
        cfg["labels"] = {"teacher_budget": {"share": float(budget)}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def stage1(out: Path, budget: str, a: argparse.Namespace) -> tuple[Path, dict]:
    lake = out / f"b{budget}" / "stage1"
    if lake.exists():
        shutil.rmtree(lake)
    shutil.copytree(out / "base", lake)
    cfg = config(out / f"b{budget}" / "stage1.yaml", out / f"b{budget}" / "work-stage1", budget, 13, a, a.sft_budget)
    t0 = time.perf_counter()
    lab = cli(lake, "label", "--interval", INTERVAL, config=cfg)
    agg = cli(lake, "aggregate", "--interval", INTERVAL, config=cfg)
    return lake, {"label_users": lab.get("users"), "distill": agg["distill_records"], "rl_prompts": agg["rl_prompts"],
                  "teacher_budget": agg.get("teacher_budget"), "stage1_s": round(time.perf_counter() - t0, 1)}


def f1_row(ev: dict) -> dict:
    row = ev["rows"][0] if "rows" in ev else ev  # `evaluate --json` prints {"rows": [row]}; the eval file is the row
    def r(v, n):  # ECE is None when the student answered nothing
        return None if v is None else round(v, n)

    return {"f1": r(row["f1"], 2), "ece": r(row["ece"], 4), "coverage": r(row["coverage"], 3)}


def one(out: Path, src: Path, budget: str, seed: int, a: argparse.Namespace) -> dict:
    lake = out / f"b{budget}" / f"seed{seed}"
    if lake.exists():
        shutil.rmtree(lake)
    shutil.copytree(src, lake)
    cfg = config(lake.parent / f"seed{seed}.yaml", lake.parent / f"work-{seed}", budget, seed, a, a.sft_budget)
    sft = cli(lake, "train", "sft", "--interval", INTERVAL, "--no-resume", config=cfg)
    ev_sft = cli(lake, "evaluate", "--interval", INTERVAL, "--model", "sft", config=cfg)
    rl = cli(lake, "train", "rl", "--interval", INTERVAL, config=cfg)
    ev_rl = cli(lake, "evaluate", "--interval", INTERVAL, "--model", "rl", config=cfg)
    row = {"budget": budget, "seed": seed, "sft": f1_row(ev_sft), "rl": f1_row(ev_rl),
           "sft_steps": sft["steps"], "sft_s": sft["seconds"], "rl_s": rl["seconds"], "rl_steps": rl["steps"],
           "rl_prompts_kept": rl["prompts_kept"], "rl_unlabelled": rl.get("prompts_unlabelled"),
           "self_filter": rl.get("self_difficulty_filter"), "rl_reward": [rl.get("reward_first"), rl.get("reward_last")]}
    if a.extra:  # equal compute: SFT again with the examples GRPO's seconds would have bought
        per_s = sft["steps"] * 8 / max(sft["seconds"], 1e-6)
        extra = a.sft_budget + int(rl["seconds"] * per_s)
        lake2 = lake.parent / f"seed{seed}-extra"
        if lake2.exists():
            shutil.rmtree(lake2)
        shutil.copytree(src, lake2)
        cfg2 = config(lake.parent / f"seed{seed}-extra.yaml", lake.parent / f"work-{seed}-extra", budget, seed, a, extra)
        sft2 = cli(lake2, "train", "sft", "--interval", INTERVAL, "--no-resume", config=cfg2)
        ev2 = cli(lake2, "evaluate", "--interval", INTERVAL, "--model", "sft", "--name", "student:sft-extra",
                  config=cfg2)
        row.update(sft_extra=f1_row(ev2), sft_extra_budget=extra, sft_extra_steps=sft2["steps"])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def collect(out: Path, budgets: list[str], seeds: list[int]) -> tuple[list[dict], dict]:
    """Rows from what the lakes under --out hold now (the eval rows `conf-profile evaluate` wrote), for runs
    that were stopped before the end; a missing row is left out."""
    rows, s1 = [], {}
    key = INTERVAL.replace("..", "_")
    for b in budgets:
        labels = out / f"b{b}" / "stage1" / "runs" / key / "labels"
        s1[b] = {name: json.loads((labels / folder / "_manifest.json").read_text())["meta"]["records"]
                 for name, folder in (("distill", "distill"), ("rl_prompts", "rl_prompts"))}
        for seed in seeds:
            ev = out / f"b{b}" / f"seed{seed}" / "runs" / key / "eval"
            ex = out / f"b{b}" / f"seed{seed}-extra" / "runs" / key / "eval" / "student-sft-extra.json"
            if not (ev / "student-sft.json").exists() or not (ev / "student-rl.json").exists():
                continue
            row = {"budget": b, "seed": seed, "sft": f1_row(json.loads((ev / "student-sft.json").read_text())),
                   "rl": f1_row(json.loads((ev / "student-rl.json").read_text())), "rl_prompts_kept": 0}
            rl_meta = out / f"b{b}" / f"seed{seed}" / "runs" / key / "models" / "rl" / "_manifest.json"
            if rl_meta.exists():
                row["rl_prompts_kept"] = json.loads(rl_meta.read_text())["meta"].get("prompts_kept", 0)
            if ex.exists():
                row["sft_extra"] = f1_row(json.loads(ex.read_text()))
            rows.append(row)
    return rows, s1


def table(rows: list[dict], s1: dict) -> str:
    lines = ["| budget | labelled train users | RL prompts (kept) | seed | SFT F1 / ECE | RL F1 / ECE | RL − SFT | "
             "SFT + RL's compute F1 / ECE |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        info = s1[r["budget"]]
        ex = r.get("sft_extra")
        lines.append(f"| {r['budget']} | {info['distill']:,} | {info['rl_prompts']:,} ({r['rl_prompts_kept']:,}) | "
                     f"{r['seed']} | {r['sft']['f1']} / {r['sft']['ece']} | {r['rl']['f1']} / {r['rl']['ece']} | "
                     f"{r['rl']['f1'] - r['sft']['f1']:+.2f} | "
                     + (f"{ex['f1']} / {ex['ece']}" if ex else "—") + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--users", type=int, default=2500)
    ap.add_argument("--budgets", default="0.25,0.5,all")
    ap.add_argument("--seeds", default="13,14")
    ap.add_argument("--sft-budget", type=int, default=6000)
    ap.add_argument("--rl-steps", type=int, default=30)
    ap.add_argument("--eval-users", type=int, default=300)
    ap.add_argument("--unknown-weight", type=float, default=0.0)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--presample-pool", type=int, default=64)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-extra", dest="extra", action="store_false")
    ap.add_argument("--collect", action="store_true", help="only tabulate what the lakes under --out hold")
    a = ap.parse_args()
    out = Path(a.out)
    if a.collect:
        rows, s1 = collect(out, a.budgets.split(","), [int(x) for x in a.seeds.split(",")])
        print(table(rows, s1))
        return
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "base" / "runs").exists():
        base = out / "base"
        cli(base, "simulate", "--users", str(a.users), "--weeks", "1", "--start", INTERVAL[:10], "--seed", "7")
        cli(base, "validate", "--interval", INTERVAL)
        cli(base, "documents", "--interval", INTERVAL)
    budgets, seeds = a.budgets.split(","), [int(s) for s in a.seeds.split(",")]
    s1 = {}
    srcs = {}
    for b in budgets:
        srcs[b], s1[b] = stage1(out, b, a)
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda bs: one(out, srcs[bs[0]], bs[0], bs[1], a), [(b, s) for b in budgets for s in seeds]))
    gain = {b: statistics.median(r["rl"]["f1"] - r["sft"]["f1"] for r in rows if r["budget"] == b) for b in budgets}
    result = {"interval": INTERVAL, "users": a.users, "stage1": s1, "rows": rows, "median_rl_minus_sft": gain,
              "settings": vars(a) | {"out": str(out)}, "loadavg": os.getloadavg()}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "table.md").write_text(table(rows, s1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
