"""Scale: wall time and peak memory of each Stage-1 stage and of the daily inference at 2k, 8k and 32k users.

Why: the targets (issue "Scale out") are linear stages (time ratio <= 2.2x per doubling of users), peak memory
per shard flat, and Stage 1 at 32k users under a minute on 2 cores. Each size gets its own simulated lake
(one week, same seed and settings); every stage runs through the stage runner exactly as `conf-profile
<stage>` does (tracking off, mapped stages as plan -> items -> commit), each stage in its own subprocess so
its peak RSS (VmHWM) is its own. Inference: a tiny student trained for a fixed small number of SFT steps on
the smallest lake, registered in the bench's own MLflow store as champion, then the daily inference stages
(prepare, profiles) on one day of every inference lake. The baseline is the previous size of the same run:
per step the time ratio, that ratio per doubling of users (2.0x = linear) and divided by the users ratio
(1.0 = linear).

Run: `python -m bench.bench_scale [--sizes 2000,8000,32000] [--infer-sizes ...] [--train-steps 600] [--shards auto|N] [--profile]`
(prints one JSON object; `--profile` adds the top functions of each Stage-1 stage at the largest size).
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import json
import math
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = (2000, 8000, 32000)
# The daily inference at the same sizes (~30 users/s per process with a trained tiny student on an idle box, so
# 32k users take ~15 min; `--infer-sizes` makes it smaller).
INFER_SIZES = SIZES
STAGE1 = ("validate", "documents", "label", "aggregate")
INFER = ("infer_profiles",)  # mapped: prepare (validate, plan) -> a shard each -> commit
START = "2026-11-02"
WEEK = "2026-11-02..2026-11-09"
DAY = "2026-11-03..2026-11-04"
USERS_PER_SHARD = 2000  # --shards auto: one label shard per this many users, so a shard's size stays fixed
# Tiny student: SFT steps (fixed, no validation) before it is registered as champion. Enough for answers that
# are well-formed and end: a 40-step student ran every answer to the token budget (~2 users/s, not ~30).
TRAIN_STEPS = 600


# ---- helpers (cheap; tested in tests/test_bench_scale.py) ---------------------------------------------------
def config_text(root: Path, users: int, seed: int = 7, train_steps: int = TRAIN_STEPS) -> str:
    """The bench's config for one size: its own data folder (lake, MLflow store), one simulated week."""
    return (f"data_dir: {root}\n"
            f"simulate: {{users: {users}, weeks: 1, start: {START}, seed: {seed}}}\n"
            "compute: {retries: 0}\n"
            # small inference lakes: one simulated day of a few hundred users has few comments (cf. test_dags_e2e)
            "validation:\n  min_rows: {watch_events: 10, searches: 1, comments: 1, purchases: 0, profiles: 1}\n"
            "  critical_max_bad_fraction: 0.05\n"
            "train:\n  threads: 2\n"
            f"  sft: {{epochs: 0, min_steps: {train_steps}, budget_examples: 1, val_share: 0, save_steps: 1000}}\n")


def shards_for(users: int, shards: str | int | None) -> int | None:
    """`auto`: ceil(users / USERS_PER_SHARD) (fixed shard size); a number: that; None: the configured default."""
    if shards in (None, ""):
        return None
    if str(shards) == "auto":
        return max(1, math.ceil(users / USERS_PER_SHARD))
    return int(shards)


