"""A multi-board `acquire`: one board task per board on the Dask cluster, resumable per board.

A resumed step re-runs only the boards that miss stream time; a failed board fails the step
after the others finished (their parts are kept). The tasks themselves are
`cluster.boards.BoardTask`s.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryodaq.acquisition.campaign.progress import Interrupted
from cryodaq.acquisition.campaign.steps.acquire_setup import StepAcquisition
from cryodaq.acquisition.campaign.steps.base import StepError, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.cluster.boards import BoardTask, run_tasks, snapshot
from cryodaq.acquisition.cluster.channels import channel_offsets, part_name
from cryodaq.acquisition.store.layout import STORE
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.umux import UmuxBoard

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.steps.acquire import AcquireStep


def acquire_boards(
    run: StepRun, step: AcquireStep, sid: str, name: str, ctx: RunContext
) -> dict[str, Any]:
    """Acquire `step` on its source and boards at once, one task each on the Dask cluster."""
    state = {
        b: run.progress.partial.get(sid, {}).get("boards", {}).get(b)
        or {"parts": [], "live_s": 0.0}
        for b in [step.source, *step.boards]
    }
    todo = {
        b: (len(s["parts"]) + 1, step.duration - s["live_s"])
        for b, s in state.items()
        if s["live_s"] < step.duration * (1 - 1e-9)
    }
    stop = f"cryodaq-stop-{uuid.uuid4().hex}"
    tasks = board_tasks(ctx, step, name, todo, stop)
    outcomes, interrupted = [], False
    if tasks:
        outcomes, interrupted = run_tasks(run.dask(len(tasks)), tasks, ctx.store)
    stored = set(RunReader(run.run_dir / STORE).acquisitions())
    for out in outcomes:  # a board that stored nothing is named in the step's error only
        if out.result is not None and out.store_name in stored:
            s = state[out.board]
            s["parts"] = [*s["parts"], out.store_name]
            s["live_s"] += out.result.live_time_s
            run.summary = run.summary.with_acquisition(
                out.store_name, {**out.result.as_dict(), "board": out.board, "error": out.error}
            )
    if ctx.clock.virtual:  # the boards' stream time passed on the campaign's clock too
        ctx.clock.sleep(max((o.result.live_time_s for o in outcomes if o.result), default=0))
    failed = [o for o in outcomes if o.error]
    short = any(s["live_s"] < step.duration * (1 - 1e-9) for s in state.values())
    if failed or interrupted or short:
        run.progress.partial[sid] = {"boards": state}
        run.save()
        if failed:
            raise StepError(
                f"acquire {name}: " + "; ".join(f"board {o.board}: {o.error}" for o in failed)
                + " (the other boards kept their data; --resume re-runs what is missing)"
            )
        raise Interrupted
    run.progress.partial.pop(sid, None)
    return {"acquisition": name, **merged(state, run.summary.acquisitions)}


def board_tasks(
    ctx: RunContext,
    step: AcquireStep,
    name: str,
    todo: Mapping[str, tuple[int, float]],
    stop_event: str | None = None,
) -> list[BoardTask]:
    """One task per board in `todo` (board -> (part number, seconds still to acquire)), with
    the settings of the campaign's instruments as they are now."""
    spec = ctx.rig.spec
    boards = [step.source, *step.boards]
    for board in boards:
        inst = spec.instruments.get(board)
        if inst is None or not issubclass(inst.driver, Adc16 | UmuxBoard):
            raise StepError(
                f"acquire {step.name}: board {board!r} is not an ADC or uMUX board of the rig"
            )
    if len(set(boards)) != len(boards):
        raise StepError(f"acquire {step.name}: a board is listed twice in {boards}")
    simulated = ctx.rig.world is not None
    wanted = [n for n in spec.instruments if n in todo or (simulated and n not in boards)]
    state = {n: snapshot(ctx.instrument(n)) for n in wanted}
    offsets = channel_offsets(spec, boards)
    start_s = ctx.clock.now() if ctx.clock.virtual else 0.0
    return [
        BoardTask(
            spec,
            board,
            tuple(b for b in boards if b != board),
            offsets[board],
            state,
            start_s,
            StepAcquisition(step),
            ctx.store.path,
            part_name(name, board, part),
            duration_s,
            stop_event,
            getattr(ctx.clock, "epoch_ns", 0),
            ctx.store.records_codec,
            ctx.store.buffer_bytes,
        )
        for board, (part, duration_s) in todo.items()
    ]




def merged(state: Mapping[str, Mapping[str, Any]], acquisitions: Mapping[str, Any]) -> dict:
    """A multi-board step's summary: per board its parts, live time, records, record rate and
    drops (summed over its parts), and the totals."""
    boards: dict[str, Any] = {}
    for board, s in state.items():
        parts = [acquisitions[p] for p in s["parts"]]
        drops: dict[str, int] = {}
        for part in parts:
            for sink, d in part.get("drops", {}).items():
                drops[sink] = drops.get(sink, 0) + d["records"]
        records = sum(p["records"] for p in parts)
        live = sum(p["live_time_s"] for p in parts)
        boards[board] = {
            "parts": list(s["parts"]),
            "channels": len(parts[-1]["channels"]) if parts else 0,
            "live_time_s": live,
            "records": records,
            "record_rate_hz": records / live if live > 0 else None,
            "drops": drops,
            "end_reason": parts[-1]["end_reason"] if parts else None,
        }
    return {
        "boards": boards,
        "records": sum(b["records"] for b in boards.values()),
        "record_rate_hz": sum(b["record_rate_hz"] or 0.0 for b in boards.values()),
        "live_time_s": min((b["live_time_s"] for b in boards.values()), default=0.0),
    }
