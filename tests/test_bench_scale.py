"""The scale bench's helpers (cheap; the bench itself is never a timed test): shard counts, the per-doubling
ratio, the config it writes, and the README table it renders."""

from __future__ import annotations

import pytest

from bench import bench_scale as B


def test_shards_auto_keeps_the_shard_size_fixed():
    assert B.shards_for(2000, "auto") == 1
    assert B.shards_for(8000, "auto") == 4
    assert B.shards_for(32_001, "auto") == 17
    assert B.shards_for(8000, 3) == 3 and B.shards_for(8000, "3") == 3
    assert B.shards_for(8000, None) is None and B.shards_for(8000, "") is None


def test_scaling_divides_by_the_users_ratio():
    rows = [{"users": 2000, "t": 1.0}, {"users": 8000, "t": 8.0}, {"users": 32000, "t": 32.0}]
    steps = B.scaling(rows, "t")
    assert [s["ratio"] for s in steps] == [8.0, 4.0]
    # 8x over two doublings = 2.83x per doubling (super-linear); 4x over two = 2.0x (linear)
    assert [s["per_doubling"] for s in steps] == [2.83, 2.0]
    assert [s["vs_linear"] for s in steps] == [2.0, 1.0]
    assert B.scaling([{"users": 1, "t": 0}, {"users": 2, "t": 1}], "t") == []  # no baseline, no ratio


def test_config_is_valid_settings(tmp_path):
    from conf_profile.config import Settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text(B.config_text(tmp_path, 1234))
    s = Settings.load(str(cfg))
    assert s.simulate.users == 1234 and s.simulate.weeks == 1
    assert s.train.sft.min_steps == B.TRAIN_STEPS and s.compute.retries == 0
    assert s.data_dir == tmp_path


def test_markdown_table_has_every_stage_and_the_ratio_row():
    stages = {f"{s}_{k}": 1.0 for s in B.STAGE1 for k in ("s", "wall_s", "rss_mb")}
    table = [{"users": u, "shards": 1, "load_avg": [], "stage1_s": 4.0 * u / 2000, "stage1_wall_s": 5.0,
              **{k: v * u / 2000 for k, v in stages.items()}} for u in (2000, 4000)]
    result = {"table": table, "infer_table": [],
              "scaling": {f"{s}_s": B.scaling(table, f"{s}_s") for s in (*B.STAGE1, "stage1")}}
    md = B.markdown(result)
    assert all(s in md.splitlines()[0] for s in B.STAGE1)
    assert "| 4,000 |" in md and md.splitlines()[-1].startswith("| time ratio per doubling | 2.00×")


def test_peak_rss_is_measured():
    assert B.peak_rss_mb() > 1


@pytest.mark.parametrize("kwargs,expected", [({"model_version": "3", "other": 1}, {"model_version": "3"}), ({}, {})])
def test_only_accepted_kwargs_reach_a_stage(kwargs, expected):
    assert B._accepted("conf_profile.stages.infer:commit", kwargs) == expected