def scaling(rows: list[dict], key: str) -> list[dict]:
    """Per step between consecutive sizes: the ratio of `key` and that ratio divided by the users ratio
    (1.0 = linear; the target for time is <= 1.1, i.e. <= 2.2x per doubling)."""
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        if not a.get(key) or b.get(key) is None:
            continue
        ratio = b[key] / a[key]
        users = b["users"] / a["users"]
        out.append({"from": a["users"], "to": b["users"], "ratio": round(ratio, 2),
                    "per_doubling": round(ratio ** (1 / math.log2(users)), 2) if users > 1 else None,
                    "vs_linear": round(ratio / users, 2)})
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MiB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ---- one stage in this process (the child) ------------------------------------------------------------------
def run_stage(name: str, interval: str, config: str, params: dict[str, Any], kwargs: dict[str, Any]) -> dict:
    """One stage through the stage runner as the CLI runs it (tracking off); a mapped stage as plan -> every
    item -> commit. Returns the stage's own seconds (imports excluded) and per-item seconds."""
    from conf_profile.stages import runner
    from conf_profile.stages.context import make_context
    from conf_profile.stages.registry import get

    stage = get(name)
    ctx = make_context(interval, config, None, f"bench__{name}", params, tracking=False)
    t0 = time.perf_counter()
    items: list[dict] = []
    if stage.mapped:
        for item in runner.execute(stage, ctx, "plan"):
            t = time.perf_counter()
            runner.execute(stage, ctx, "fn", **_accepted(stage.fn, {**kwargs, **item}))
            items.append({**{k: str(v) for k, v in item.items()}, "s": round(time.perf_counter() - t, 2)})
        out = runner.execute(stage, ctx, "commit", **_accepted(stage.commit, kwargs))
    else:
        out = runner.execute(stage, ctx, "fn", **_accepted(stage.fn, kwargs))
    seconds = time.perf_counter() - t0
    return {"stage_s": round(seconds, 2), "items": items,
            "summary": {k: v for k, v in (out or {}).items() if isinstance(v, int | float | str) and len(str(v)) < 80}}


