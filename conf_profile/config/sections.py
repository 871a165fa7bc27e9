"""The sections of the settings tree (every one a `Strict` model: unknown keys are refused).

`conf_profile.config` assembles them into `Settings` and loads them; this module only says what each
section holds and its defaults (docs/training.md and docs/labels.md say why the defaults are what they are).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr

from conf_profile.config.source import (  # noqa: F401 - re-exported: the settings tree's sections
    DEFAULT_SECTION_TABLES,
    SECTION_FORMATS,
    ColumnType,
    RangeSpec,
    SourceSettings,
    TableSpec,
    arrow_type,
    default_table,
    row_floor,
    source_schemas,
)
from conf_profile.config.strict import Strict
from conf_profile.config.teachers import TeacherSpec, default_teachers

DEFAULT_TAXONOMY = Path(__file__).parents[1] / "resources" / "taxonomy.yaml"


class S3Settings(Strict):
    """MinIO/S3 endpoint. Credentials are read from the environment only."""

    endpoint_url: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO; None = AWS
    region: str = "us-east-1"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Bounded so that a store that is down fails within seconds (pyarrow S3FileSystem timeouts and retries).
    connect_timeout_s: float = Field(3.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)  # attempts per request, the first included


class SimulateSettings(Strict):
    users: int = Field(6000, ge=0)  # enough distillation data for the CPU student in one `make run` (docs/training.md)
    weeks: int = Field(2, ge=1)
    start: date | None = None  # None: the Monday four weeks before today
    seed: int = 7
    pii_rate: float = Field(0.05, ge=0, le=1)
    injection_rate: float = Field(0.02, ge=0, le=1)
    duplicate_rate: float = Field(0.01, ge=0, le=1)
    null_rate: float = Field(0.002, ge=0, le=1)
    out_of_range_rate: float = Field(0.001, ge=0, le=1)
    long_text_rate: float = Field(0.005, ge=0, le=1)
    disclosure_rate: float = Field(0.02, ge=0, le=1)
    sparse_user_rate: float = Field(0.15, ge=0, le=1)
    churn_rate: float = Field(0.05, ge=0, le=1)
    new_user_rate: float = Field(0.05, ge=0, le=1)
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


class ValidationSettings(Strict):
    ts_skew_hours: float = Field(2.0, ge=0)  # events this far outside the interval are tolerated (late clocks)
    # Deprecated alias of `source.tables.<table>.min_rows`: when set, it replaces every floor (a configured
    # table it does not name has floor 0; a table it names that is not configured is ignored).
    min_rows: dict[str, int] | None = None
    max_text_chars: int = Field(2000, gt=0)
    # Optional plausible maxima per numeric raw column (e.g. {"price": 100000}); above them a row is quarantined
    # (critical, with the tolerance below). None by default: no bound fits every platform.
    max_values: dict[str, float] = Field(default_factory=dict)
    # Categorical vocabularies, "table.column" -> values (e.g. {"watch_events.video_category": [...]}). Undeclared
    # columns are observed, not checked. Values outside a declared vocabulary are counted and warned about, and
    # the rows kept (`unknown_categories: warn`, the default) or quarantined (`quarantine`).
    vocabularies: dict[str, list[str]] = Field(default_factory=dict)
    unknown_categories: Literal["warn", "quarantine"] = "warn"
    # Row-level critical checks (null user_id, ts outside the interval, out-of-range numbers) fail the run only
    # when more than this share of a table's rows violates one; the violating rows are quarantined either way.
    critical_max_bad_fraction: float = Field(0.01, ge=0.0, le=1.0)


class DocumentSettings(Strict):
    char_budget: int = Field(1200, ge=100)  # 0 or less would build no documents (and replace good ones)
    max_watch_items: int = Field(12, ge=0)
    max_searches: int = Field(8, ge=0)
    max_comments: int = Field(4, ge=0)
    max_purchases: int = Field(5, ge=0)
    max_text_chars: int = Field(200, gt=0)  # each nickname/bio/title/query/comment is cut here, so one item cannot eat the budget
    # declared_gender: canonical value -> accepted spellings (compared lower-cased, spaces and "-" as "_");
    # any other value is left out of the document and counted (`declared_gender_dropped`), never copied.
    gender_values: dict[str, list[str]] = Field(default_factory=lambda: {
        "male": ["m", "man", "男"], "female": ["f", "woman", "女"],
        "non_binary": ["nonbinary", "nb", "enby"], "other": []})


class TeacherBudget(Strict):
    """Teachers label at most `users` users or a `share` of a week's (non-evaluation) users; None = no limit.
    The rest become GRPO's unlabelled prompts (conf_profile/budget.py, docs/training.md)."""

    users: int | None = Field(None, ge=0)
    share: float | None = Field(None, ge=0, le=1)
    salt: str = "teacher-budget"  # the labelled/unlabelled split's hash salt (independent of the eval split)


