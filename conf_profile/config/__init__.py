"""One settings tree for the whole platform: embedded defaults, a YAML file, then environment overrides.

Precedence (last wins): defaults < YAML file (`--config` or CONF_PROFILE_CONFIG) < environment
(`CONF_PROFILE_<SECTION>__<FIELD>[__<FIELD>]`, e.g. `CONF_PROFILE_TRAIN__SFT__EPOCHS=3`) < explicit CLI flags
and run parameters (`conf_profile.config.params`). Every section refuses unknown keys, naming the nearest
valid one. Credentials come from the environment only (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or
CONF_PROFILE_S3__ACCESS_KEY / ...SECRET_KEY); a config file that holds them is rejected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from conf_profile.config.sections import (
    DEFAULT_TAXONOMY,
    ComputeSettings,
    DocumentSettings,
    EvalSettings,
    EvaluationSettings,
    InferenceSettings,
    LabelSettings,
    MlflowSettings,
    PromotionSettings,
    RLSettings,
    S3Settings,
    SFTSettings,
    SimulateSettings,
    SourceSettings,
    TableSpec,
    TrainSettings,
    ValidationSettings,
    row_floor,
    source_schemas,
)
from conf_profile.config.strict import explain
from conf_profile.config.teachers import (
    AnyTeacher,
    HFTeacher,
    LexiconTeacher,
    OpenAITeacher,
    TeacherSpec,
    VLLMTeacher,
)
from conf_profile.errors import ConfigError, yaml_problem

__all__ = [
    "AnyTeacher", "ComputeSettings", "DEFAULT_TAXONOMY", "DocumentSettings", "EvalSettings", "EvaluationSettings", "HFTeacher",
    "InferenceSettings", "LabelSettings", "LexiconTeacher", "MlflowSettings", "OpenAITeacher", "PromotionSettings", "RLSettings",
    "S3Settings", "SFTSettings", "Settings", "SimulateSettings", "SourceSettings", "TableSpec", "TeacherSpec",
    "TrainSettings", "VLLMTeacher", "ValidationSettings", "row_floor", "source_schemas",
]



class Settings(BaseSettings):
    """The whole settings tree. `Settings.load()` is the one entry point."""

    model_config = SettingsConfigDict(env_prefix="CONF_PROFILE_", env_nested_delimiter="__", extra="forbid",
                                      validate_assignment=True)

    data_dir: Path = Path("data")
    lake: str | None = None  # None: <data_dir>/lake
    taxonomy_path: Path = DEFAULT_TAXONOMY
    s3: S3Settings = Field(default_factory=S3Settings)
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    documents: DocumentSettings = Field(default_factory=DocumentSettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)

    @model_validator(mode="after")
    def _teachers_read_configured_sections(self) -> Settings:
        """A teacher that reads a section no configured table builds would label nothing from it: refused."""
        from conf_profile.config.sections import DEFAULT_SECTION_TABLES

        sections = self.source.sections()
        for t in self.labels.teachers:
            for s in t.sources:
                if s in sections:
                    continue
                table = DEFAULT_SECTION_TABLES.get(s)
                which = (f"its table {table!r} is not configured in source.tables" if table
                         else "no table in source.tables builds it")
                raise ValueError(
                    f"teacher {t.name!r} reads section {s!r}, but {which} (configured sections: "
                    f"{', '.join(sections) or 'none'}); configure the table, or change labels.teachers[].sources")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # env beats init (the YAML file is passed as init kwargs); explicit overrides are applied after.
        return (env_settings, init_settings)

    @property
    def lake_uri(self) -> str:
        return self.lake or str((self.data_dir / "lake").resolve())

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> str:
        return str((self.data_dir / "mlartifacts").resolve())

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Settings:
        """Defaults < YAML < env < overrides (None overrides are ignored)."""
        path = path or os.environ.get("CONF_PROFILE_CONFIG")
        data = _read_file(Path(path)) if path else {}
        where = f"config file {path}" if path else "the configuration"
        try:
            settings = cls(**data)
        except ValidationError as exc:
            raise ConfigError(f"Invalid configuration: {explain(exc, cls, where)}.",
                              "Fix the named settings (a CONF_PROFILE_* variable sets them too); "
                              "`conf-profile config --defaults` prints every valid key.") from None
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        # Standard AWS variables fill S3 credentials when the prefixed ones are absent.
        if settings.s3.access_key is None and os.environ.get("AWS_ACCESS_KEY_ID"):
            settings.s3.access_key = SecretStr(os.environ["AWS_ACCESS_KEY_ID"])
        if settings.s3.secret_key is None and os.environ.get("AWS_SECRET_ACCESS_KEY"):
            settings.s3.secret_key = SecretStr(os.environ["AWS_SECRET_ACCESS_KEY"])
        if settings.s3.endpoint_url is None and os.environ.get("AWS_ENDPOINT_URL"):
            settings.s3.endpoint_url = os.environ["AWS_ENDPOINT_URL"]
        return settings


def _read_file(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist.", "Pass an existing YAML file to --config.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {p} is not valid YAML: {yaml_problem(exc)}.", "Fix the YAML syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {p} must hold a mapping at the top.", "See README, 'Configuration'.")
    leaked = _find_secret_keys(data)
    if leaked:
        raise ConfigError(
            f"Config file {p} holds credentials ({', '.join(leaked)}).",
            "Remove them from the file and set them in the environment: AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY (object store), OPENAI_API_KEY (teachers), MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD (MLflow; or the whole URI in CONF_PROFILE_MLFLOW__TRACKING_URI).",
        )
    return resolve_paths(data, p.resolve().parent)


# Settings that name local files or folders; in a settings file they are relative to the file's folder.
_PATH_KEYS = (("data_dir",), ("lake",), ("taxonomy_path",), ("labels", "lexicon"), ("train", "work_dir"))


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative local paths in a settings file resolve against the file's folder, not the working directory
    (URIs such as s3:// or models:/ are left alone); teachers' own `lexicon` files too."""
    def fix(value: Any) -> Any:
        if not isinstance(value, str) or not value or "://" in value or value.startswith(("models:", "runs:")):
            return value
        path = Path(value).expanduser()
        return value if path.is_absolute() else str((base / path).resolve())

    for keys in _PATH_KEYS:
        node = data
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            node[keys[-1]] = fix(node[keys[-1]])
    teachers = (data.get("labels") or {}).get("teachers") if isinstance(data.get("labels"), dict) else None
    for t in teachers or []:
        if isinstance(t, dict) and "lexicon" in t:
            t["lexicon"] = fix(t["lexicon"])
    return data


def _find_secret_keys(data: Any, prefix: str = "") -> list[str]:
    """Where the file holds credentials (keys anywhere, lists included, and URL userinfo); paths only."""
    from conf_profile.secrets import find_secrets

    return find_secrets(data, prefix)
