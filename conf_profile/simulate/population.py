"""Latent users: attributes drawn from one joint distribution, plus the static traits that depend on them.

Order of the draw (each step conditions on the earlier ones): age -> gender -> life stage | age ->
education | age -> occupation | education, age, life stage, gender -> city tier | education, occupation ->
consumption | occupation, tier, age (a latent income score) -> interests | gender, age, life stage,
occupation (Gumbel top-k of affinity logits). Why conditional tables instead of independent marginals:
teachers and students exploit correlations (a retiree is rarely 25), and so must the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conf_profile.taxonomy import Taxonomy

AGE_P = {"under_18": 0.08, "18_24": 0.19, "25_34": 0.26, "35_44": 0.21, "45_54": 0.14, "55_plus": 0.12}
AGE_YEARS = {"under_18": (13, 17), "18_24": (18, 24), "25_34": (25, 34), "35_44": (35, 44), "45_54": (45, 54),
             "55_plus": (55, 79)}
MALE_P = {"under_18": 0.52, "18_24": 0.52, "25_34": 0.51, "35_44": 0.5, "45_54": 0.49, "55_plus": 0.46}

LIFE = ["student", "single_adult", "couple_no_children", "parent_young_children", "parent_school_children",
        "empty_nester"]
LIFE_GIVEN_AGE = {
    "under_18": [1.0, 0, 0, 0, 0, 0],
    "18_24": [0.50, 0.34, 0.09, 0.06, 0.01, 0],
    "25_34": [0.05, 0.36, 0.23, 0.30, 0.06, 0],
    "35_44": [0.01, 0.14, 0.11, 0.27, 0.44, 0.03],
    "45_54": [0, 0.11, 0.08, 0.03, 0.42, 0.36],
    "55_plus": [0, 0.10, 0.08, 0.01, 0.04, 0.77],
}
EDU = ["secondary_or_below", "vocational", "bachelor", "postgraduate"]
EDU_GIVEN_AGE = {
    "under_18": [0.93, 0.07, 0, 0],
    "18_24": [0.25, 0.25, 0.44, 0.06],
    "25_34": [0.22, 0.24, 0.38, 0.16],
    "35_44": [0.28, 0.25, 0.33, 0.14],
    "45_54": [0.35, 0.26, 0.29, 0.10],
    "55_plus": [0.45, 0.25, 0.22, 0.08],
}
OCC = ["student", "office_worker", "tech_professional", "service_worker", "manual_worker", "self_employed",
       "healthcare", "educator", "homemaker", "retired"]
# Occupation weight = product of one factor per conditioning attribute (a log-linear model).
OCC_BY_EDU = {
    "secondary_or_below": [1, 0.6, 0.1, 1.6, 1.8, 1.0, 0.3, 0.05, 1.0, 1],
    "vocational": [1, 0.8, 0.5, 1.2, 1.5, 1.0, 0.9, 0.15, 0.6, 1],
    "bachelor": [1, 1.6, 1.1, 0.6, 0.3, 0.8, 0.8, 0.7, 0.4, 1],
    "postgraduate": [1, 1.2, 1.7, 0.2, 0.1, 0.6, 1.3, 1.3, 0.2, 1],
}
OCC_BY_AGE = {
    "under_18": [60, 0, 0, 0.6, 0, 0, 0, 0, 0, 0],
    "18_24": [3, 1, 0.6, 1.2, 0.8, 0.4, 0.5, 0.3, 0.3, 0],
    "25_34": [0.1, 1, 1, 1, 1, 0.8, 1, 1, 0.8, 0],
    "35_44": [0, 1, 0.8, 0.9, 1, 1.1, 1, 1, 1, 0.01],
    "45_54": [0, 1, 0.5, 0.9, 1, 1.2, 1, 1, 1, 0.25],
    "55_plus": [0, 0.3, 0.1, 0.3, 0.4, 0.5, 0.3, 0.3, 0.6, 7],
}
OCC_BY_LIFE = {
    "student": [25, 0.3, 0.3, 0.6, 0.3, 0.1, 0.2, 0.1, 0.05, 0.1],
    "single_adult": [0.3, 1, 1, 1, 1, 1, 1, 1, 0.1, 1],
    "couple_no_children": [0.1, 1, 1, 1, 1, 1, 1, 1, 0.6, 1],
    "parent_young_children": [0, 1, 1, 1, 1, 1, 1, 1, 2.5, 0.5],
    "parent_school_children": [0, 1, 1, 1, 1, 1, 1, 1, 1.5, 0.5],
    "empty_nester": [0, 1, 0.8, 1, 1, 1, 1, 1, 1.2, 1.5],
}
OCC_BY_GENDER = {
    "male": [1, 1, 1.6, 0.9, 1.8, 1.2, 0.5, 0.6, 0.08, 1],
    "female": [1, 1, 0.5, 1.1, 0.3, 0.9, 1.6, 1.5, 1.8, 1],
}
TIER = ["tier1", "tier2", "tier3", "rural"]
TIER_BASE = [0.22, 0.32, 0.29, 0.17]
TIER_BY_EDU = {"secondary_or_below": [0.7, 0.9, 1.2, 1.6], "vocational": [0.9, 1.0, 1.2, 1.1],
               "bachelor": [1.2, 1.1, 0.9, 0.6], "postgraduate": [1.8, 1.1, 0.6, 0.4]}
TIER_BY_OCC = {"tech_professional": [2.0, 1.1, 0.5, 0.3], "manual_worker": [0.6, 0.9, 1.2, 1.5],
               "retired": [0.8, 1.0, 1.1, 1.3], "homemaker": [0.8, 1.0, 1.1, 1.2]}
CONS = ["low", "medium", "high"]
INCOME_BY_OCC = {"student": -0.7, "office_worker": 0.2, "tech_professional": 0.9, "service_worker": -0.4,
                 "manual_worker": -0.3, "self_employed": 0.35, "healthcare": 0.4, "educator": 0.1,
                 "homemaker": -0.2, "retired": -0.3}
INCOME_BY_TIER = [0.5, 0.2, -0.15, -0.55]
INCOME_BY_AGE = {"under_18": -0.3, "18_24": -0.2, "25_34": 0.0, "35_44": 0.15, "45_54": 0.2, "55_plus": 0.0}
INCOME_CUTS = (-0.3, 0.65)  # latent income score -> low / medium / high

INTERESTS = ["gaming", "beauty_fashion", "sports_fitness", "food_cooking", "travel", "technology", "parenting",
             "finance", "music", "pets", "automotive", "learning", "entertainment", "health_wellness", "home_diy"]
INT_BASE = [0, 0, 0, 0.3, 0, 0, -2.5, -0.6, 0.2, -0.3, -0.5, -0.3, 0.6, -0.3, -0.5]
INT_BY_GENDER = {
    "male": [1.0, -1.6, 0.5, -0.2, 0, 0.8, -0.4, 0.3, 0, -0.1, 1.2, 0, 0, -0.3, 0.2],
    "female": [-0.8, 1.4, -0.1, 0.4, 0.3, -0.4, 0.2, -0.1, 0.1, 0.3, -1.2, 0.1, 0.1, 0.4, 0.1],
}
INT_BY_AGE = {
    "under_18": [1.5, 0.3, 0.3, -0.8, -0.8, 0.3, -3, -2, 1, 0.2, -1, 1.2, 0.8, -1.5, -1.5],
    "18_24": [1, 0.4, 0.3, 0, 0.3, 0.4, -2, -0.5, 0.8, 0, -0.3, 0.6, 0.6, -0.6, -0.8],
    "25_34": [0.2, 0.2, 0.2, 0.3, 0.5, 0.3, 0, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0],
    "35_44": [-0.4, 0, 0, 0.4, 0.2, 0, 0.3, 0.5, -0.2, 0.1, 0.2, -0.2, 0, 0.3, 0.4],
    "45_54": [-1, -0.2, -0.2, 0.5, 0.4, -0.2, -0.3, 0.7, -0.3, 0.1, 0.3, -0.4, 0, 0.7, 0.6],
    "55_plus": [-1.8, -0.5, -0.5, 0.6, 0.6, -0.6, -1, 0.5, -0.2, 0.3, 0, -0.5, 0.2, 1.2, 0.8],
}
INT_BY_LIFE = {"student": {"learning": 0.8, "gaming": 0.3}, "couple_no_children": {"travel": 0.4},
               "parent_young_children": {"parenting": 3.5}, "parent_school_children": {"parenting": 2.5},
               "empty_nester": {"travel": 0.4, "home_diy": 0.3}}
INT_BY_OCC = {"tech_professional": {"technology": 1.2}, "self_employed": {"finance": 0.5},
              "office_worker": {"finance": 0.3}, "healthcare": {"health_wellness": 0.8},
              "educator": {"learning": 0.8}, "homemaker": {"food_cooking": 0.6, "home_diy": 0.5, "parenting": 0.5},
              "retired": {"health_wellness": 0.5}, "manual_worker": {"automotive": 0.5, "home_diy": 0.5}}
N_INTERESTS_P = [0.25, 0.40, 0.35]  # 1, 2 or 3 gold interests
SECONDARY = 2  # next-ranked affinities: watched, but not gold interests (ambiguity on purpose)

SIM_CLASSES: dict[str, list[str]] = {
    "gender": ["male", "female"], "age_group": list(AGE_P), "occupation": OCC, "life_stage": LIFE,
    "education": EDU, "consumption_level": CONS, "city_tier": TIER, "interests": INTERESTS,
}


@dataclass
class Latents:
    """Gold attributes of a cohort; class indices follow SIM_CLASSES order (== the taxonomy's)."""

    single: dict[str, np.ndarray]
    interests: np.ndarray  # (n, K) bool, the gold interests
    affinity: np.ndarray  # (n, K) float in [0, 1]: 1 gold interest, 0.3-0.45 secondary, else 0
    age_years: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.age_years)