class LabelSettings(Strict):
    shards: int = Field(4, ge=1)
    # A teacher shard with more error rows than this share (a server down, a bad API key) is not committed: the
    # task fails and is retried. `min_teachers`: how many configured teachers must be complete for aggregate
    # (None = all); a teacher left out is named in the summary, the report card and MLflow.
    max_error_share: float = Field(0.2, ge=0, le=1)
    min_teachers: int | None = Field(None, ge=1)
    teachers: list[TeacherSpec] = Field(default_factory=default_teachers)
    lexicon: str | None = None  # lexicon YAML for every lexicon teacher without its own; None: packaged default
    multilabel_threshold: float = Field(0.5, gt=0, le=1)
    class_cap_factor: float = Field(1.5, ge=1)
    gold_dev_users: int = Field(0, ge=0)  # >0: calibrate on this many gold users instead of leave-one-teacher-out
    include_rationale: bool = False
    # Voting and calibration choices (docs/labels.md says why, with the measurements behind the defaults).
    unknown_weight: float = Field(1.0, ge=0, le=1)  # share of an "unknown" answer's w*c that enters the vote-confidence denominator
    calibration_per_attribute: bool = True  # one isotonic map per attribute (pooled map as fallback)
    calibration_min_points: int = Field(200, ge=1)  # attributes with fewer calibration points use the pooled map
    prior_shift: bool = False  # re-decide single-label votes under the EM priors (measured: no gain; labels.md)
    loto_redundancy: float = Field(0.9, ge=0, le=1)  # (teacher, attribute) agreeing this often with the others is left out of LOTO
    reliability_weights: bool = True  # calibrated vote: weight answers by their teacher's LOTO agreement rate
    # LOTO, maps, reliability and priors are fitted on at most this many users (hash-chosen; bounds memory)
    calibration_sample_users: int = Field(200_000, ge=1)
    teacher_budget: TeacherBudget = Field(default_factory=TeacherBudget)


class SFTSettings(Strict):
    """Stage 2.1, supervised distillation (TRL SFTTrainer)."""

    # Schedule by compute budget, not epochs (a fixed epoch count tuned on 6,000 users starves smaller weeks):
    # steps = max(min_steps, ceil(min(budget_examples, max_epochs x train users) / batch_size)).
    budget_examples: int = Field(24000, ge=1)  # example-passes (= 5 epochs of the default week, ~5.5 min CPU)
    max_epochs: float = Field(12.0, gt=0)  # cap for small weeks; early stopping ends overfitting runs sooner
    min_steps: int = Field(200, ge=1)  # floor so that a tiny week still gets enough updates
    epochs: float = Field(0.0, ge=0)  # >0: the old fixed-epoch schedule (overrides the budget; comparisons)
    lr: float = Field(1e-2, gt=0)  # measured: 1e-2 > 3e-3 (46.9 vs 44.7 F1 at 3 epochs; docs/training.md)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(1024, ge=16)  # tokens per example (document + answer); longer ones are dropped, counted
    save_steps: int = Field(50, ge=1)  # checkpoint every N steps (resume after a crash)
    # Label-free validation (train/validation.py): held-out distillation users, scored by confidence-weighted
    # agreement with their Stage-1 quasi-labels; the best-scoring step is kept, patience stops the run early.
    val_share: float = Field(0.05, ge=0, lt=1)  # share of distillation users held out (by user id); 0 = off
    val_users: int = Field(256, ge=0)  # at most this many of them are scored (first by id); 0 = all
    val_every: int = Field(250, ge=1)  # steps between validations (and once at the end)
    patience: int = Field(3, ge=0)  # stop after this many validations without improvement; 0 = never stop early
    min_delta: float = Field(0.001, ge=0)  # an improvement smaller than this does not reset patience
    # A warm start (from a compatible champion, train.warm_start) may need fewer updates: its budget in
    # example-passes, same formula as budget_examples; 0 = the cold budget, the default until a smaller one is
    # measured as good (docs/training.md "Warm start").
    warm_budget_examples: int = Field(0, ge=0)
    # Small weeks get many epochs from the budget: each pass may see another view of a user's document
    # (train/augment.py; the target is unchanged). "shuffle" permutes a section's event lines, "drop" leaves out
    # augment_drop of them; on only when the schedule exceeds augment_min_epochs passes (docs/training.md).
    augment: Literal["none", "shuffle", "drop"] = "shuffle"
    augment_drop: float = Field(0.15, ge=0, lt=1)  # share of event lines a "drop" view leaves out
    augment_min_epochs: float = Field(6.0, ge=0)  # at most this many passes: no views (the default week: 5.3)
    weight_decay: float = Field(0.0, ge=0)  # AdamW decoupled weight decay


