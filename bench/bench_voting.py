"""Stage 1 voting vs crowd-kit (MajorityVote, Wawa, DawidSkene) on the same teacher answers, in one run.

Quality: headline macro-F1 (unknown = abstention, mean over attributes, points) against the known truth of a
synthetic set (`labels.synthetic.simulate_answers`: skewed priors, abstentions, a pull toward the majority
class, informative but uncalibrated confidences), optionally also on a simulated lake's teacher outputs
(`--lake`, single-label attributes, gold labels of all users). crowd-kit gets the non-unknown answers as
(task, worker, label) integer codes, one fit per attribute; tasks nobody answered are abstentions for
every method.

Speed, end to end from the same Arrow table (N users x 5 teachers x 8 attributes, default 200k users = 8M
answers; `--users 20000` for a quick run): ours includes encoding the table, crowd-kit includes building its
integer (task, worker, label) frames from it with Arrow kernels. Majority vs MajorityVote, our full calibrated
aggregation vs Wawa (at N) and DawidSkene (at `--ds-users`, it is slow). Medians of `repeats`, ratios.
Memory: peak RSS of a fresh process aggregating `--mem-users` (two sizes) shard by shard (`labels.stream`,
calibration on `--sample-users`) and, for comparison, the whole table at once.
Run: `python -m bench.bench_voting [--users N] [--lake PATH]` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.config import LabelSettings
from conf_profile.evaluate.metrics import macro_f1
from conf_profile.labels.aggregate import aggregate_ballots
from conf_profile.labels.ballots import Ballots, encode
from conf_profile.labels.vote import vote
from conf_profile.testing.teacher_answers import answers_to_table, bench_taxonomy, simulate_answers

N_TEACHERS = 5
N_ATTRS = 8


# ---- crowd-kit adapters -----------------------------------------------------------------------------------
def _crowdkit() -> dict[str, Callable[[pd.DataFrame], pd.Series]]:
    from crowdkit.aggregation import DawidSkene, MajorityVote, Wawa

    def wawa(df: pd.DataFrame) -> pd.Series:
        # Wawa.predict calls sklearn's check_is_fitted, which fails on scikit-learn >= 1.6 (no
        # __sklearn_tags__); this is Wawa's own predict step without that check.
        skills = Wawa().fit(df).skills_
        return MajorityVote().fit(df, skills=skills).labels_

    return {
        "crowdkit:MajorityVote": lambda df: MajorityVote().fit_predict(df),
        "crowdkit:Wawa": wawa,
        "crowdkit:DawidSkene": lambda df: DawidSkene(n_iter=100).fit_predict(df),
    }


def crowdkit_frames(b: Ballots) -> list[pd.DataFrame]:
    """Non-unknown single-label answers as crowd-kit wants them, one frame per attribute (crowd-kit has
    one label space per fit; pooling attributes would let DawidSkene answer one attribute with another's
    class): task = user x attribute, worker, label = global class column."""
    keep = ~b.abstain & (b.col >= 0)
    df = pd.DataFrame({"task": b.u[keep] * b.layout.n_attrs + b.a[keep], "worker": b.teacher[keep],
                       "label": b.col[keep]})
    attr = b.a[keep]
    return [df[attr == ai].reset_index(drop=True) for ai in b.layout.single_idx]


def run_crowdkit(fn: Callable[[pd.DataFrame], pd.Series], frames: list[pd.DataFrame]) -> pd.Series:
    return pd.concat([fn(f) for f in frames if len(f)])


def crowdkit_labels(b: Ballots, labels: pd.Series) -> np.ndarray:
    out = np.full((b.n_users, b.layout.n_attrs), -1, dtype=np.int64)
    task = labels.index.to_numpy().astype(np.int64)
    u, a = task // b.layout.n_attrs, task % b.layout.n_attrs
    out[u, a] = labels.to_numpy().astype(np.int64) - b.layout.offsets[a]
    return out


# ---- quality ----------------------------------------------------------------------------------------------
def headline_f1(b: Ballots, label: np.ndarray, truth: np.ndarray, has: np.ndarray) -> float:
    """Macro-F1 per single-label attribute (unknown = abstention), mean in points, over users with truth."""
    scores = []
    for ai in b.layout.single_idx:
        n_cls = int(b.layout.offsets[ai + 1] - b.layout.offsets[ai])
        m = has[:, ai]
        pred = np.zeros((m.sum(), n_cls), bool)
        gold = np.zeros((m.sum(), n_cls), bool)
        lab, tru = label[m, ai], truth[m, ai]
        pred[np.flatnonzero(lab >= 0), lab[lab >= 0]] = True
        gold[np.flatnonzero(tru >= 0), tru[tru >= 0]] = True
        f1 = macro_f1(pred, gold)
        if f1 is not None:
            scores.append(f1)
    return round(100 * float(np.mean(scores)), 2)


def quality(b: Ballots, truth: np.ndarray, has: np.ndarray, settings: LabelSettings) -> dict[str, float]:
    out: dict[str, float] = {}
    agg = aggregate_ballots(b, settings)
    out["ours:majority"] = headline_f1(b, agg.majority.label, truth, has)
    out["ours:weighted"] = headline_f1(b, agg.weighted.label, truth, has)
    out["ours:calibrated"] = headline_f1(b, agg.label, truth, has)
    frames = crowdkit_frames(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in _crowdkit().items():
            out[name] = headline_f1(b, crowdkit_labels(b, run_crowdkit(fn, frames)), truth, has)
    for t, name in enumerate(b.teachers):  # single teachers, for reference
        own = vote(b, "weighted", rows=b.teacher == t)
        out[f"teacher:{name}"] = headline_f1(b, own.label, truth, has)
    return out


def synthetic(n_users: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    tax = bench_taxonomy(N_ATTRS)
    answers, truth = simulate_answers(n_users, tax, N_TEACHERS, seed=seed)
    return answers_to_table(answers, tax), np.stack([truth[i] for i in range(N_ATTRS)], axis=1)


def lake_quality(path: str, settings: LabelSettings) -> dict:
    """The same comparison on a simulated lake's latest interval (teacher outputs + gold labels)."""
    from conf_profile.data.extract import latest_interval
    from conf_profile.gold import read_gold
    from conf_profile.labels.ballots import encode_labels
    from conf_profile.labels.io import read_teacher_outputs
    from conf_profile.storage import Lake
    from conf_profile.taxonomy import load_taxonomy

    lake = Lake.open(path)
    interval = latest_interval(lake)
    answers, _ = read_teacher_outputs(lake, interval, settings.shards)
    b = encode(answers, load_taxonomy(), settings.teachers)
    gold, has = encode_labels(read_gold(lake), b.layout, b.users)
    has &= ~b.layout.is_multi[None, :]
    return {"interval": str(interval), "users": b.n_users, "f1": quality(b, gold, has, settings)}


