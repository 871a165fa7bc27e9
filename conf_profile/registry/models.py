"""The student as an MLflow model, and idempotent registration.

Why pyfunc with the HF folder as an artifact: the CPU student is built from a config with a corpus-trained
tokenizer (no hub id), which the transformers flavour cannot describe; a pyfunc wrapper around the saved folder
loads anywhere with the pinned requirements, and `conf_profile.train.student.resolve("models:/...")` finds the
HF folder inside the downloaded model too. `predict` reuses the evaluation's batched generation, so inference
and evaluation decode the same way.

Idempotency: a version is keyed by (data_interval, code_version, dataset_hash, config_hash, model_hash: the
content of the registered model folder, so a version always points at exactly the artefacts that were
evaluated, and a rerun that retrained to other weights registers a new version). Before logging
anything, `register_student` searches for a version with those tags and reuses it; a rerun of the same
interval on the same code and data therefore never creates a duplicate. If two registrations race anyway,
the later duplicate is deleted after the fact and the older version kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from conf_profile import __version__

log = logging.getLogger("conf_profile.registry")

KEY_TAGS = ("data_interval", "code_version", "dataset_hash", "config_hash", "model_hash")
_PINNED = ("torch", "transformers", "tokenizers", "pyarrow", "numpy", "pydantic", "pyyaml", "mlflow")


class StudentModel(mlflow.pyfunc.PythonModel):
    """Input: a list of documents. Output: the raw answer per document; parse it with
    conf_profile.train.compat.parse_answer (the shared parser). The type hints give MLflow the signature."""

    def load_context(self, context) -> None:
        from conf_profile.taxonomy import load_taxonomy
        from conf_profile.train import student

        folder = student._find_model_dir(Path(context.artifacts["student"]), "student")
        self.model, self.tok = student.load(folder)
        self.taxonomy = load_taxonomy(context.artifacts.get("taxonomy"))
        self.batch_size = int((context.model_config or {}).get("batch_size", 64))

    def predict(self, context, model_input: list[str], params: dict[str, Any] | None = None) -> list[str]:
        from conf_profile.train.student_eval import answer_budget, generate

        batch = int((params or {}).get("batch_size", self.batch_size))
        texts = generate(self.model, self.tok, [str(d) for d in model_input],
                         answer_budget(self.tok, self.taxonomy), batch, desc="profile")
        return [t[0] if t else "" for t in texts]


def pip_requirements() -> list[str]:
    reqs = [f"conf-profile=={__version__}"]
    for pkg in _PINNED:
        try:
            reqs.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return reqs


def log_student(model_dir: Path, taxonomy_path: Path, batch_size: int = 64) -> Any:
    """Log the HF folder as a pyfunc model in the active run; returns MLflow's ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="student",
        python_model=StudentModel(),
        artifacts={"student": str(model_dir), "taxonomy": str(taxonomy_path)},
        pip_requirements=pip_requirements(),
        model_config={"batch_size": batch_size},
    )


def find_version(client: Any, name: str, key: dict[str, str]) -> Any | None:
    """The oldest version of `name` whose tags match `key` (KEY_TAGS), or None."""
    from mlflow.exceptions import MlflowException

    clauses = [f"name = '{_q(name)}'"] + [f"tags.{k} = '{_q(v)}'" for k, v in key.items()]
    try:
        found = client.search_model_versions(" and ".join(clauses))
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
            return None
        raise
    found = sorted(found, key=lambda mv: int(mv.version))
    return found[0] if found else None


def ensure_registered_model(client: Any, name: str, description: str = "") -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=description or None,
                                           tags={"conf_profile": "student"})
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise


def register_student(client: Any, name: str, key: dict[str, str], tags: dict[str, str],
                     log_model: Callable[[], Any], run_id: str | None = None) -> dict:
    """Idempotent: reuse the version with the same key tags, else log the model (via `log_model`, called only
    when needed) and create a version carrying `key` and `tags`."""
    missing = [k for k in KEY_TAGS if not key.get(k)]
    if missing:
        raise ValueError(f"registration key lacks {missing}")
    ensure_registered_model(client, name, "conf-profile student: label-free user profiling "
                                          "(registered by the conf_profile_refresh DAG)")
    existing = find_version(client, name, key)
    if existing is not None:
        log.info("reusing %s v%s (same data interval, code and data: %s)", name, existing.version, key)
        return {"model_name": name, "model_version": str(existing.version), "reused": True,
                "source": existing.source}
    info = log_model()
    all_tags = {**{k: str(v) for k, v in tags.items()}, **key}
    mv = client.create_model_version(name, source=info.model_uri, run_id=run_id, tags=all_tags,
                                     model_id=getattr(info, "model_id", None))
    # A concurrent registration with the same key: keep the oldest version, drop ours.
    first = find_version(client, name, key)
    if first is not None and str(first.version) != str(mv.version):
        client.delete_model_version(name, mv.version)
        log.warning("dropped duplicate %s v%s; v%s has the same key", name, mv.version, first.version)
        return {"model_name": name, "model_version": str(first.version), "reused": True, "source": first.source}
    log.info("registered %s v%s from %s", name, mv.version, info.model_uri)
    return {"model_name": name, "model_version": str(mv.version), "reused": False, "source": info.model_uri,
            "model_id": getattr(info, "model_id", None)}


def list_versions(client: Any, name: str, limit: int = 50) -> list[dict]:
    from mlflow.exceptions import MlflowException

    from conf_profile.registry.promotion import CHALLENGER, CHAMPION, get_alias

    try:
        versions = client.search_model_versions(f"name = '{_q(name)}'", max_results=limit,
                                                order_by=["version_number DESC"])
    except MlflowException:
        return []
    champ, chall = _v(get_alias(client, name, CHAMPION)), _v(get_alias(client, name, CHALLENGER))
    out = []
    for mv in versions:
        t = mv.tags or {}
        aliases = [a for a, v in ((CHAMPION, champ), (CHALLENGER, chall)) if v == str(mv.version)]
        out.append({"version": str(mv.version), "aliases": aliases, "data_interval": t.get("data_interval"),
                    "f1": t.get("metric.f1"), "ece": t.get("metric.ece"),
                    "decision": t.get("promotion_decision"), "rolled_back": t.get("rolled_back") == "true",
                    "dag_run_id": t.get("dag_run_id"), "code_version": t.get("code_version"),
                    "created": mv.creation_timestamp})
    return out


def _v(mv: Any) -> str | None:
    return None if mv is None else str(mv.version)


def _q(text: str) -> str:
    return str(text).replace("'", "\\'")