class RLSettings(Strict):
    """Stage 2.2, confidence-guided GRPO (TRL GRPOTrainer)."""

    steps: int = Field(40, ge=0)  # 0 skips GRPO
    lr: float = Field(2e-4, gt=0)  # higher drifts (5e-4: -2.6 F1); docs/training.md
    num_generations: int = Field(16, ge=2)  # G rollouts per prompt: a larger group votes and ranks more reliably
    prompts_per_step: int = Field(4, ge=1)
    conf_band: tuple[float, float] = (0.35, 0.9)  # difficulty filter on the Stage-1 confidence
    teacher_vote_weight: float = Field(8.0, ge=0)  # x voter confidence (stage1: x 1); 16 rollouts at ~0.7 weigh ~11
    # Who joins the rollouts' vote: each teacher's raw answer, or the Stage-1 profile (calibrated, balanced vote)
    voters: Literal["teachers", "stage1"] = "stage1"
    temperature: float = Field(0.7, gt=0)  # rollouts closer to the greedy answer that is evaluated and served
    beta: float = Field(0.0, ge=0)  # KL anchor to the SFT model (0 = no reference model)
    loss_type: str = "dapo"  # TRL GRPOConfig.loss_type
    reward: Literal["confidence", "random"] = "confidence"  # "random" is the control experiment
    prior_power: float = Field(0.0, ge=0)  # >0: quasi-GT class = argmax vote / prior^power (docs/training.md)
    reward_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)  # agreement, format, calibration
    val_every: int = Field(20, ge=0)  # label-free validation every N steps, best step kept; 0 = keep the last
    # Prompts without a Stage-1 confidence (users outside the teacher budget): difficulty from the student's own
    # agreement. `presample` rollouts per candidate prompt (0 = keep them all), of `presample_pool` candidates
    # (0 = 2 x steps x prompts_per_step); kept when the mean vote share over attributes lies in `self_band`.
    presample: int = Field(4, ge=0)
    presample_pool: int = Field(0, ge=0)
    self_band: tuple[float, float] = (0.5, 0.95)
    # Weight of a rollout's `unknown` (stated confidence 0) in the rollouts' vote: 0 = it never wins, so without a
    # Stage-1 voter GRPO teaches guessing; > 0 lets the student's own abstentions survive the vote.
    rollout_unknown_weight: float = Field(0.0, ge=0)


class EvalSettings(Strict):
    """Scoring students on the gold evaluation users."""

    users: int = Field(0, ge=0)  # first N gold eval users by id; 0 = all of them (the users teachers are scored on)
    batch_size: int = Field(64, ge=1)
    samples: int = Field(0, ge=0)  # >0: also report avg@k / maj@k over k sampled answers (T=1)
    # Self-consistency: >1 answers with the confidence-weighted vote over k sampled answers instead of greedy.
    answer_samples: int = Field(1, ge=1)
    answer_temperature: float = Field(0.7, gt=0)  # sampling temperature of those k answers
    # A greedy answer that lacks attributes (broken JSON, a class outside the taxonomy) gets this many sampled
    # answers at answer_temperature, and what it lacks is filled from their vote (student_eval.fill_invalid);
    # valid_rate counts after that, valid_rate_first before. Mirrors inference.retry_invalid. 0 = off.
    retry_invalid: int = Field(4, ge=0)
    plots: bool = True  # reliability diagram of every evaluated student under runs/<key>/plots/


