"""Per-channel analysis mapped over Dask workers.

A pipeline with a `plan` (see `acquisition.pipelines`) is split into one task per channel;
each worker opens the run store itself and reads only its channel (the store is plain files:
a shared or network file system gives remote workers the same run). Outcomes come back as
they complete (`on_piece` reports each one: progress), a failed channel is a
`ChannelFailure` with its error while the others complete, and the pipeline's own `combine`
builds the result exactly as the serial run does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any

from acquisition.pipelines import (
    ChannelFailure,
    ChannelPlan,
    PipelineInput,
    PipelineResult,
    get_pipeline,
    guarded,
    pipeline_module,
    run_plan,
)

OnPiece = Callable[[Hashable, Any], None]


def run_distributed(
    plan: ChannelPlan, client: Any, on_piece: OnPiece | None = None
) -> PipelineResult:
    """Execute `plan` on the Dask cluster behind `client` (a `distributed.Client`)."""
    from distributed import as_completed

    task = functools.partial(guarded, plan.work, plan.shared, expected=plan.expected)
    futures = client.map(task, list(plan.keys), pure=False)
    key_of = {f.key: k for f, k in zip(futures, plan.keys, strict=True)}
    outcomes: dict[Hashable, Any] = {}
    for future in as_completed(futures):
        key = key_of[future.key]
        try:
            outcomes[key] = future.result()
        except Exception as exc:  # the worker died or the result did not come back
            outcomes[key] = ChannelFailure(key, f"{type(exc).__name__}: {exc}")
        future.release()
        if on_piece is not None:
            on_piece(key, outcomes[key])
    return plan.combine({k: outcomes[k] for k in plan.keys})


def analyze(
    name: str, inp: PipelineInput, client: Any = None, on_piece: OnPiece | None = None
) -> PipelineResult:
    """Run pipeline `name`: its per-channel plan on `client`'s cluster (or serially without
    one); a pipeline without a plan runs as a whole, here."""
    make_plan = getattr(pipeline_module(name), "plan", None)
    if make_plan is None:
        return get_pipeline(name)(inp)
    plan = make_plan(inp)
    if client is None:
        return run_plan(plan, on_piece)
    return run_distributed(plan, client, on_piece)


def has_plan(name: str) -> bool:
    """True if pipeline `name` splits into per-channel pieces (and can be distributed)."""
    return hasattr(pipeline_module(name), "plan")
