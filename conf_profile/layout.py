"""Where everything lives in the lake: the one owner of every path of a run and of the lake.

Why one owner: a path spelled in two modules drifts (`labels/distill` here, `labels/distil` there) and a
stage can no longer say what it reads and writes. `LakeLayout` names the lake-wide folders (raw tables,
gold, daily profiles); `RunLayout(interval)` names everything one weekly run writes under
`runs/<START>_<END>/`. Paths are relative to the lake root (see `storage.Lake`).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import date

from conf_profile.intervals import Interval

RUNS = "runs"
RAW = "raw"
GOLD_ROOT = "gold"
GOLD = "gold/labels"
PROFILES = "profiles"
STAGES = "_stages"  # stage manifests, one JSON per stage, written last
TOKENIZERS = "deployment/tokenizers"  # versioned with the deployment, shared by every week's run


class LakeLayout:
    """Lake-wide folders (not tied to one run)."""

    @staticmethod
    def raw_dir(table: str) -> str:
        return f"{RAW}/{table}"

    @staticmethod
    def raw_partition(table: str, day: date) -> str:
        return f"{RAW}/{table}/dt={day.isoformat()}"

    gold_root = GOLD_ROOT  # committed as one folder (its manifest lists labels/part-*.parquet)
    gold_dir = GOLD

    @staticmethod
    def profiles(day: date) -> str:
        return f"{PROFILES}/dt={day.isoformat()}"

    @staticmethod
    def profiles_shard(day: date, shard: int) -> str:
        """One user shard's profiles of the day (committed alone; the day's manifest lists every shard)."""
        return f"{PROFILES}/dt={day.isoformat()}/shard-{shard}"

    @staticmethod
    def tokenizer(preset: str, version: str) -> str:
        """The deployment's tokenizer of a student preset (train.tokenizer_version): trained once, reused weekly."""
        return f"{TOKENIZERS}/{preset}-{version}"


@dataclass(frozen=True)
class RunLayout:
    """Every path one run (one data interval) writes, under runs/<START>_<END>/."""

    interval: Interval

    @property
    def root(self) -> str:
        return posixpath.join(RUNS, self.interval.key)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    # validate
    @property
    def validation(self) -> str:
        return self.path("validation")

    @property
    def validation_report(self) -> str:
        return self.path("validation", "report.json")

    @property
    def validation_html(self) -> str:
        return self.path("validation", "report.html")

    def quarantine(self, table: str) -> str:
        return self.path("validation", "quarantine", f"{table}.parquet")

    @property
    def clean_root(self) -> str:
        return self.path("clean")

    def clean(self, table: str) -> str:
        return self.path("clean", table)

    # documents
    @property
    def documents(self) -> str:
        """The whole documents dataset: its manifest lists every shard's part (read it as one table)."""
        return self.path("documents")

    def documents_scatter(self, table: str) -> str:
        """A clean table split by user shard once (documents' plan), so a shard reads only its rows."""
        return self.path("documents_scatter", table)

    def documents_shard(self, shard: int) -> str:
        """One user shard's documents (`shards.shard_of`), committed alone."""
        return self.path("documents", f"shard-{shard}")

    # label
    @property
    def teachers(self) -> str:
        return self.path("teachers")

    def teacher(self, name: str) -> str:
        return self.path("teachers", name)

    def teacher_shard(self, name: str, shard: int) -> str:
        return self.path("teachers", name, f"shard-{shard}")

    # aggregate
    @property
    def labels(self) -> str:
        return self.path("labels")

    @property
    def votes(self) -> str:
        return self.path("labels", "votes")

    @property
    def teacher_predictions(self) -> str:
        return self.path("labels", "teacher_predictions")

    @property
    def calibration(self) -> str:
        return self.path("labels", "calibration.json")

    @property
    def distill(self) -> str:
        return self.path("labels", "distill")

    @property
    def rl_prompts(self) -> str:
        return self.path("labels", "rl_prompts")

    # train
    def model(self, stage: str) -> str:
        return self.path("models", stage)

    @property
    def base_model(self) -> str:
        return self.model("base")

    @property
    def sft_model(self) -> str:
        return self.model("sft")

    @property
    def rl_model(self) -> str:
        return self.model("rl")

    @property
    def selection(self) -> str:
        """Which trained student is registered, chosen without labels (train/select.py)."""
        return self.path("models", "selection.json")

    # evaluate
    @property
    def eval(self) -> str:
        return self.path("eval")

    def eval_row(self, name: str) -> str:
        return self.path("eval", name.replace(":", "-").replace("/", "-") + ".json")

    @property
    def plots(self) -> str:
        return self.path("plots")

    def plot(self, name: str) -> str:
        return self.path("plots", name)

    @property
    def report(self) -> str:
        return self.path("report.json")

    # stage manifests
    def stage_manifest(self, stage: str) -> str:
        return self.path(STAGES, f"{stage}.json")
