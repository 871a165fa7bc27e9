"""The student as an MLflow pyfunc model: logs with pinned requirements, loads from the registry, generates,
and the training code's model resolver finds the HF folder inside the logged model."""

from __future__ import annotations

import mlflow
import mlflow.pyfunc

from conf_profile.registry import models

DOCS = ["## profile\nnickname: ⟦sunny_cat⟧\nbio: ⟦mom of two, love baking⟧",
        "## searches\n- ⟦best stroller 2026⟧\n- ⟦elden ring boss guide⟧"]


def test_student_pyfunc_roundtrip(mlflow_tracking, tmp_settings, tmp_path):
    from conf_profile.train import student

    folder = student.build_preset("tiny", DOCS * 20 + ['{"gender": {"label": "female", "confidence": 0.8}}'] * 20,
                                  tmp_path / "tiny")
    tr = mlflow_tracking
    with mlflow.start_run(experiment_id=tr.experiment_id) as run:
        info = models.log_student(folder, tmp_settings.taxonomy_path, batch_size=2)
    reqs = models.pip_requirements()
    assert reqs[0].startswith("conf-profile==") and any(r.startswith("torch==") for r in reqs)
    assert all("+" not in r for r in reqs)  # local version labels (e.g. +cpu) are not pinnable from PyPI

    out = models.register_student(
        tr.client, "student-pyfunc",
        {"data_interval": "2026-11-09..2026-11-16", "code_version": "t", "dataset_hash": "d", "config_hash": "c",
         "model_hash": "m"},
        {"dag_run_id": "r1"}, lambda: info, run_id=run.info.run_id)
    assert out["model_version"] == "1" and not out["reused"]

    loaded = mlflow.pyfunc.load_model("models:/student-pyfunc/1")
    answers = loaded.predict(DOCS)
    assert isinstance(answers, list) and len(answers) == 2 and all(isinstance(a, str) for a in answers)

    local = student.resolve("models:/student-pyfunc/1", tmp_settings, cache=tmp_path / "dl")
    assert (local / "config.json").is_file() and (local / "tokenizer.json").is_file()
