"""Settings precedence, credential hygiene, the taxonomy file and its JSON schema."""

from __future__ import annotations

import jsonschema
import pytest

from conf_profile.config import Settings
from conf_profile.errors import ConfigError, TaxonomyError
from conf_profile.taxonomy import load_taxonomy


def test_defaults_need_no_config(monkeypatch):
    monkeypatch.delenv("CONF_PROFILE_CONFIG", raising=False)
    s = Settings.load()
    assert s.lake_uri.endswith("data/lake")
    assert s.mlflow_tracking_uri.startswith("sqlite:///")
    assert len(s.labels.teachers) >= 3


def test_precedence_file_env_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("simulate:\n  users: 100\n  seed: 3\nlake: /tmp/from-file\n")
    s = Settings.load(cfg)
    assert (s.simulate.users, s.simulate.seed, s.lake) == (100, 3, "/tmp/from-file")
    monkeypatch.setenv("CONF_PROFILE_SIMULATE__USERS", "55")
    s = Settings.load(cfg)
    assert (s.simulate.users, s.simulate.seed) == (55, 3)  # env beats file, other file keys kept
    s = Settings.load(cfg, lake="/tmp/from-flag")
    assert s.lake == "/tmp/from-flag"


def test_credentials_in_file_are_rejected(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("s3:\n  endpoint_url: http://127.0.0.1:9000\n  secret_key: hunter2hunter2\n")
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        Settings.load(cfg)


def test_credentials_from_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sk")
    s = Settings.load()
    assert s.s3.access_key.get_secret_value() == "ak"
    assert "sk" not in repr(s.s3)  # secrets never printed


def test_bad_config_is_a_readable_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("simulate:\n  users: many\n")
    with pytest.raises(ConfigError, match="simulate.users"):
        Settings.load(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.yaml")


def test_taxonomy_schema_accepts_valid_and_rejects_out_of_taxonomy():
    tax = load_taxonomy()
    assert tax.names[-1] == "interests" and tax.attribute("interests").is_multi
    schema = tax.json_schema()
    answer = {
        a.name: {"label": ([a.classes[0]] if a.is_multi else a.classes[0]), "confidence": 3, "rationale": "x"}
        for a in tax.attributes
    }
    jsonschema.validate(answer, schema)
    answer["gender"]["label"] = "robot"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, schema)
    assert tax.check_label("gender", "unknown") == ("unknown", None)
    assert tax.check_label("interests", ["music", "music", "gaming"]) == (["gaming", "music"], None)
    assert tax.check_label("interests", ["a", "b"])[1] is not None


def test_taxonomy_is_data(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("attributes:\n  - name: pet_owner\n    classes: [cat, dog]\n")
    tax = load_taxonomy(p)
    assert tax.names == ["pet_owner"]
    p2 = tmp_path / "bad.yaml"
    p2.write_text("attributes:\n  - name: x\n    classes: [a, a]\n")
    with pytest.raises(TaxonomyError, match="twice"):
        load_taxonomy(p2)
