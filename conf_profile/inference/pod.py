"""One inference shard, as a GPU pod runs it: `conf-profile infer-shard` with the vllm backend.

Why a CLI command in the pod rather than code in the Airflow worker: the pod has the GPU and the trainer
image (vllm installed); it reads the day's committed documents, profiles its slice of users with the pinned
champion version and commits the slice's predictions under `shard_path`, where the fan-in task finds them.
Shards are contiguous slices of the committed documents (same slices on every rerun of the same documents).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from conf_profile.config import Settings
from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout, RunLayout
from conf_profile.storage import Lake


def command(settings: Settings, interval: Interval | str, shard: int | str, shards: int | str,
            model_version: str, backend: str = "vllm") -> list[str]:
    """The container command of shard `shard` of `shards` (each may be an Airflow template string):
    `python -m conf_profile.cli infer-shard --interval .. --shard i --shards n --model-version v --backend vllm
    --json [--lake uri]`. Settings reach the pod as the mounted settings file (compute.settings_config_map)."""
    args = ["python", "-m", "conf_profile.cli", "infer-shard", "--interval", str(interval), "--shard", str(shard),
            "--shards", str(shards), "--model-version", str(model_version), "--backend", backend, "--json"]
    if settings.lake:  # else the pod's settings file (or env) names the lake
        args += ["--lake", settings.lake]
    return args


def shard_path(day: date, shard: int, shards: int) -> str:
    """Where shard i of n commits its predictions (beside, not inside, the day's profiles folder)."""
    return f"{LakeLayout.profiles(day).rstrip('/')}/_shards/shard-{shard:04d}-of-{shards:04d}"


def shard_slice(rows: int, shard: int, shards: int) -> tuple[int, int]:
    """[start, stop) of shard i of n over `rows` rows: contiguous, sizes differ by at most one."""
    if not 0 <= shard < shards:
        from conf_profile.errors import ConfProfileError

        raise ConfProfileError(f"Shard {shard} does not exist in {shards} shards.",
                               f"Pass --shard between 0 and {shards - 1}.")
    return rows * shard // shards, rows * (shard + 1) // shards


def run_shard(settings: Settings, lake: Lake, interval: Interval, shard: int, shards: int,
              model_version: str) -> dict[str, Any]:
    """Profile shard i of n of the day's active users with version `model_version` of the registered student;
    commit the predictions (with model_version) under shard_path; return the summary."""
    from conf_profile.inference.profile import profile_documents, summary_text
    from conf_profile.taxonomy import load_taxonomy
    from conf_profile.train import runtime

    runtime.setup_torch(settings)
    docs = lake.read_committed(RunLayout(interval).documents, columns=["user_id", "document"])
    start, stop = shard_slice(docs.num_rows, shard, shards)
    docs = docs.slice(start, stop - start)
    name = settings.mlflow.model_name
    model_ref = f"models:/{name}/{model_version}"
    table, stats = profile_documents(settings, model_ref, docs.column("user_id").to_pylist(),
                                     docs.column("document").to_pylist(), load_taxonomy(settings.taxonomy_path),
                                     cache=runtime.work_dir(settings, interval, f"infer-model-{model_version}"))
    table = table.append_column("model_version", pa.array([str(model_version)] * table.num_rows, pa.string()))
    rel = shard_path(interval.start, shard, shards)
    lake.write_committed_table(rel, table, meta={"interval": str(interval), "model_name": name,
                                                 "model_version": str(model_version), "shard": shard,
                                                 "shards": shards, "users": stats["users"],
                                                 "failed_users": stats["failed_users"]})
    return {"stage": "infer_shard", "interval": str(interval), "shard": shard, "shards": shards,
            "model_version": str(model_version), "path": lake.uri_of(rel), **stats,
            "summary_text": f"shard {shard} of {shards}: " + summary_text(stats) + f" -> {lake.uri_of(rel)}"}