def check_taxonomy(taxonomy: Taxonomy) -> None:
    """The simulator models a fixed taxonomy; a changed one must fail loudly, not produce wrong gold."""
    from conf_profile.errors import ConfigError

    got = {a.name: list(a.classes) for a in taxonomy.attributes}
    if got != SIM_CLASSES:
        diff = sorted(k for k in set(got) | set(SIM_CLASSES) if got.get(k) != SIM_CLASSES.get(k))
        raise ConfigError(
            f"The simulator models the ProfileBench taxonomy, but the taxonomy in use differs on: {', '.join(diff)}.",
            "Simulate with conf_profile/resources/taxonomy.yaml, or extend conf_profile/simulate/population.py "
            "(and its cues) for the new attributes or classes.",
        )


def draw_latents(n: int, rng: np.random.Generator) -> Latents:
    """One cohort of users from the joint distribution (vectorised: one categorical draw per step)."""
    age = categorical(rng, np.tile(list(AGE_P.values()), (n, 1)))
    age_names = list(AGE_P)
    male_p = np.array([MALE_P[a] for a in age_names])[age]
    gender = (rng.random(n) >= male_p).astype(np.int64)  # 0 male, 1 female
    life = categorical(rng, table(LIFE_GIVEN_AGE, age_names)[age])
    edu = categorical(rng, table(EDU_GIVEN_AGE, age_names)[age])
    occ_w = (table(OCC_BY_EDU, EDU)[edu] * table(OCC_BY_AGE, age_names)[age]
             * table(OCC_BY_LIFE, LIFE)[life] * table(OCC_BY_GENDER, ["male", "female"])[gender])
    occ = categorical(rng, occ_w)
    tier_w = np.asarray(TIER_BASE) * table(TIER_BY_EDU, EDU)[edu] * _rows(TIER_BY_OCC, OCC, 4)[occ]
    tier = categorical(rng, tier_w)
    income = (np.array([INCOME_BY_OCC[o] for o in OCC])[occ] + np.asarray(INCOME_BY_TIER)[tier]
              + np.array([INCOME_BY_AGE[a] for a in age_names])[age] + rng.normal(0, 0.55, n))
    cons = np.digitize(income, INCOME_CUTS)
    lo, hi = np.array([AGE_YEARS[a] for a in age_names]).T
    years = lo[age] + (rng.random(n) * (hi[age] - lo[age] + 1)).astype(np.int64)
    interests, affinity = draw_interests(rng, gender, age, life, occ)
    single = {"gender": gender, "age_group": age, "occupation": occ, "life_stage": life, "education": edu,
              "consumption_level": cons, "city_tier": tier}
    return Latents(single, interests, affinity, years, {"income": income})


