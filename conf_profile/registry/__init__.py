"""MLflow logging, model registration and the promotion gate (issue 5).

- `tracking`: one parent MLflow run per DAG run, child runs per stage, lineage, hashes and code identity;
- `models`: the student as a pyfunc model, idempotent registration (no duplicate version on rerun);
- `promotion`: the gate of method.md ("Promotion"), challenger/champion aliases, manual promote, rollback.

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