# ---- speed ------------------------------------------------------------------------------------------------
def _median_time(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    return _median_times(fn, repeats)[:2]


def _median_times(fn: Callable[[], object], repeats: int) -> tuple[float, list[float], float]:
    """(median wall s, wall runs, median CPU s of this process). CPU time is reported too because the
    benchmark box is shared: wall time there measures the neighbours as much as the code."""
    times, cpu = [], []
    for _ in range(repeats):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), [round(t, 3) for t in times], statistics.median(cpu)


def arrow_to_crowdkit(table: pa.Table, unknown: str = "unknown") -> list[pd.DataFrame]:
    """crowd-kit's input built from the teacher-answer Arrow table the cheapest way we know (timed): drop
    error rows and "unknown" answers, dictionary-encode users, teachers and labels to integer columns with
    Arrow kernels (crowd-kit is faster on integers than on strings), one (task, worker, label) frame per
    attribute."""
    t = table.filter(pc.is_null(table["error"]))
    first = pc.list_element(t["label"], 0)
    ok = pc.and_(pc.equal(pc.list_value_length(t["label"]), 1), pc.not_equal(first, unknown))
    t = t.select(["user_id", "teacher_id", "attribute"]).append_column("label", first).filter(ok)

    def codes(col: str) -> np.ndarray:
        return pc.dictionary_encode(t[col]).combine_chunks().indices.to_numpy()

    attr = codes("attribute")
    df = pd.DataFrame({"task": codes("user_id"), "worker": codes("teacher_id"), "label": codes("label")})
    return [df[attr == k].reset_index(drop=True) for k in range(int(attr.max(initial=-1)) + 1)]


