"""Per-channel analysis mapped over Dask workers.

A pipeline with a `plan` (see `cryodaq.acquisition.pipelines`) is split into one task per channel;
each worker opens the run store itself and reads only its channel (the store is plain files:
a shared or network file system gives remote workers the same run). Outcomes come back as
they complete (`on_piece` reports each one: progress), a failed channel is a `ChannelFailure`
with its error while the others complete, and the pipeline's own `combine` builds the result
exactly as the serial run does; its figures are drawn as tasks on the cluster, in parallel
(into the run directory, which the workers share with the client).

A worker process that dies (a crash, the OOM killer) takes along the task it runs and the
ones Dask queued on it; the scheduler gives them up at once on a local cluster
(`ClusterSpec.allowed_failures` = 0) and they run again one at a time, each alone on the
cluster: the channel that kills its worker again is reported failed (`KilledWorker`), the
others complete. Tasks stay queued on the workers meanwhile (~2 ms between two tasks instead
of ~10 ms when each waits for the client to submit it).

One task per channel, `shared` inside each (docs/scaling.md has the measurements): a task
costs a few ms of Dask bookkeeping against ~0.1 s of `pulses` analysis per channel, so batches
would gain little and lose the load balance, the progress per channel and the confinement of
a dying worker to its channel; `shared` is a few hundred bytes, and scattered once it would
be lost with the workers that held it (its dependents then fail).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

from cryodaq.acquisition.pipelines import (
    ChannelFailure,
    ChannelPlan,
    FigureJob,
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
    """Execute `plan` on the Dask cluster behind `client` (a `distributed.Client`): one task
    per key; the keys a dying worker took along run again one at a time."""
    from distributed import KilledWorker, as_completed

    task = functools.partial(guarded, plan.work, plan.shared, expected=plan.expected)
    outcomes: dict[Hashable, Any] = {}

    def collect(future: Any, key: Hashable) -> None:
        try:
            outcomes[key] = future.result()
        except Exception as exc:  # the worker died or the result did not come back
            outcomes[key] = ChannelFailure(key, f"{type(exc).__name__}: {exc}")
        future.release()
        if on_piece is not None:
            on_piece(key, outcomes[key])

    futures = client.map(task, list(plan.keys), pure=False)
    key_of = {f.key: k for f, k in zip(futures, plan.keys, strict=True)}
    lost: list[Hashable] = []
    try:
        for future in as_completed(futures):
            if future.status == "error" and isinstance(future.exception(), KilledWorker):
                lost.append(key_of[future.key])
                future.release()
            else:
                collect(future, key_of[future.key])
        for key in lost:  # alone on the cluster: only a channel that kills its worker fails
            futures.append(client.submit(task, key, pure=False))
            collect(futures[-1], key)
    finally:  # also on Ctrl-C: nothing of this plan stays queued on the cluster
        client.cancel([f for f in futures if not f.done()], force=True)
    return plan.combine({k: outcomes[k] for k in plan.keys}, functools.partial(_draw, client))


def _draw(client: Any, jobs: Sequence[FigureJob]) -> list[Path]:
    """Each figure a task of its own on the cluster (the client's process draws none)."""
    futures = [client.submit(fn, *args, pure=False) for fn, args in jobs]
    return [Path(p) for p in client.gather(futures)]


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
