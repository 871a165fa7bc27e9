"""Student factory: the CPU "tiny" preset built from a config, or any HF checkpoint (local path / MLflow URI).

Why presets from a config: there is no model hub here, and a from-scratch Qwen3-style model with a tokenizer
trained on the corpus is the only student that trains in minutes on two cores. On GPU the same code takes any
HF checkpoint, fully fine-tuned or with LoRA adapters (peft). Model references understood everywhere:
`tiny` (preset), `base` / `sft` / `rl` (this run's lake folder runs/<key>/models/<stage>), a local folder,
`models:/name@alias` or `runs:/<id>/<path>` (downloaded with mlflow.artifacts.download_artifacts).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conf_profile.config import Settings
from conf_profile.errors import ConfProfileError
from conf_profile.intervals import Interval
from conf_profile.storage import Lake

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: models come from paths and MLflow
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@dataclass(frozen=True)
class Preset:
    """A from-scratch Qwen3-architecture student (see docs/training.md for why these sizes)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp: int
    vocab: int
    max_positions: int = 1024


PRESETS: dict[str, Preset] = {
    "tiny": Preset(hidden=128, layers=2, heads=4, kv_heads=2, head_dim=32, mlp=384, vocab=4096),
    "small": Preset(hidden=256, layers=4, heads=4, kv_heads=2, head_dim=64, mlp=768, vocab=8192),
    # ~95 M parameters: a GPU smoke-test student (scripts/gpu-check.sh), big enough for vLLM and ZeRO-2 to matter.
    "gpu100m": Preset(hidden=768, layers=12, heads=12, kv_heads=4, head_dim=64, mlp=2304, vocab=16384,
                      max_positions=2048),
}
MODEL_STAGES = ("base", "sft", "rl")  # this run's model folders (not the pipeline's stages)


class ModelNotFound(ConfProfileError):
    """A model reference names nothing that exists."""


def model_dir(interval: Interval, stage: str) -> str:
    return Lake.run_dir(interval, "models", stage)


def build_preset(name: str, texts: list[str], out_dir: Path, seed: int = 13, tokenizer=None) -> Path:
    """Initialise the model from the preset with `tokenizer` (the deployment's, reused across weeks) or, without
    one, a tokenizer trained on `texts`; save both as an HF model dir."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from conf_profile.train.tokenizer import train_tokenizer

    p = PRESETS[name]
    tok = tokenizer if tokenizer is not None else train_tokenizer(texts, vocab_size=p.vocab)
    cfg = Qwen3Config(
        vocab_size=len(tok), hidden_size=p.hidden, intermediate_size=p.mlp, num_hidden_layers=p.layers,
        num_attention_heads=p.heads, num_key_value_heads=p.kv_heads, head_dim=p.head_dim,
        max_position_embeddings=p.max_positions, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None, do_sample=False
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def resolve(ref: str, settings: Settings, lake: Lake | None = None, interval: Interval | None = None,
            cache: Path | None = None) -> Path:
    """A local HF model folder for a model reference (see module docstring). Presets are not resolved here."""
    if ref in MODEL_STAGES:
        if lake is None or interval is None:
            raise ModelNotFound(f"Model {ref!r} names a run stage, but no lake/interval was given.",
                                "Pass --interval, or a path or models:/ URI.")
        rel = model_dir(interval, ref)
        if not lake.is_committed(rel):
            raise ModelNotFound(f"No committed {ref} model at {lake.uri_of(rel)}.",
                                f"Train it first (`conf-profile train {ref if ref != 'base' else 'sft'} "
                                f"--interval {interval}`).")
        return lake.local_dir(rel, cache)
    if ref.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        return _from_mlflow(ref, settings, cache)
    path = Path(ref).expanduser()
    if path.is_dir():
        return _find_model_dir(path, ref)
    raise ModelNotFound(f"Model {ref!r} is neither a preset ({', '.join(PRESETS)}), a stage ({', '.join(MODEL_STAGES)}), "
                        "a local folder nor an MLflow URI.",
                        "Pass e.g. --model sft, --model /path/to/hf_model or --model models:/conf-profile-student@champion.")


def _from_mlflow(uri: str, settings: Settings, cache: Path | None) -> Path:
    import mlflow
    import mlflow.artifacts
    import mlflow.tracking

    dst = cache or Path(tempfile.mkdtemp(prefix="conf-profile-model-"))
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or settings.mlflow_tracking_uri
    # MLflow resolves a version's logged-model source (models:/m-...) through the process-wide tracking URI,
    # which a bare CLI run never set: point it at the settings' store for the download, then restore it.
    before = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking,
            registry_uri=settings.mlflow.registry_uri or tracking,
        )
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; the user needs one message
        raise ModelNotFound(f"Cannot download {uri} from MLflow: {exc}.",
                            "Check the model name/alias (`mlflow models` UI) and the tracking URI.") from None
    finally:
        if before is not None:
            mlflow.set_tracking_uri(before)
    return _find_model_dir(Path(local), uri)


def _find_model_dir(root: Path, ref: str) -> Path:
    """The folder holding config.json (a logged MLflow model nests the HF folder one or two levels down)."""
    if (root / "config.json").is_file():
        return root
    found = sorted(root.rglob("config.json"), key=lambda p: len(p.parts))
    if not found:
        raise ModelNotFound(f"{ref} holds no HF model (no config.json).", "Point at a saved HF model folder.")
    return found[0].parent


def load(path: Path, for_training: bool = False):
    """(model, tokenizer) from a local HF folder, fp32 on CPU; generation config fixed up (eos/pad)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if torch.cuda.is_available() and not for_training else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def lora_config(settings: Settings):
    """peft LoRA on all linear layers (GPU checkpoints); None when full fine-tuning."""
    if not settings.train.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.train.lora_r, lora_alpha=2 * settings.train.lora_r, lora_dropout=0.05,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def save_final(trainer, tok, final: Path, lake: Lake, rel: str, meta: dict, base: Path) -> None:
    """Save the trained model as a plain HF folder and commit it to the lake (main process only).

    `trainer.save_model` gathers ZeRO-3 shards; with LoRA it writes only the adapter, which is then merged
    into the base so that every saved stage loads as is (GRPO, vLLM, evaluation, MLflow)."""
    import shutil

    shutil.rmtree(final, ignore_errors=True)
    trainer.save_model(str(final))
    if trainer.accelerator.is_main_process:
        if (final / "adapter_config.json").is_file():
            from peft import PeftModel

            model, _ = load(base, for_training=True)
            merged = PeftModel.from_pretrained(model, final).merge_and_unload()
            shutil.rmtree(final)
            merged.save_pretrained(final)
        tok.save_pretrained(final)
        lake.upload_dir(final, rel, meta=meta)
    trainer.accelerator.wait_for_everyone()
