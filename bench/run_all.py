"""Run every benchmark in one process and print one table (medians, ratio vs the baseline of the same run).

`make bench` calls this; results also go to bench/results/latest.json. Benchmarks are never timed tests.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

BENCHES = ["bench_simulate", "bench_validate", "bench_documents", "bench_redact", "bench_voting", "bench_train",
           "bench_scale"]


def main(argv: list[str]) -> int:
    wanted = argv or BENCHES
    results: dict[str, dict] = {}
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        t0 = time.perf_counter()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        results[name] = module.bench()
        results[name]["_wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(results[name], indent=2, default=str), flush=True)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