def _ck_methods() -> dict[str, Callable[[pa.Table], pd.Series]]:
    return {name: (lambda table, fn=fn: run_crowdkit(fn, arrow_to_crowdkit(table)))
            for name, fn in _crowdkit().items()}


def time_end_to_end(table: pa.Table, settings: LabelSettings, repeats: int, ck_names: list[str]) -> dict:
    """Every method from the same Arrow table: ours including the encoding, crowd-kit including building
    its frames. Stages are timed separately too (medians)."""
    tax = bench_taxonomy(N_ATTRS)
    ours = {
        "ours:majority": lambda: vote(encode(table, tax), "majority"),
        "ours:calibrated": lambda: aggregate_ballots(encode(table, tax), settings),
    }
    out: dict[str, dict] = {}
    for name, fn in ours.items():
        med, runs, cpu = _median_times(fn, repeats)
        out[name] = {"s": round(med, 3), "runs_s": runs, "cpu_s": round(cpu, 3)}
    held = [encode(table, tax)]
    stages = {"encode_s": lambda: encode(table, tax), "majority_vote_s": lambda: vote(held[0], "majority"),
              "aggregate_ballots_s": lambda: aggregate_ballots(held[0], settings),
              "crowdkit_frames_s": lambda: arrow_to_crowdkit(table)}
    out["stages"] = {k: round(_median_time(f, repeats)[0], 3) for k, f in stages.items()}
    held.clear()
    ck = _ck_methods()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ck_names:
            med, runs, cpu = _median_times(lambda name=name: ck[name](table), repeats)
            out[name] = {"s": round(med, 3), "runs_s": runs, "cpu_s": round(cpu, 3)}
    return out


# ---- memory -----------------------------------------------------------------------------------------------
def _shard_tables(n_users: int, shard_users: int, seed: int):
    """Synthetic shards generated one at a time (user ids unique across shards), so the child process holds
    only what the aggregation holds."""
    tax = bench_taxonomy(N_ATTRS)
    for k, start in enumerate(range(0, n_users, shard_users)):
        answers, _ = simulate_answers(min(shard_users, n_users - start), tax, N_TEACHERS, seed=seed + k)
        t = answers_to_table(answers, tax)
        ids = pc.binary_join_element_wise(pa.scalar(f"s{k:04d}-"), t["user_id"], "")
        yield t.set_column(0, "user_id", ids)


def _peak_kb() -> int:
    """Peak RSS in KiB: VmHWM (resettable), else ru_maxrss."""
    import resource

    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(mode: str, n_users: int, shard_users: int, sample_users: int, seed: int = 0) -> dict:
    """Run in a fresh process: peak RSS of one aggregation ("stream": shard by shard, calibration on
    `sample_users`; "whole": the week's table at once, calibration on everyone)."""
    from conf_profile.labels.stream import aggregate_stream

    try:  # a forked child starts with its parent's high-water mark; reset it (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _peak_kb()
    t0 = time.perf_counter()
    decided_cells = 0
    if mode == "stream":
        settings = LabelSettings(teachers=[], calibration_sample_users=sample_users)
        _, parts = aggregate_stream(lambda: _shard_tables(n_users, shard_users, seed), bench_taxonomy(N_ATTRS),
                                    settings)
        for _, agg in parts:  # a real caller writes each shard out here
            decided_cells += int((agg.label >= 0).sum())
    else:
        settings = LabelSettings(teachers=[], calibration_sample_users=n_users)
        table = pa.concat_tables(list(_shard_tables(n_users, shard_users, seed)))
        b = encode(table, bench_taxonomy(N_ATTRS))
        del table
        decided_cells = int((aggregate_ballots(b, settings).label >= 0).sum())
    peak = _peak_kb()
    return {"mode": mode, "users": n_users, "peak_rss_mb": round(peak / 1024, 1),
            "rss_after_imports_mb": round(base / 1024, 1), "s": round(time.perf_counter() - t0, 2),
            "decided_cells": decided_cells}


