"""Access to the gold labels, on the ground floor beside the evaluation split (`splits`): only evaluation reads
them (and Stage 1 calibration, when a gold dev set is explicitly configured with `labels.gold_dev_users`)."""

from __future__ import annotations

import pyarrow as pa

from conf_profile.errors import LakeError
from conf_profile.layout import LakeLayout
from conf_profile.schema import GOLD_SCHEMA
from conf_profile.storage import Lake

GOLD_DIR = LakeLayout.gold_dir
ROOT = LakeLayout.gold_root


def read_gold(lake: Lake) -> pa.Table:
    """The committed gold table (GOLD_SCHEMA columns), or a clear error when the lake has none."""
    if lake.is_committed(GOLD_DIR):
        table = lake.read_committed(GOLD_DIR)
    elif lake.is_committed(ROOT) and any(f.startswith("labels/") for f in lake.manifest(ROOT)["files"]):
        # architecture.md's layout: one manifest at gold/ listing labels/part-*.parquet
        files = [f for f in lake.manifest(ROOT)["files"] if f.startswith("labels/") and f.endswith(".parquet")]
        table = pa.concat_tables([lake.read_table(f"{ROOT}/{f}") for f in files])
    else:
        raise LakeError(
            f"No gold labels at {lake.uri_of(GOLD_DIR)}: evaluation needs a gold set.",
            "Simulated lakes get one from `conf-profile simulate`; for real data, write GOLD_SCHEMA rows "
            "(user_id, attribute, label) to gold/labels/ and commit them with a _manifest.json.",
        )
    missing = [f.name for f in GOLD_SCHEMA if f.name not in table.column_names]
    if missing:
        raise LakeError(f"Gold labels at {lake.uri_of(GOLD_DIR)} lack columns {missing}.",
                        "Rewrite them with GOLD_SCHEMA (user_id, attribute, label list<string>).")
    return table.select([f.name for f in GOLD_SCHEMA]).cast(GOLD_SCHEMA)
