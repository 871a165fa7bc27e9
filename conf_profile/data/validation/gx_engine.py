"""The Great Expectations 1.x runtime validation uses: one context per process, and the GX settings our
batches run under. Kept apart from `validate` (what is judged, how rows split, what is written) because
everything here is about GX's own overheads, and each piece says which one it removes and why that leaves
GX's results as they were."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_GX_LOCK = threading.Lock()


@functools.cache
def gx_context() -> tuple[Any, Any]:
    """One ephemeral, in-memory GX context per process, reused by every validation; imported lazily (GX
    takes seconds to import). Analytics and progress bars off: no network calls, no noise on stderr.

    Why reuse and no project-config saves: an ephemeral context keeps nothing, yet GX re-serialises its
    whole project config to YAML (in memory) on every datasource, asset or batch definition it adds: ~15 ms
    each, two per table. The context is created once and its saves are skipped; assets and batch
    definitions are made once per table name (`batch_definition`)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False))
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    ctx._save_project_config = lambda: None  # ephemeral and in memory: nothing to save
    ctx.data_sources.add_pandas("raw")
    return gx, ctx


def batch_definition(ctx: Any, name: str) -> Any:
    """The whole-dataframe batch definition of table `name` (the frame comes as a batch parameter)."""
    with _GX_LOCK:
        source = ctx.data_sources.get("raw")
        if name not in source.get_asset_names():
            return source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("interval")
        return source.get_asset(name).get_batch_definition("interval")


@contextmanager
def lean_gx(fingerprinted: bool) -> Iterator[None]:
    """While GX validates one of our batches: build each expectation's configuration once instead of on
    every read, and (`fingerprinted`: we supply the batch's fingerprint) skip GX's whole-frame hash.

    Why: GX 1.x's `Expectation.configuration` is a property that rebuilds an `ExpectationConfiguration`
    (a pydantic `dict()` of the whole expectation) each time it is read, and resolving one expectation's
    metrics reads it dozens of times (every domain, success and runtime kwarg): a third of GX's time on a
    small table. Nothing mutates an expectation while it is validated, so the value is the same each time;
    the memo lives for one validation only and holds the expectations it saw (so no id is reused). GX also
    fingerprints every frame under 1 GB (`pandas.util.hash_pandas_object`, ~0.1 s per 1M rows) only to
    record it in the batch markers. Both are back afterwards: plain GX elsewhere in the process is
    untouched. A GX of another shape (no such property or threshold) runs as is."""
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    original = Expectation.__dict__.get("configuration")
    build = original.fget if isinstance(original, property) else None
    memo: dict[int, tuple[Any, Any]] = {}

    def configuration(self: Any) -> Any:
        hit = memo.get(id(self))
        if hit is None or hit[0] is not self:
            hit = memo[id(self)] = (self, build(self))
        return hit[1]

    with _GX_LOCK:
        threshold = getattr(engine, "HASH_THRESHOLD", None)
        if build is not None:
            Expectation.configuration = property(configuration, doc=original.__doc__)
        if fingerprinted and threshold is not None:
            engine.HASH_THRESHOLD = 0
        try:
            yield
        finally:
            if build is not None:
                Expectation.configuration = original
            if threshold is not None:
                engine.HASH_THRESHOLD = threshold


def na_as_nan(results: list[Any]) -> None:
    """A null in an Arrow-backed column comes back from GX as `pd.NA`, which GX's own Data Docs renderer
    cannot compare; as a categorical it came back as NaN. Sample values get the NaN back (in place)."""
    import pandas as pd

    def fix(value: Any) -> Any:
        return float("nan") if value is pd.NA else value

    for r in results:
        res = r.result or {}
        if "partial_unexpected_list" in res:
            res["partial_unexpected_list"] = [fix(x) for x in res["partial_unexpected_list"]]
        if "partial_unexpected_counts" in res:
            res["partial_unexpected_counts"] = [{**c, "value": fix(c.get("value"))}
                                                for c in res["partial_unexpected_counts"]]
