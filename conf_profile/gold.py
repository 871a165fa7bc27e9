"""Access to the gold labels, on the ground floor beside the evaluation split (`splits`): only evaluation reads
them (and Stage 1 calibration, when a gold dev set is explicitly configured with `labels.gold_dev_users`).

Gold is optional: without a committed gold set, `read_reference` gives the quasi-labels instead, the
calibrated vote on the held-out evaluation users (students never train on them), so a week without gold
still gets a report card; its `reference` says which one it was scored on (docs/labels.md, "Without gold").
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from conf_profile.errors import LakeError
from conf_profile.intervals import Interval
from conf_profile.layout import LakeLayout, RunLayout
from conf_profile.schema import GOLD_SCHEMA
from conf_profile.storage import Lake

GOLD_DIR = LakeLayout.gold_dir
ROOT = LakeLayout.gold_root
GOLD = "gold"
QUASI = "quasi-labels"
UNKNOWN = "unknown"


def has_gold(lake: Lake) -> bool:
    """Whether the lake holds a committed gold set (in either of the two layouts `read_gold` reads)."""
    if lake.is_committed(GOLD_DIR):
        return True
    return lake.is_committed(ROOT) and any(f.startswith("labels/") for f in lake.manifest(ROOT)["files"])


def quasi_labels(lake: Lake, interval: Interval, unknown: str = UNKNOWN) -> pa.Table:
    """The calibrated vote as GOLD_SCHEMA rows; abstentions (`unknown`, an empty set) are left out, so a user the
    vote could not decide is not scored on that attribute (as a user without a gold label is not)."""
    rel = RunLayout(interval).votes
    if not lake.is_committed(rel):
        raise LakeError(f"No gold labels and no committed votes at {lake.uri_of(rel)}: nothing to score against.",
                        f"Run `conf-profile aggregate --interval {interval}` first (or commit a gold set).")
    votes = lake.read_committed(rel)
    votes = votes.filter(pc.equal(pc.cast(votes["method"], pa.string()), "calibrated"))
    label = votes["label"]
    n = pc.list_value_length(label)
    first = pc.fill_null(pc.list_element(pc.if_else(pc.greater(n, 0), label, pa.scalar([""], label.type)), 0), "")
    keep = pc.and_(pc.greater(n, 0), pc.invert(pc.and_(pc.equal(n, 1), pc.equal(first, unknown))))
    return votes.filter(keep).select([f.name for f in GOLD_SCHEMA]).cast(GOLD_SCHEMA)


def read_reference(lake: Lake, interval: Interval, unknown: str = UNKNOWN) -> tuple[pa.Table, str]:
    """What evaluation scores against: (gold, "gold") when the lake has gold, else (quasi-labels, "quasi-labels").
    Callers keep only evaluation-split users, so the quasi-labels are those of users no student trained on."""
    if has_gold(lake):
        return read_gold(lake), GOLD
    return quasi_labels(lake, interval, unknown), QUASI


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