def draw_interests(rng: np.random.Generator, gender: np.ndarray, age: np.ndarray, life: np.ndarray,
                   occ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel top-k of affinity logits: the top k are gold, the next SECONDARY are watched but not gold."""
    n, k = len(gender), len(INTERESTS)
    logits = (np.asarray(INT_BASE) + table(INT_BY_GENDER, ["male", "female"])[gender]
              + table(INT_BY_AGE, list(AGE_P))[age] + _sparse_rows(INT_BY_LIFE, LIFE)[life]
              + _sparse_rows(INT_BY_OCC, OCC)[occ])
    order = np.argsort(-(logits + rng.gumbel(size=(n, k))), axis=1)
    n_gold = 1 + categorical(rng, np.tile(N_INTERESTS_P, (n, 1)))
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k)[None, :].repeat(n, 0), axis=1)
    gold = rank < n_gold[:, None]
    secondary = (rank >= n_gold[:, None]) & (rank < n_gold[:, None] + SECONDARY)
    affinity = gold * 1.0 + secondary * rng.uniform(0.3, 0.45, (n, 1))
    return gold, affinity


def categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) weight matrix (inverse CDF, vectorised)."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def table(rows: dict[str, list[float]], order: list[str]) -> np.ndarray:
    return np.array([rows[r] for r in order], dtype=float)


def _rows(rows: dict[str, list[float]], order: list[str], width: int) -> np.ndarray:
    return np.array([rows.get(r, [1.0] * width) for r in order], dtype=float)


def _sparse_rows(rows: dict[str, dict[str, float]], order: list[str]) -> np.ndarray:
    out = np.zeros((len(order), len(INTERESTS)))
    for i, r in enumerate(order):
        for name, v in rows.get(r, {}).items():
            out[i, INTERESTS.index(name)] = v
    return out