def measure_memory(sizes: list[int], shard_users: int, sample_users: int) -> list[dict]:
    out = []
    for mode in ("stream", "whole"):
        for n in sizes:
            cmd = [sys.executable, "-m", "bench.bench_voting", "--memory-child", mode, str(n), str(shard_users),
                   str(sample_users)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out.append(json.loads(res.stdout))
    return out


def bench(users: int = 200_000, quality_users: int = 20_000, ds_users: int = 20_000, repeats: int = 3,
          seed: int = 0, lake: str | None = None, mem_users: tuple[int, ...] = (100_000, 400_000),
          shard_users: int = 50_000, sample_users: int = 50_000) -> dict:
    settings = LabelSettings(teachers=[])
    # quality on the synthetic set with known truth
    table, truth = synthetic(quality_users, seed)
    b = encode(table, bench_taxonomy(N_ATTRS))
    result: dict = {"synthetic_quality": {"users": quality_users, "teachers": N_TEACHERS, "attributes": N_ATTRS,
                                          "headline_f1": quality(b, truth, np.ones_like(truth, bool), settings)}}
    if lake:
        result["lake_quality"] = lake_quality(lake, LabelSettings())
    del table, b
    speed: dict = {}
    for n, names in ((users, ["crowdkit:MajorityVote", "crowdkit:Wawa"]), (ds_users, ["crowdkit:DawidSkene"])):
        table = synthetic(n, seed)[0]
        r = time_end_to_end(table, settings, repeats, names)
        del table
        gc.collect()
        ratios = {}
        for name in names:
            ours = "ours:majority" if name.endswith("MajorityVote") else "ours:calibrated"
            ratios[f"{name} / {ours}"] = round(r[name]["s"] / r[ours]["s"], 2)
            ratios[f"{name} / {ours} (CPU time)"] = round(r[name]["cpu_s"] / r[ours]["cpu_s"], 2)
        speed[f"{n}_users"] = {"answers": n * N_TEACHERS * N_ATTRS, "times": r, "ratio_crowdkit_over_ours": ratios}
    result["speed"] = {"repeats": repeats, **speed,
                       "note": "end to end from the same Arrow table: ours includes encoding it, crowd-kit "
                               "includes building its integer (task, worker, label) frames from it with Arrow "
                               "dictionary kernels. MajorityVote is compared with our majority vote; Wawa and "
                               "DawidSkene with our full calibrated aggregation (majority + weighted + LOTO + "
                               "reliability-weighted vote + isotonic maps + EM priors). Ratio > 1: ours faster."}
    if mem_users:
        result["memory"] = {"shard_users": shard_users, "calibration_sample_users": sample_users,
                            "runs": measure_memory(list(mem_users), shard_users, sample_users)}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_voting", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=200_000, help="speed comparison size (quick run: 20000)")
    p.add_argument("--quality-users", type=int, default=20_000)
    p.add_argument("--ds-users", type=int, default=20_000, help="DawidSkene is compared at this size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mem-users", default="100000,400000", help="two sizes for peak memory ('' = skip)")
    p.add_argument("--shard-users", type=int, default=50_000)
    p.add_argument("--sample-users", type=int, default=50_000, help="calibration sample when streaming")
    p.add_argument("--lake", help="also compare on this simulated lake's latest interval")
    p.add_argument("--memory-child", nargs=4, metavar=("MODE", "USERS", "SHARD_USERS", "SAMPLE_USERS"),
                   help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.memory_child:
        mode, *sizes = a.memory_child
        print(json.dumps(memory_child(mode, *map(int, sizes))))
        return 0
    mem = tuple(int(x) for x in a.mem_users.split(",") if x)
    print(json.dumps(bench(a.users, a.quality_users, a.ds_users, a.repeats, lake=a.lake, mem_users=mem,
                           shard_users=a.shard_users, sample_users=a.sample_users), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