class TrainSettings(Strict):
    student: str = "tiny"  # preset name, a local HF path, or a models:/ URI
    lora: bool = False
    lora_r: int = Field(16, ge=1)  # LoRA rank when lora=True (GPU checkpoints)
    seed: int = 13
    work_dir: str | None = None  # local checkpoints; None: <data_dir>/work
    threads: int | None = Field(None, ge=1)  # torch CPU threads; None: torch's default
    sft: SFTSettings = Field(default_factory=SFTSettings)
    rl: RLSettings = Field(default_factory=RLSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    # Weekly warm start (train/warm_start.py): auto = fine-tune the champion when it has this run's taxonomy and
    # tokenizer, else cold (the reason is in the summary); champion = require that; cold = from scratch.
    warm_start: Literal["auto", "champion", "cold"] = "auto"
    # Presets' tokenizer: "lake" = the deployment's, trained once at deployment/tokenizers/<preset>-<version>
    # and reused every week (a new version means a cold start); "run" = trained on each run's documents.
    tokenizer: Literal["lake", "run"] = "lake"
    tokenizer_version: str = Field("v1", pattern=r"^[A-Za-z0-9._-]+$")


class ComputeSettings(Strict):
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


class EvaluationSettings(Strict):
    """The evaluation split (`splits.Split`): a hash of the (salted) user id puts `share` of the users in the
    held-out evaluation set that no student trains on. The empty salt is the historical split; a new salt
    draws new evaluation users (docs/labels.md, "Without gold")."""

    share: float = Field(0.2, gt=0, lt=1)
    salt: str = ""


class PromotionSettings(Strict):
    f1_margin: float = 0.5  # points
    ece_limit: float = Field(0.10, ge=0, le=1)
    attribute_drop_tolerance: float = Field(3.0, ge=0)  # points
    # A week without gold: "hold" keeps the champion (the new model is challenger only); "quasi_labels"
    # applies the rules above to rows scored on the quasi-labels (the calibrated vote on the evaluation users).
    without_gold: Literal["hold", "quasi_labels"] = "hold"


class MlflowSettings(Strict):
    tracking_uri: str | None = None  # None: sqlite under data_dir
    registry_uri: str | None = None
    experiment: str = "conf-profile"
    model_name: str = "conf-profile-student"
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    ui_url: str | None = None  # MLflow UI base for Airflow links; None: tracking_uri when http(s), else local
    # Bounded HTTP to a tracking server (MLFLOW_HTTP_REQUEST_TIMEOUT / _MAX_RETRIES unless set in the env), so a
    # server that is down fails within seconds instead of MLflow's minutes of retries.
    http_timeout_s: float = Field(10.0, gt=0)
    http_max_retries: int = Field(2, ge=0)


class InferenceSettings(Strict):
    """How the daily inference profiles users with the student (docs/inference.md): `local` (batched
    transformers in the task's process), `vllm` (vllm.LLM offline in a GPU pod) or `openai` (an
    OpenAI-compatible server such as `vllm serve` of the champion). Same prompt, parser and vote for all."""

    backend: Literal["local", "vllm", "openai"] = "local"
    samples: int = Field(1, ge=1)  # 1: greedy; k > 1: confidence-weighted vote over k sampled answers
    temperature: float = Field(0.7, gt=0)  # sampling temperature of those k answers
    # samples = 1: an answer that lacks attributes is retried with this many sampled answers, the attributes
    # it lacks filled from their vote (as train.eval.retry_invalid does for the report card). 0 = off.
    retry_invalid: int = Field(4, ge=0)
    batch_size: int | None = Field(None, ge=1)  # users per backend call; None: compute.inference_batch_size
    max_tokens: int | None = Field(None, ge=1)  # None: the longest valid answer (local, vllm) or 512 (openai)
    seed: int | None = None
    # openai backend: the server, the served model name, bounded HTTP. The key is read from the environment
    # variable named by api_key_env, never from a file.
    base_url: str | None = None  # e.g. http://vllm-student:8000/v1
    model: str = "student"  # --served-model-name of the server
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(60.0, gt=0)  # per request, the whole reply included
    max_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(1.0, ge=0)
    max_concurrency: int = Field(16, ge=1)
    max_error_share: float = Field(0.01, ge=0, le=1)  # failed users above this share fail the task (retried)
    # vllm backend: extra vllm.LLM(...) keyword arguments (gpu_memory_utilization, max_model_len, ...).
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
