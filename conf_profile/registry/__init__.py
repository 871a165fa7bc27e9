"""MLflow: lineage of every DAG run, model registration and the promotion gate.

- `tracking`: one parent MLflow run per DAG run, child runs per stage, lineage, hashes and code identity;
- `models`: the student as a pyfunc model, idempotent registration (no duplicate version on rerun);
- `promotion`: the gate of method.md ("Promotion"), challenger/champion aliases, manual promote, rollback;
- `metrics`: report-card rows as MLflow metrics, tables and version tags.

Importing this package is cheap; MLflow is imported by the submodules that need it.
"""

from conf_profile.registry.promotion import (
    CHALLENGER,
    CHAMPION,
    Candidate,
    ChampionView,
    Decision,
    PromotionError,
    decide,
)

__all__ = ["CHALLENGER", "CHAMPION", "Candidate", "ChampionView", "Decision", "PromotionError", "decide"]