def _accepted(ref: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Only the keyword arguments the stage function takes (e.g. model_version), whatever its version."""
    if not ref or not kwargs:
        return {}
    from conf_profile.stages.registry import load

    sig = inspect.signature(load(ref))
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in sig.parameters}


def child(args: argparse.Namespace) -> int:
    params, kwargs = json.loads(args.params), json.loads(args.kwargs)
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    out = run_stage(args.child, args.interval, args.config, params, kwargs)
    if prof:
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
        out["profile"] = _trim_profile(buf.getvalue())
    out["peak_rss_mb"] = peak_rss_mb()
    print("BENCH_RESULT " + json.dumps(out, default=str), flush=True)
    return 0


def _trim_profile(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return [ln.replace(str(Path(__file__).resolve().parents[1]) + "/", "") for ln in lines[start:start + 26]]


# ---- the parent ---------------------------------------------------------------------------------------------
def measure(name: str, interval: str, config: Path, params: dict | None = None, kwargs: dict | None = None,
            profile: bool = False) -> dict:
    """Run one stage in a fresh interpreter; wall time of the subprocess, the stage's own time, peak RSS."""
    cmd = [sys.executable, "-m", "bench.bench_scale", "--child", name, "--interval", interval,
           "--config", str(config), "--params", json.dumps(params or {}), "--kwargs", json.dumps(kwargs or {})]
    if profile:
        cmd.append("--profile")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONF_PROFILE_")}
    env.update(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"stage {name} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), **json.loads(line[len("BENCH_RESULT "):])}


def simulate(root: Path, users: int, train_steps: int = TRAIN_STEPS) -> tuple[Path, float]:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(config_text(root, users, train_steps=train_steps))
    from conf_profile.config import Settings
    from conf_profile.simulate import simulate as sim
    from conf_profile.storage import Lake

    settings = Settings.load(str(config))
    t = time.perf_counter()
    sim(Lake.from_settings(settings, create=True), settings.simulate)
    return config, round(time.perf_counter() - t, 2)


def register_champion(config: Path, train_steps: int = TRAIN_STEPS) -> dict:
    """Train the tiny student for `train_steps` SFT steps on this lake and register it as champion in the
    lake's own MLflow store (what the refresh DAG's register + promote would leave behind)."""
    import mlflow

    from conf_profile.registry import models, promotion
    from conf_profile.stages.context import make_context
    from conf_profile.train import runtime

    t = time.perf_counter()
    train = measure("train_sft", WEEK, config)
    ctx = make_context(WEEK, str(config), tracking=False)
    tr = ctx.tr
    name = ctx.settings.mlflow.model_name
    local = ctx.lake.local_dir(ctx.layout.model("sft"), runtime.work_dir(ctx.settings, ctx.interval, "register-sft"))
    models.ensure_registered_model(tr.client, name)
    with mlflow.start_run(experiment_id=tr.experiment_id, run_name="bench_scale tiny student") as run:
        info = models.log_student(Path(local), ctx.settings.taxonomy_path, ctx.settings.compute.inference_batch_size)
    mv = tr.client.create_model_version(name, source=info.model_uri, run_id=run.info.run_id,
                                        model_id=getattr(info, "model_id", None))
    tr.client.set_registered_model_alias(name, promotion.CHAMPION, mv.version)
    return {"model_version": str(mv.version), "tracking_uri": tr.tracking_uri, "train_steps": train_steps,
            "train_wall_s": train["wall_s"], "setup_s": round(time.perf_counter() - t, 1)}


def bench(sizes: tuple[int, ...] = SIZES, shards: str | None = "auto", infer_sizes: tuple[int, ...] | None = INFER_SIZES,
          profile: bool = False, keep: str | None = None, train_steps: int = TRAIN_STEPS) -> dict:
    """Stage 1 at every size of `sizes`, inference at every size of `infer_sizes` (None: the same sizes;
    empty: none). The champion is trained on the smallest lake, which therefore always runs Stage 1."""
    infer_sizes = tuple(sizes if infer_sizes is None else infer_sizes)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the champion is logged in-process
    load_before = load_average()
    tmp = tempfile.TemporaryDirectory(prefix="bench_scale_") if keep is None else None
    base = Path(keep or tmp.name)
    champion: dict | None = None
    lakes = sorted(set(sizes) | set(infer_sizes))
    rows, infer_rows = [], []
    try:
        for users in lakes:
            config, sim_s = simulate(base / f"u{users}", users, train_steps)
            n = shards_for(users, shards)
            params = {} if n is None else {"shards": n}
            row: dict[str, Any] = {"users": users, "shards": n, "simulate_s": sim_s, "load_avg": load_average()}
            needs_champion = bool(infer_sizes) and champion is None
            if users in sizes or needs_champion:
                last = profile and users == max(sizes)
                for name in STAGE1:
                    print(f"  {users} users: {name} ...", file=sys.stderr, flush=True)
                    row[name] = measure(name, WEEK, config, params, profile=last)
                row["stage1_wall_s"] = round(sum(row[s]["wall_s"] for s in STAGE1), 2)
                row["stage1_stage_s"] = round(sum(row[s]["stage_s"] for s in STAGE1), 2)
                if users in sizes:
                    rows.append(row)
            if needs_champion:
                print(f"  {users} users: tiny student ...", file=sys.stderr, flush=True)
                champion = register_champion(config, train_steps)
            if users in infer_sizes:
                with config.open("a") as f:  # every size reads the one registry (the smallest lake's)
                    f.write(f"mlflow: {{tracking_uri: '{champion['tracking_uri']}'}}\n")
                irow: dict[str, Any] = {"users": users, "shards": n, "load_avg": load_average()}
                for name in INFER:
                    print(f"  {users} users: {name} ...", file=sys.stderr, flush=True)
                    irow[name] = measure(name, DAY, config, params, {"model_version": champion["model_version"]})
                irow["day_users"] = irow["infer_profiles"]["summary"].get("users")
                infer_rows.append(irow)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return summarise(rows, infer_rows, champion, load_before, shards)


def _table(rows: list[dict], stages: tuple[str, ...]) -> list[dict]:
    table = []
    for r in rows:
        entry: dict[str, Any] = {"users": r["users"], "shards": r["shards"], "load_avg": r["load_avg"]}
        for s in stages:
            entry[f"{s}_s"] = r[s]["stage_s"]
            entry[f"{s}_wall_s"] = r[s]["wall_s"]
            entry[f"{s}_rss_mb"] = r[s]["peak_rss_mb"]
        if "stage1_stage_s" in r:
            entry["stage1_s"], entry["stage1_wall_s"] = r["stage1_stage_s"], r["stage1_wall_s"]
        if "day_users" in r:
            entry["day_users"] = r["day_users"]
        table.append(entry)
    return table


def summarise(rows: list[dict], infer_rows: list[dict], champion: dict | None, load_before: list[float],
              shards: str | None) -> dict:
    table, itable = _table(rows, STAGE1), _table(infer_rows, INFER)
    ratios = {f"{s}_s": scaling(table, f"{s}_s") for s in (*STAGE1, "stage1")}
    ratios.update({f"{s}_rss_mb": scaling(table, f"{s}_rss_mb") for s in STAGE1})
    ratios.update({f"{s}_s": scaling(itable, f"{s}_s") for s in INFER})
    ratios.update({f"{s}_rss_mb": scaling(itable, f"{s}_rss_mb") for s in INFER})
    out: dict[str, Any] = {"sizes": [r["users"] for r in rows], "infer_sizes": [r["users"] for r in infer_rows],
                           "shards_option": shards, "cpus": os.cpu_count(), "load_avg_start": load_before,
                           "load_avg_end": load_average(), "table": table, "infer_table": itable,
                           "scaling": ratios, "champion": champion, "raw": rows + infer_rows}
    if rows:
        big = rows[-1]
        out["stage1_share_at_largest"] = {s: round(big[s]["stage_s"] / big["stage1_stage_s"], 3) for s in STAGE1}
        out["label_items_at_largest"] = big["label"]["items"]
        out["profiles"] = {s: big[s]["profile"] for s in STAGE1 if "profile" in big[s]}
    return out


def markdown(result: dict) -> str:
    """README tables: the stage's own seconds / peak RSS per stage and size, then the time ratio per doubling."""
    parts = []
    for key, stages, total in (("table", STAGE1, "stage1"), ("infer_table", INFER, None)):
        table = result.get(key) or []
        if not table:
            continue
        cols = [*stages, *([total] if total else [])]
        lines = ["| users | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
        for r in table:
            cells = [f"{r[f'{s}_s']:.1f} s / {r[f'{s}_rss_mb']:.0f} MB" for s in stages]
            if total:
                cells.append(f"{r['stage1_s']:.1f} s ({r['stage1_wall_s']:.1f} s with start-up)")
            users = f"{r['users']:,}" + (f" ({r['day_users']:,} active that day)" if "day_users" in r else "")
            lines.append(f"| {users} | " + " | ".join(cells) + " |")
        per = [" / ".join(f"{x['per_doubling']:.2f}×" for x in result["scaling"].get(f"{s}_s", [])) or "–"
               for s in cols]
        lines.append("| time ratio per doubling | " + " | ".join(per) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--shards", default="auto", help="label shards: auto (one per 2,000 users), N, or '' (config)")
    p.add_argument("--infer-sizes", default=",".join(map(str, INFER_SIZES)),
                   help="users of the inference lakes ('' for none)")
    p.add_argument("--train-steps", type=int, default=TRAIN_STEPS, help="SFT steps of the champion for inference")
    p.add_argument("--profile", action="store_true", help="cProfile each Stage-1 stage at the largest size")
    p.add_argument("--keep", help="keep the lakes under this folder")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale.json"),
                   help="also write the JSON here (default bench/results/scale.json)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--interval", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    sizes = tuple(int(s) for s in args.sizes.split(",") if s)
    infer = tuple(int(s) for s in args.infer_sizes.split(",") if s)
    result = bench(sizes, args.shards or None, infer, args.profile, args.keep, args.train_steps)
    result["markdown"] = markdown(result)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    print(result["markdown"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
