"""Where and how training runs: device, CPU threads, local work dirs, MLflow reporting.

Why: the same functions run in-process on a 2-core CPU, in a GPU pod under `accelerate launch`, and inside
an Airflow task that already holds an MLflow run; these helpers keep those decisions in one place.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conf_profile.config import Settings
from conf_profile.intervals import Interval


def setup_torch(settings: Settings) -> None:
    import torch

    if settings.train.threads:
        torch.set_num_threads(settings.train.threads)
    compact_logprobs_on_cpu()


def compact_logprobs_on_cpu() -> bool:
    """Make TRL's fused LM head score only the label positions on CPU, as it already does on CUDA.

    Why: TRL 1.16 projects through the LM head only the positions that carry a label when Triton runs the
    kernel; on other devices it scores every position (to keep tile shapes fixed for compilers such as
    Neuron's). Our examples are ~90 % prompt, so on CPU that made the LM head ~80 % of an SFT step; compact
    scoring gives the same loss and gradients and SFT steps ~4x faster (docs/training.md). The decision is a
    module-level helper in trl.trainer.utils, used only for that choice; the kernel picks its own backend.
    Returns whether the patch is in place (False on a TRL without that helper: nothing changes)."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        return False
    if getattr(original, "_conf_profile_compact", False):
        return True

    def compact_on_cpu(device) -> bool:
        return device.type == "cpu" or original(device)

    compact_on_cpu._conf_profile_compact = True
    trl_utils._use_triton = compact_on_cpu
    return True


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def use_vllm() -> bool:
    """vLLM colocated generation for GRPO: only with a GPU and vllm installed."""
    return has_gpu() and importlib.util.find_spec("vllm") is not None


def work_dir(settings: Settings, interval: Interval, stage: str) -> Path:
    """Local folder for checkpoints and temporary model folders of one stage (survives a crash: resume)."""
    root = Path(settings.train.work_dir) if settings.train.work_dir else settings.data_dir / "work"
    path = (root / interval.key / stage).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def mlflow_active() -> bool:
    """True when the caller (pipeline/orchestration) holds an MLflow run; we never start one ourselves."""
    try:
        import mlflow
    except ImportError:  # pragma: no cover
        return False
    return mlflow.active_run() is not None


def report_to() -> list[str]:
    return ["mlflow"] if mlflow_active() else []


def device_args() -> dict:
    """TrainingArguments for the device: transformers 5 uses `use_cpu`; TRL defaults bf16=True, wrong on CPU."""
    gpu = has_gpu()
    return {"use_cpu": not gpu, "bf16": gpu, "activation_checkpointing": False}


def log_params(params: dict) -> None:
    if mlflow_active():
        import mlflow

        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})


def log_metrics(metrics: dict[str, float], prefix: str = "") -> None:
    if mlflow_active():
        import mlflow

        mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)})


def stage_logger(stage: str):
    """A TrainerCallback that logs the trainer's metrics to the active MLflow run as `<stage>/<name>`.

    Why not report_to="mlflow": HF's MLflowCallback logs every TrainingArguments field as a run param, and
    SFT and GRPO in one run would then log e.g. `learning_rate` twice with different values, which MLflow
    rejects; unprefixed `loss` curves of both stages would also interleave."""
    import logging

    from transformers import TrainerCallback

    log = logging.getLogger(f"conf_profile.train.{stage}")

    class _StageLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            clean = {f"{stage}/{k}": float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            if clean:  # the task log shows the loss every logging step, at INFO (no progress bars off a terminal)
                log.info("step %d/%d: %s", state.global_step, state.max_steps,
                         ", ".join(f"{k.split('/', 1)[1]} {v:.4g}" for k, v in clean.items()))
            if clean and mlflow_active():
                import mlflow

                mlflow.log_metrics(clean, step=state.global_step)

    return _StageLogger()


def quiet_stdout(trainer) -> None:
    """Without a progress display (--json, no TTY) the trainer must not print its logs on stdout, which
    carries exactly one JSON object; the logs stay in trainer.state.log_history and go to MLflow."""
    from transformers.trainer_callback import PrinterCallback

    from conf_profile import progress

    if not progress.enabled():
        trainer.remove_callback(PrinterCallback)


def set_tags(tags: dict[str, str]) -> None:
    """Tags on the caller's active MLflow run (e.g. warm_start_from), none without one."""
    if mlflow_active():
        import mlflow

        mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})
