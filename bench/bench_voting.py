"""Stage 1 voting vs crowd-kit (MajorityVote, Wawa, DawidSkene) on the same teacher answers, in one run.

Quality: headline macro-F1 (unknown = abstention, mean over attributes, points) against the known truth of a
synthetic set (`labels.synthetic.simulate_answers`: skewed priors, abstentions, a pull toward the majority
class, informative but uncalibrated confidences), optionally also on a simulated lake's teacher outputs
(`--lake`, single-label attributes, gold labels of all users). crowd-kit gets the non-unknown answers as
(task, worker, label) integer codes, one fit per attribute; tasks nobody answered are abstentions for
every method.

Speed: wall time for N users x 5 teachers x 8 attributes (default 1M users = 40M answers). Ours is timed
end to end from the Arrow table (encoding included) and split into the plain votes and the full calibrated
aggregation (votes, leave-one-teacher-out, reliability weights, isotonic maps, EM prior shift). crowd-kit
is timed on a 100k-user set; a method whose 10x extrapolation exceeds `max_ck_s` (5 min) is reported as an
extrapolation (labelled), otherwise it is also run at full size. Medians over `repeats`.
Run: `python -m bench.bench_voting [--users N] [--lake PATH]` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

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
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), [round(t, 2) for t in times]


def time_ours(table: pa.Table, settings: LabelSettings, repeats: int) -> dict:
    """Ours, timed in stages; the Arrow table is dropped (by the caller's `del`) before the votes run."""
    tax = bench_taxonomy(N_ATTRS)
    enc, _ = _median_time(lambda: encode(table, tax), repeats)
    b = encode(table, tax)
    table = None  # noqa: F841 - the caller holds the last reference; drop ours before the votes
    maj, _ = _median_time(lambda: vote(b, "majority"), repeats)
    wv, _ = _median_time(lambda: vote(b, "weighted"), repeats)
    full, full_runs = _median_time(lambda: aggregate_ballots(b, settings), repeats)
    return {"encode_s": round(enc, 2), "majority_vote_s": round(maj, 2), "weighted_vote_s": round(wv, 2),
            "calibrated_aggregation_s": round(full, 2), "runs_calibrated_s": full_runs,
            "end_to_end_majority_s": round(enc + maj, 2), "end_to_end_calibrated_s": round(enc + full, 2)}


def time_crowdkit(n_small: int, n_full: int, seed: int, repeats: int, max_ck_s: float) -> dict:
    table, _ = synthetic(n_small, seed)
    frames = crowdkit_frames(encode(table, bench_taxonomy(N_ATTRS)))
    del table
    out: dict[str, dict] = {}
    full_df = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in _crowdkit().items():
            small, runs = _median_time(lambda fn=fn: run_crowdkit(fn, frames), repeats)
            scale = n_full / n_small
            entry = {f"measured_s_at_{n_small}": round(small, 2), "runs_s": runs,
                     "extrapolated_s": round(small * scale, 1)}
            if small * scale <= max_ck_s and n_full != n_small:
                if full_df is None:
                    t, _ = synthetic(n_full, seed)
                    full_df = crowdkit_frames(encode(t, bench_taxonomy(N_ATTRS)))
                    del t
                full, runs = _median_time(lambda fn=fn, d=full_df: run_crowdkit(fn, d), repeats)
                entry.update(measured_s=round(full, 2), runs_full_s=runs, basis="measured at full size")
            else:
                entry.update(measured_s=None, basis=f"EXTRAPOLATED linearly from {n_small:,} users "
                             f"(> {max_ck_s:.0f} s predicted at {n_full:,})" if n_full != n_small else "measured")
            out[name] = entry
    return out


def bench(users: int = 1_000_000, quality_users: int = 20_000, ck_users: int = 100_000, repeats: int = 3,
          seed: int = 0, max_ck_s: float = 300.0, lake: str | None = None) -> dict:
    settings = LabelSettings(teachers=[])
    # quality on the synthetic set with known truth
    table, truth = synthetic(quality_users, seed)
    b = encode(table, bench_taxonomy(N_ATTRS))
    result: dict = {"synthetic_quality": {"users": quality_users, "teachers": N_TEACHERS, "attributes": N_ATTRS,
                                          "headline_f1": quality(b, truth, np.ones_like(truth, bool), settings)}}
    if lake:
        result["lake_quality"] = lake_quality(lake, LabelSettings())
    del table, b
    # speed at full size
    holder = [synthetic(users, seed)[0]]
    ours = time_ours(holder.pop(), settings, repeats)
    gc.collect()
    ck = time_crowdkit(min(ck_users, users), users, seed, repeats, max_ck_s)
    ratios = {}
    for name, core, e2e in (("crowdkit:MajorityVote", "majority_vote_s", "end_to_end_majority_s"),
                            ("crowdkit:Wawa", "calibrated_aggregation_s", "end_to_end_calibrated_s"),
                            ("crowdkit:DawidSkene", "calibrated_aggregation_s", "end_to_end_calibrated_s")):
        t = ck[name]["measured_s"] if ck[name]["measured_s"] is not None else ck[name]["extrapolated_s"]
        ratios[f"{name} / ours (both from integer codes)"] = round(t / ours[core], 1)
        ratios[f"{name} / ours incl. encoding the Arrow table"] = round(t / ours[e2e], 1)
    result["speed"] = {"users": users, "answers": users * N_TEACHERS * N_ATTRS, "repeats": repeats,
                       "ours": ours, "crowdkit": ck, "ratio_vs_ours": ratios,
                       "note": "crowd-kit MajorityVote is compared with our majority vote, Wawa and DawidSkene "
                               "with our full calibrated aggregation (all three votes + LOTO + reliability + "
                               "isotonic + EM priors); crowd-kit times start from integer-coded DataFrames "
                               "(building them is not timed), ours from integer codes or, 'incl. encoding', "
                               "from the string Arrow table."}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_voting", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--quality-users", type=int, default=20_000)
    p.add_argument("--ck-users", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lake", help="also compare on this simulated lake's latest interval")
    a = p.parse_args(argv)
    print(json.dumps(bench(a.users, a.quality_users, a.ck_users, a.repeats, lake=a.lake), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
