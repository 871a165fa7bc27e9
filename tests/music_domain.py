"""A second, made-up platform for tests: a music-streaming service with its own tables, categories,
taxonomy, lexicon and settings, written straight into a lake (nothing here uses `conf_profile.simulate`).

Tables: `profiles` (a reduced snapshot: nickname and bio required, the rest optional and absent) and
`listen_events` (user, ts, track title, genre, artist, seconds listened, skipped, plus an extra column
`client_version` that the source description does not know). Each user has a hidden favourite genre set
(multi-label `favourite_genres`), a `listening_time` (day/night) and a `mood` (calm/energetic); the events
follow them, so a lexicon teacher can recover them. Gold is written for every user.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from conf_profile.layout import LakeLayout
from conf_profile.schema import GOLD_SCHEMA
from conf_profile.storage import Lake

GENRES = ["rock", "jazz", "hiphop", "classical", "electronic"]
CALM = {"jazz", "classical"}
TITLES = {
    "rock": ["Highway Riff", "Garage Anthem", "Loud Guitars Live"],
    "jazz": ["Blue Smoke Sax", "Late Trio Session", "Swing Standard"],
    "hiphop": ["Block Beats", "Rap Cypher Vol 2", "Boom Bap Flow"],
    "classical": ["Cello Suite Nocturne", "Symphony Movement", "Piano Sonata"],
    "electronic": ["Synth Rave Drop", "Techno Warehouse", "House Groove Mix"],
}

TAXONOMY = """\
name: musicbench-v1
unknown: unknown
attributes:
  - name: mood
    kind: single
    classes: [calm, energetic]
  - name: listening_time
    kind: single
    classes: [daytime, night_owl]
  - name: favourite_genres
    kind: multi
    max_labels: 2
    classes: [rock, jazz, hiphop, classical, electronic]
"""

LEXICON = """\
version: 1
scoring: {multi_min_score: 2.0, multi_rel_score: 0.3, margin: 0.5}
attributes:
  mood:
    calm: {strong: ["cat_jazz", "cat_classical", "relaxing"], weak: ["quiet"]}
    energetic: {strong: ["cat_rock", "cat_hiphop", "cat_electronic", "workout"], weak: ["loud"]}
  listening_time:
    night_owl: {explicit: ["night owl"], strong: ["after midnight"]}
    daytime: {explicit: ["morning person"], strong: ["early riser"]}
  favourite_genres:
    rock: {strong: ["cat_rock"]}
    jazz: {strong: ["cat_jazz"]}
    hiphop: {strong: ["cat_hiphop"]}
    classical: {strong: ["cat_classical"]}
    electronic: {strong: ["cat_electronic"]}
"""


def settings_yaml(root: Path) -> str:
    """The platform's settings file: its tables, vocabulary, taxonomy, lexicon and teachers."""
    return f"""\
data_dir: {root / 'data'}
taxonomy_path: {root / 'taxonomy.yaml'}
source:
  tables:
    profiles:
      columns: {{user_id: string, ts: timestamp, nickname: string, bio: string}}
      optional: {{declared_gender: string, declared_birth_year: int32, device_model: string,
                 ip_city: string}}
      min_rows: 1
    listen_events:
      columns: {{user_id: string, ts: timestamp, track_title: string, genre: string, artist: string,
                listen_seconds: float64, skipped: bool}}
      min_rows: 50
      section: listens
      line: [genre, track_title, artist, skipped]
      max_items: 10
      text_columns: [track_title, artist]
      category_columns: [genre]
validation:
  vocabularies: {{listen_events.genre: [{', '.join(GENRES)}]}}
  critical_max_bad_fraction: 0.05
labels:
  shards: 2
  lexicon: {root / 'lexicon.yaml'}
  teachers:
    - {{name: lex_profile, sources: [profile]}}
    - {{name: lex_listens, sources: [listens]}}
    - {{name: lex_all}}
"""


def write_domain(root: Path, users: int = 120, start: date = date(2026, 11, 9), seed: int = 5) -> dict:
    """Write taxonomy, lexicon and settings under `root` and one week of logs + gold into root/data/lake.
    Returns what was written (rows per table, bad rows planted)."""
    rng = np.random.default_rng(seed)
    (root / "taxonomy.yaml").write_text(TAXONOMY)
    (root / "lexicon.yaml").write_text(LEXICON)
    (root / "settings.yaml").write_text(settings_yaml(root))
    (root / "data" / "lake").mkdir(parents=True, exist_ok=True)
    lake = Lake.open(str(root / "data" / "lake"), create=True)
    ids = [f"m{i:04d}" for i in range(users)]
    favs = [list(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False)) for _ in ids]
    night = rng.random(users) < 0.5
    t0 = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    rows: dict[str, list[dict]] = {"profiles": [], "listen_events": []}
    for u, fav, owl in zip(ids, favs, night, strict=True):
        bio = "night owl, music after midnight" if owl else "morning person and early riser"
        rows["profiles"].append({"user_id": u, "ts": t0 + timedelta(hours=int(rng.integers(0, 160))),
                                 "nickname": f"listener_{u}", "bio": bio if rng.random() < 0.8 else None})
        for _ in range(int(rng.integers(5, 15))):
            g = str(rng.choice(fav)) if rng.random() < 0.85 else str(rng.choice(GENRES))
            rows["listen_events"].append({
                "user_id": u, "ts": t0 + timedelta(minutes=int(rng.integers(0, 7 * 24 * 60))),
                "track_title": str(rng.choice(TITLES[g])), "genre": g, "artist": f"artist {g} {rng.integers(3)}",
                "listen_seconds": float(rng.uniform(20, 300)), "skipped": bool(rng.random() < 0.2),
                "client_version": f"{rng.integers(1, 4)}.0"})
    bad = {"user_id": None, "ts": t0, "track_title": "orphan", "genre": "rock", "artist": "x",
           "listen_seconds": 10.0, "skipped": False, "client_version": "1.0"}
    rows["listen_events"].append(bad)  # one row without a user: quarantined, never a document
    schemas = {
        "profiles": pa.schema([("user_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                               ("nickname", pa.string()), ("bio", pa.string())]),
        "listen_events": pa.schema([("user_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                                    ("track_title", pa.string()), ("genre", pa.string()), ("artist", pa.string()),
                                    ("listen_seconds", pa.float64()), ("skipped", pa.bool_()),
                                    ("client_version", pa.string())]),
    }
    for name, recs in rows.items():
        table = pa.Table.from_pylist(recs, schema=schemas[name])
        days = np.array([r["ts"].date() for r in recs])
        for d in sorted(set(days)):
            lake.write_partition(name, d, table.filter(pa.array(days == d)))
    gold = []
    for u, fav, owl in zip(ids, favs, night, strict=True):
        calm = sum(g in CALM for g in fav) * 2 >= len(fav)
        gold += [{"user_id": u, "attribute": "mood", "label": ["calm" if calm else "energetic"]},
                 {"user_id": u, "attribute": "listening_time", "label": ["night_owl" if owl else "daytime"]},
                 {"user_id": u, "attribute": "favourite_genres", "label": sorted(fav)}]
    lake.write_committed_table(LakeLayout.gold_dir, pa.Table.from_pylist(gold, schema=GOLD_SCHEMA))
    return {"lake": lake, "users": ids, "rows": {n: len(r) for n, r in rows.items()}, "bad_rows": 1}
