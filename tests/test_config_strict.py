"""Every settings model refuses unknown keys at every depth, naming the key, where it is and the nearest valid
key; run parameters derive from the model; every recipe in configs/recipes/ loads."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from conf_profile.config import Settings
from conf_profile.config import params as run_params
from conf_profile.config.teachers import SPECS
from conf_profile.errors import ConfigError

RECIPES = sorted((Path(__file__).parents[1] / "configs" / "recipes").glob("*.yaml"))


def _models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models(a)]


def _paths(model: type[BaseModel], prefix: tuple = ()) -> list[tuple[tuple, type[BaseModel]]]:
    """Every (path, model) of the settings tree; list items of teachers are expanded per backend."""
    out = [(prefix, model)]
    for name, field in model.model_fields.items():
        for sub in _models(field.annotation):
            if name == "teachers":
                out += [((*prefix, name, backend), spec) for backend, spec in SPECS.items()]
            elif name == "tables":  # source.tables: a dict of table descriptions, keyed by table name
                out += _paths(sub, (*prefix, name, "profiles"))
            elif name == "ranges":  # source.tables.<t>.ranges: keyed by a numeric column of the table
                out += _paths(sub, (*prefix, name, "declared_birth_year"))
            else:
                out += _paths(sub, (*prefix, name))
    return out


def _nest(path: tuple, leaf: dict) -> dict:
    data = leaf
    for part in reversed(path):
        if part in SPECS:  # a teacher list item of that backend
            data = [{"name": "t", "backend": part, **data}]
        else:
            data = {part: data}
    return data


CASES = _paths(Settings)


def test_the_walk_covers_the_nested_sections():
    dotted = {".".join(p) for p, _ in CASES}
    assert {"", "train.sft", "train.rl", "train.eval", "labels.teachers.openai", "mlflow.promotion"} <= dotted


@pytest.mark.parametrize("path,model", CASES, ids=[".".join(p) or "root" for p, _ in CASES])
def test_unknown_key_is_refused_with_the_nearest_valid_key(tmp_path, path, model):
    real = next(iter(model.model_fields))
    typo = real[:-1] + ("x" if real[-1] != "x" else "y")
    cfg = tmp_path / "c.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(_nest(path, {typo: 1})))
    with pytest.raises(ConfigError) as err:
        Settings.load(cfg)
    text = str(err.value)
    assert typo in text and f"did you mean '{real}'" in text, text
    assert str(cfg) in text


def test_environment_overrides_nested_fields(monkeypatch):
    monkeypatch.setenv("CONF_PROFILE_TRAIN__SFT__EPOCHS", "2.5")
    assert Settings.load().train.sft.epochs == 2.5
    monkeypatch.setenv("CONF_PROFILE_TRAIN__SFT__EPOCH", "2")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        Settings.load()


def test_run_params_apply_validate_and_map_to_env():
    s = Settings.load()
    run_params.apply(s, {"shards": 3, "sft_epochs": "1.5", "rl_steps": 0, "teachers": ["lexicon_all"]})
    assert (s.labels.shards, s.train.sft.epochs, s.train.rl.steps) == (3, 1.5, 0)
    assert [t.name for t in s.labels.teachers] == ["lexicon_all"]
    with pytest.raises(ConfigError, match="shards"):
        run_params.apply(s, {"shards": 0})
    with pytest.raises(ConfigError, match="nobody"):
        run_params.apply(s, {"teachers": ["nobody"]})
    assert run_params.env_var("train.sft.epochs") == "CONF_PROFILE_TRAIN__SFT__EPOCHS"
    schema = run_params.json_schema(s, run_params.BY_NAME["shards"])
    assert schema == {"type": "integer", "minimum": 1}


def test_a_teacher_without_backend_is_a_lexicon_teacher_and_backends_have_their_own_fields():
    s = Settings(**{"labels": {"teachers": [{"name": "a"}, {"name": "b", "backend": "openai", "timeout_s": 3}]}})
    assert [t.backend for t in s.labels.teachers] == ["lexicon", "openai"]
    with pytest.raises(Exception, match="timeout_s"):
        Settings(**{"labels": {"teachers": [{"name": "a", "timeout_s": 3}]}})  # not a lexicon field


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads(recipe):
    s = Settings.load(recipe)
    assert s.train.sft.epochs >= 0 and s.train.sft.budget_examples > 0  # epochs 0: by budget


def test_there_are_recipes():
    assert {"default", "grpo-random-reward", "labels-prior-shift"} <= {p.stem for p in RECIPES}


def test_relative_paths_in_a_settings_file_resolve_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "team"
    folder.mkdir()
    cfg = folder / "settings.yaml"
    cfg.write_text("data_dir: data\nlake: s3://bucket/x\ntaxonomy_path: tax.yaml\n"
                   "labels: {lexicon: lex/main.yaml, teachers: [{name: a, lexicon: own.yaml}]}\n")
    monkeypatch.chdir(tmp_path)  # somewhere else
    s = Settings.load(cfg)
    assert s.data_dir == folder / "data" and str(s.taxonomy_path) == str(folder / "tax.yaml")
    assert s.labels.lexicon == str(folder / "lex" / "main.yaml") and s.labels.teachers[0].lexicon == str(folder / "own.yaml")
    assert s.lake == "s3://bucket/x"  # a URI is left alone
