"""One settings tree for the whole platform: embedded defaults, a YAML file, then environment overrides.

Precedence (last wins): defaults < YAML file (`--config` or CONF_PROFILE_CONFIG) < environment
(`CONF_PROFILE_<SECTION>__<FIELD>`, e.g. `CONF_PROFILE_SIMULATE__USERS=500`) < explicit CLI flags.
Object-store credentials come from the environment only (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or
CONF_PROFILE_S3__ACCESS_KEY / ...SECRET_KEY); a config file that holds them is rejected.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from conf_profile.errors import ConfigError

DEFAULT_TAXONOMY = Path(__file__).parent / "resources" / "taxonomy.yaml"
_SECRET_KEYS = {"access_key", "secret_key", "aws_access_key_id", "aws_secret_access_key", "password", "api_key"}


class S3Settings(BaseModel):
    """MinIO/S3 endpoint. Credentials are read from the environment only."""

    endpoint_url: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO; None = AWS
    region: str = "us-east-1"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None


class SimulateSettings(BaseModel):
    users: int = 6000  # enough distillation data for the CPU student in one `make run` (docs/training.md)
    weeks: int = 2
    start: date | None = None  # None: the Monday four weeks before today
    seed: int = 7
    pii_rate: float = 0.05
    injection_rate: float = 0.02
    duplicate_rate: float = 0.01
    null_rate: float = 0.002
    out_of_range_rate: float = 0.001
    long_text_rate: float = 0.005
    disclosure_rate: float = 0.02
    sparse_user_rate: float = 0.15
    churn_rate: float = 0.05
    new_user_rate: float = 0.05
    # Activity (means per active user and week; per-user rates are heavy-tailed around them).
    watch_per_user: float = Field(100.0, gt=0)
    searches_per_user: float = Field(12.0, ge=0)
    comments_per_user: float = Field(3.0, ge=0)
    purchases_per_user: float = Field(1.0, ge=0)
    # Misleading evidence and more dirt (docs/simulator.md).
    shared_device_rate: float = Field(0.05, ge=0, le=1)  # some events come from another person on the device
    declared_null_rate: float = Field(0.6, ge=0, le=1)  # declared gender / birth year left empty
    declared_wrong_rate: float = Field(0.1, ge=0, le=1)  # declared gender / birth year false
    emoji_rate: float = Field(0.08, ge=0, le=1)  # comments and bios with emoji appended
    non_ascii_rate: float = Field(0.03, ge=0, le=1)  # comments and bios with non-ASCII words appended


class ValidationSettings(BaseModel):
    ts_skew_hours: float = 2.0  # events this far outside the interval are tolerated (late clocks)
    min_rows: dict[str, int] = Field(
        default_factory=lambda: {"watch_events": 100, "searches": 1, "comments": 1, "purchases": 0, "profiles": 1}
    )
    max_text_chars: int = 2000
    # Row-level critical checks (null user_id, ts outside the interval, out-of-range numbers) fail the run only
    # when more than this share of a table's rows violates one; the violating rows are quarantined either way.
    critical_max_bad_fraction: float = Field(0.01, ge=0.0, le=1.0)


class DocumentSettings(BaseModel):
    char_budget: int = 1200
    max_watch_items: int = 12
    max_searches: int = 8
    max_comments: int = 4
    max_purchases: int = 5
    max_text_chars: int = 200  # each nickname/bio/title/query/comment is cut here, so one item cannot eat the budget


class TeacherSpec(BaseModel):
    """One teacher: (backend, model, prompt, sampling). `sources` limits what a lexicon teacher reads."""

    name: str
    backend: Literal["lexicon", "openai", "vllm", "hf"] = "lexicon"
    model: str | None = None
    base_url: str | None = None
    sources: list[str] = Field(default_factory=list)
    samples: int = 1
    temperature: float = 0.0
    weight: float = 1.0
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 3
    retry_backoff_s: float = 1.0  # first backoff (openai); doubles per retry, jittered, capped at 30 s
    max_tokens: int = 768  # generation budget per answer (openai, vllm, hf)
    batch_size: int = 8  # prompts per generate() call (hf)
    seed: int | None = None  # sampling seed (openai, vllm, hf); None = backend default
    lexicon: str | None = None  # lexicon YAML (lexicon backend); None = the packaged default
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)  # extra vllm.LLM(...) / from_pretrained kwargs


def _default_teachers() -> list[TeacherSpec]:
    return [
        TeacherSpec(name="lexicon_profile", sources=["profile"]),
        TeacherSpec(name="lexicon_watch", sources=["watch"]),
        TeacherSpec(name="lexicon_search", sources=["searches"]),
        TeacherSpec(name="lexicon_social", sources=["comments", "purchases"]),
        TeacherSpec(name="lexicon_all", sources=["profile", "watch", "searches", "comments", "purchases"]),
    ]


class LabelSettings(BaseModel):
    shards: int = 4
    teachers: list[TeacherSpec] = Field(default_factory=_default_teachers)
    multilabel_threshold: float = 0.5
    class_cap_factor: float = 1.5
    gold_dev_users: int = 0  # >0: calibrate on this many gold users instead of leave-one-teacher-out
    include_rationale: bool = False
    # Voting and calibration choices (docs/labels.md says why, with the measurements behind the defaults).
    unknown_weight: float = 1.0  # share of an "unknown" answer's w*c that enters the vote-confidence denominator
    calibration_per_attribute: bool = True  # one isotonic map per attribute (pooled map as fallback)
    calibration_min_points: int = 200  # attributes with fewer calibration points use the pooled map
    prior_shift: bool = False  # re-decide single-label votes under the EM priors (measured: no gain; labels.md)
    loto_redundancy: float = 0.9  # (teacher, attribute) agreeing this often with the others is left out of LOTO
    reliability_weights: bool = True  # calibrated vote: weight answers by their teacher's LOTO agreement rate
    # LOTO, maps, reliability and priors are fitted on at most this many users (hash-chosen; bounds memory)
    calibration_sample_users: int = Field(200_000, ge=1)


class TrainSettings(BaseModel):
    student: str = "tiny"  # preset name, a local HF path, or a models:/ URI
    lora: bool = False
    sft_epochs: float = 5.0  # CPU default sized for `make run` (~5.5 min on 2 cores); docs/training.md
    sft_lr: float = 1e-2  # measured: 1e-2 > 3e-3 (46.9 vs 44.7 F1 at 3 epochs; docs/training.md)
    sft_batch_size: int = 8
    rl_steps: int = 40
    rl_lr: float = 2e-4  # higher drifts (5e-4: -2.6 F1); docs/training.md
    rl_num_generations: int = 16  # G rollouts per prompt: a larger group votes and ranks more reliably
    rl_prompts_per_step: int = 4
    rl_conf_band: tuple[float, float] = (0.35, 0.9)
    rl_teacher_vote_weight: float = 8.0  # x voter confidence (stage1: x 1); 16 rollouts at ~0.7 weigh ~11
    # Who joins the rollouts' vote: each teacher's raw answer, or the Stage-1 profile (calibrated, balanced vote)
    rl_voters: Literal["teachers", "stage1"] = "stage1"
    eval_users: int = 0  # first N gold eval users by id; 0 = all of them (the users the teacher rows are scored on)
    seed: int = 13
    # Stage 2 details (docs/training.md explains the defaults and what was measured).
    lora_r: int = 16  # LoRA rank when lora=True (GPU checkpoints)
    sft_max_length: int = 1024  # tokens per example (document + answer); longer examples are dropped, counted
    sft_save_steps: int = 50  # checkpoint every N steps (resume after a crash)
    rl_temperature: float = 0.7  # rollouts closer to the greedy answer that is evaluated and served
    rl_beta: float = 0.0  # KL anchor to the SFT model (0 = no reference model)
    rl_loss_type: str = "dapo"  # TRL GRPOConfig.loss_type
    rl_reward: Literal["confidence", "random"] = "confidence"  # "random" is the control experiment
    rl_prior_power: float = 0.0  # >0: quasi-GT class = argmax vote / prior^power (balanced vote, see docs/training.md)
    rl_reward_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)  # agreement, format, calibration
    eval_batch_size: int = 64
    eval_samples: int = 0  # >0: also report avg@k / maj@k over k sampled answers (T=1)
    work_dir: str | None = None  # local checkpoints; None: <data_dir>/work
    threads: int | None = None  # torch CPU threads; None: torch's default


class ComputeSettings(BaseModel):
    mode: Literal["local", "kubernetes"] = "local"
    namespace: str = "conf-profile"
    trainer_image: str = "ghcr.io/conf-profile/trainer:0.1.0"
    gpus: int = 1
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    accelerate_config: str = "zero2"
    vllm_base_url: str | None = None
    # Orchestration (dags/, docs/orchestration.md). Transient failures (object store, teacher servers) are
    # retried with exponential backoff; validation never is.
    retries: int = Field(2, ge=0)
    retry_delay_s: float = Field(60.0, ge=0)
    max_retry_delay_s: float = Field(900.0, ge=0)
    promote_pool: str = "conf_profile_promote"  # a 1-slot Airflow pool: two promotions never overlap
    # Training pods (compute.mode = kubernetes): the trainer image's repository copy holds the accelerate
    # configs; settings come from the ConfigMap (one file mounted by subPath, so the image's folder stays
    # visible); S3 credentials from keys of the credentials Secret.
    accelerate_config_root: str = "/opt/conf-profile/src/configs/accelerate"
    settings_config_map: str | None = "conf-profile-settings"
    settings_mount_path: str = "/opt/conf-profile/config.yaml"
    secret_name: str = "conf-profile-credentials"
    secret_env: dict[str, str] = Field(default_factory=lambda: {
        "AWS_ACCESS_KEY_ID": "s3-access-key", "AWS_SECRET_ACCESS_KEY": "s3-secret-key"})
    env_secret: str | None = None  # a Secret whose keys are env var names, passed whole (envFrom)
    service_account: str | None = None
    pod_cpu: str = "8"
    pod_memory: str = "64Gi"
    pod_startup_timeout_s: int = Field(1800, ge=60)
    inference_batch_size: int = Field(64, ge=1)  # users per generate() call in the daily inference DAG


class PromotionSettings(BaseModel):
    f1_margin: float = 0.5  # points
    ece_limit: float = 0.10
    attribute_drop_tolerance: float = 3.0  # points


class MlflowSettings(BaseModel):
    tracking_uri: str | None = None  # None: sqlite under data_dir
    registry_uri: str | None = None
    experiment: str = "conf-profile"
    model_name: str = "conf-profile-student"
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    ui_url: str | None = None  # MLflow UI base for Airflow links; None: tracking_uri when http(s), else local


class Settings(BaseSettings):
    """The whole settings tree. `Settings.load()` is the one entry point."""

    model_config = SettingsConfigDict(env_prefix="CONF_PROFILE_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data")
    lake: str | None = None  # None: <data_dir>/lake
    taxonomy_path: Path = DEFAULT_TAXONOMY
    s3: S3Settings = Field(default_factory=S3Settings)
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    documents: DocumentSettings = Field(default_factory=DocumentSettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)

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
        data: dict[str, Any] = {}
        if path:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"Config file {p} does not exist.", "Pass an existing YAML file to --config.")
            try:
                data = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"Config file {p} is not valid YAML: {exc}.", "Fix the YAML syntax.") from None
            if not isinstance(data, dict):
                raise ConfigError(f"Config file {p} must hold a mapping at the top.", "See README, 'Configuration'.")
            leaked = _find_secret_keys(data)
            if leaked:
                raise ConfigError(
                    f"Config file {p} holds credentials ({', '.join(leaked)}).",
                    "Remove them from the file and set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment.",
                )
        try:
            settings = cls(**data)
        except ValidationError as exc:
            raise ConfigError(f"Invalid configuration: {_short(exc)}.", "Fix the named fields (see README, 'Configuration').") from None
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


def _find_secret_keys(data: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if str(k).lower() in _SECRET_KEYS and v not in (None, ""):
                found.append(name)
            found.extend(_find_secret_keys(v, name))
    return found


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
