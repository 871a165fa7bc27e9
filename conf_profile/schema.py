"""Arrow schemas of the raw platform tables (data.md) and of the tables the pipeline writes between stages.

Raw tables are what a real platform provides; nothing downstream may rely on a field only the simulator has.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

RAW_SCHEMAS: dict[str, pa.Schema] = {
    "profiles": pa.schema([
        ("user_id", pa.string()),
        ("ts", TS),  # when this snapshot row was taken (inside the interval)
        ("nickname", pa.string()),
        ("bio", pa.string()),
        ("declared_gender", pa.string()),
        ("declared_birth_year", pa.int32()),
        ("device_model", pa.string()),
        ("ip_city", pa.string()),
        ("registered_at", TS),
    ]),
    "watch_events": pa.schema([
        ("user_id", pa.string()),
        ("ts", TS),
        ("video_id", pa.string()),
        ("video_title", pa.string()),
        ("video_category", pa.string()),
        ("creator_id", pa.string()),
        ("watch_seconds", pa.float64()),
        ("video_seconds", pa.float64()),
        ("liked", pa.bool_()),
        ("shared", pa.bool_()),
        ("commented", pa.bool_()),
    ]),
    "searches": pa.schema([
        ("user_id", pa.string()),
        ("ts", TS),
        ("query", pa.string()),
    ]),
    "comments": pa.schema([
        ("user_id", pa.string()),
        ("ts", TS),
        ("video_id", pa.string()),
        ("text", pa.string()),
    ]),
    "purchases": pa.schema([
        ("user_id", pa.string()),
        ("ts", TS),
        ("item_category", pa.string()),
        ("price", pa.float64()),
    ]),
}

RAW_TABLES = list(RAW_SCHEMAS)

# Documents: one row per user for an interval (runs/<interval>/documents).
DOCUMENT_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("document", pa.string()),
    ("n_events", pa.int64()),
    ("n_chars", pa.int64()),
])

# Teacher outputs: one row per (user, teacher, sample, attribute).
TEACHER_OUTPUT_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("teacher_id", pa.string()),
    ("sample_idx", pa.int32()),
    ("attribute", pa.string()),
    ("label", pa.list_(pa.string())),  # one element for single attributes ("unknown" = abstain); 0..k for multi
    ("confidence", pa.float64()),  # mapped to [0, 1] from the 1-5 hint level: (level - 0.5) / 5
    ("rationale", pa.string()),
    ("raw_output", pa.string()),
    ("error", pa.string()),  # null when the row is valid
])

# Gold labels (gold/labels): one row per user and attribute, read only by evaluation.
GOLD_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("attribute", pa.string()),
    ("label", pa.list_(pa.string())),
])
