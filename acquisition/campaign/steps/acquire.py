"""`acquire`: stream a board (or several at once) through the trigger engine into the store.

`source: adc1` acquires one instrument; `sources: [adc1, adc2]` several that share a sample
clock as one stream (one trigger engine: coincidences across all their channels; channel
numbers run on, adc1 1-16 and adc2 17-32, and the store keeps each channel's instrument);
`boards: [...]` adds boards acquired at the same time as separate tasks (Dask). A trigger
threshold may be `N sigma`: N times the channel's edge-kernel noise measured in `noise_s`
of stream before the acquisition (`acquire_noise`).

An interrupted acquisition keeps what it stored; a resume acquires the rest of its duration
into `<name>-part<k>`, never the same stretch again.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from cryodaq.acquisition.campaign.fields import (
    Duration,
    Level,
    Model,
    Name,
    Seconds,
    Step,
    str_keys,
)
from cryodaq.acquisition.campaign.progress import Interrupted
from cryodaq.acquisition.campaign.steps.acquire_boards import acquire_boards
from cryodaq.acquisition.campaign.steps.acquire_noise import sigma_multiple
from cryodaq.acquisition.campaign.steps.acquire_setup import acquisition_for
from cryodaq.acquisition.campaign.steps.base import StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.pipelines import PART_SEPARATOR
from cryodaq.acquisition.rig import InstrumentSpec, channel_selection
from cryodaq.acquisition.store.layout import STORE
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.stream.engine import AcquisitionError, AcquisitionResult, SinkSpec
from cryodaq.acquisition.stream.live_monitor import LiveMonitor
from cryodaq.acquisition.units import UnitError, to_si
from cryodaq.acquisition.yaml_source import KeyPath
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.umux import UmuxBoard

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState

log = logging.getLogger(__name__)
#: Unit of a trigger level given with units, and what a plain number means, per source kind.
LEVEL_UNITS = {Adc16: ("V", "ADC codes"), UmuxBoard: ("Phi0", "radians of phase")}


class TriggerSpec(Model):
    """Trigger settings of one channel (see `stream.trigger.ChannelTrigger`)."""

    polarity: Literal[1, -1, 0] = 1  # 0: both (double meanders), edge triggers only
    #: a level, or "N sigma": N times the edge kernel's rms measured before the acquisition
    edge_threshold: Level | None = None
    edge_width: int = Field(2, ge=1, le=4096, description="edge kernel half-width, samples")
    level: Level | None = None
    noise_every: Duration | None = Field(None, description="period of auto (noise) records")


class PublishSpec(Model):
    """Live records on ZeroMQ PUB in dastard's layout (`stream.publisher`)."""

    address: str = Field(description='e.g. "tcp://*:5556"')
    units_per_count: float | None = Field(None, gt=0, description="float data: units per count")


class AcquireStep(Step):
    kind: Literal["acquire"] = "acquire"
    name: Name
    source: str | None = None
    #: Instead of `source`: instruments on one sample clock, acquired as one stream (one
    #: trigger engine: coincidences across all their channels); channel numbers run on, each
    #: instrument's shifted by the channels of those before it (adc1 1-16, adc2 17-32).
    sources: list[str] = Field(default_factory=list)
    #: More boards acquired at the same time as `source`, one Dask task each (multi-board).
    boards: list[str] = Field(default_factory=list)
    #: Stream read first to measure the noise, when a threshold is given in sigma.
    noise_s: Seconds = 0.2
    duration: Duration
    block: int = Field(1 << 15, ge=64, le=1 << 22)
    record_length: int = Field(1024, ge=8, le=1 << 20)
    pretrigger: int = Field(256, ge=1)
    holdoff: int | None = Field(None, ge=1)
    trigger: Annotated[dict[str, TriggerSpec], BeforeValidator(str_keys)] = Field(
        default_factory=dict
    )
    fanout: dict[int, list[int]] = Field(default_factory=dict)
    coincidence_window: Seconds = 0.0
    coincidence_min: int = Field(2, ge=2)
    publish: PublishSpec | None = None

    @model_validator(mode="after")
    def _geometry(self) -> AcquireStep:
        if (self.source is None) == (not self.sources):
            raise ValueError("give either source (one instrument) or sources (a list of two "
                             "or more on one sample clock)")
        if self.sources and (len(self.sources) < 2 or len(set(self.sources)) != len(self.sources)):
            raise ValueError(f"sources must list two or more different instruments, got "
                             f"{self.sources}")
        if self.sources and self.boards:
            raise ValueError("sources (one stream) and boards (separate tasks) do not mix")
        if self.pretrigger >= self.record_length:
            raise ValueError(
                f"pretrigger ({self.pretrigger}) must be < record_length ({self.record_length})"
            )
        return self

    @property
    def instruments(self) -> list[str]:
        """The instruments acquired as this step's one stream."""
        return list(self.sources) if self.sources else [str(self.source)]


def acquire_one(
    ctx: RunContext, step: AcquireStep, store_name: str, duration_s: float
) -> AcquisitionResult:
    """Acquire `duration_s` of `step.source`'s stream into acquisition `store_name`, with the
    live monitor shown by the display."""
    monitors: list[LiveMonitor] = []

    def monitor(channels: tuple[int, ...]) -> dict[str, SinkSpec]:
        monitors.append(LiveMonitor(channels, duration_s=duration_s))
        return {"monitor": SinkSpec(monitors[0], policy="drop", maxsize=8)}

    insts = [ctx.instrument(n) for n in step.instruments]
    acquisition = acquisition_for(
        insts if step.sources else insts[0], step, store_name, duration_s, ctx.store,
        ctx.clock, sinks=monitor,
    )
    ctx.on_monitor(monitors[0], acquisition.drops)
    try:
        return acquisition.run()
    finally:
        ctx.on_monitor(None)


class AcquireHandler(StepHandler):
    kind = "acquire"
    model = AcquireStep

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        checker.produce(body.get("name"), path)
        sources = body.get("sources")
        named = (
            [((*path, "sources", i), n) for i, n in enumerate(sources)]
            if isinstance(sources, list) else [((*path, "source"), body.get("source"))]
        )  # fmt: skip
        specs = []
        for where, name in named:
            specs.append(checker.instrument(where, name, (Adc16, UmuxBoard), "an acquire source"))
            _some_channel_on(checker, state, specs[-1], where)
        boards = body.get("boards")
        for i, board in enumerate(boards if isinstance(boards, list) else []):
            board_spec = checker.instrument(
                (*path, "boards", i), board, (Adc16, UmuxBoard), "an acquire board"
            )
            _some_channel_on(checker, state, board_spec, (*path, "boards", i))
        if not specs or any(spec is None for spec in specs):
            return
        ids, offset = [], 0
        for spec in specs:  # joined channel numbers: each source's after those before
            own = [int(c) for c in spec.driver.channel_groups()["channels"][0]]
            ids += [c + offset for c in own]
            offset += max(own)
        ids_t, spec = tuple(ids), specs[0]
        name = "+".join(s.name for s in specs)
        unit, plain = next(v for k, v in LEVEL_UNITS.items() if issubclass(spec.driver, k))
        trigger = body.get("trigger")
        for selector, levels in (trigger.items() if isinstance(trigger, dict) else ()):
            where = (*path, "trigger", selector)
            try:
                channel_selection(selector, ids_t)
            except ValueError as exc:
                checker.fail(where, f"{exc} on {name}", at_key=True)
            for level in ("edge_threshold", "level"):
                value = levels.get(level) if isinstance(levels, dict) else None
                if level == "edge_threshold" and str(value).strip().endswith("sigma"):
                    if sigma_multiple(value) is None:  # pint would read `sigma` as Stefan-Boltzmann
                        checker.fail((*where, level), f"{value!r}: a threshold in units of the "
                                     f"measured noise is 'N sigma' with a number N > 0")
                    continue
                if isinstance(value, str):
                    try:
                        to_si(value, unit)
                    except UnitError as exc:
                        extra = ', or "N sigma" (N > 0)' if level == "edge_threshold" else ""
                        checker.fail((*where, level), f"{exc}; a trigger level on {name} "
                                     f"is in {unit}, or a plain number in data units ({plain})"
                                     f"{extra}")
        fanout = body.get("fanout")
        for key, targets in (fanout.items() if isinstance(fanout, dict) else ()):
            for j, ch in enumerate(targets if isinstance(targets, list) else []):
                checker.channel_of((*path, "fanout", key, j), ch, name, ids_t)
            checker.channel_of((*path, "fanout", key), key, name, ids_t, at_key=True)

    def run(self, run: StepRun, step: AcquireStep, sid: str, suffix: str, ctx: RunContext) -> dict:
        name = f"{step.name}{suffix}"
        if not step.sources and (
            step.boards
            or run.clustered
            or "boards" in run.progress.partial.get(sid, {})
        ):  # board tasks on the Dask cluster (one board too, given a cluster)
            return acquire_boards(run, step, sid, name, ctx)
        return self._acquire(run, step, sid, name, ctx)

    def _acquire(
        self, run: StepRun, step: AcquireStep, sid: str, name: str, ctx: RunContext
    ) -> dict[str, Any]:
        part = run.progress.partial.get(sid, {"parts": [], "live_s": 0.0})
        part = _with_orphans(run, name, part)
        store_name = (
            name if not part["parts"] else f"{name}{PART_SEPARATOR}{len(part['parts']) + 1}"
        )
        remaining = step.duration - part["live_s"]
        try:
            result = acquire_one(ctx, step, store_name, remaining)
        except (AcquisitionError, KeyboardInterrupt) as exc:
            # What was stored stays a part of this step; a resume adds the rest, never redoes it.
            stored = getattr(exc, "result", None)
            if stored is not None and store_name in RunReader(run.run_dir / STORE).acquisitions():
                run.progress.partial[sid] = {
                    "parts": [*part["parts"], store_name],
                    "live_s": part["live_s"] + stored.live_time_s,
                }
                run.summary = run.summary.with_acquisition(store_name, stored.as_dict())
                with contextlib.suppress(OSError):  # a full disk: a resume reads the store
                    run.save()
            raise
        part = {
            "parts": [*part["parts"], store_name],
            "live_s": part["live_s"] + result.live_time_s,
        }
        run.summary = run.summary.with_acquisition(store_name, result.as_dict())
        if result.end_reason == "interrupted":
            run.progress.partial[sid] = part
            run.save()
            raise Interrupted
        run.progress.partial.pop(sid, None)
        return {
            "acquisition": name,
            **part,
            "records": result.records,
            "drops": result.drops,
            "end_reason": result.end_reason,
        }


def _some_channel_on(
    checker: StepChecker, state: CampaignState, spec: InstrumentSpec | None, path: KeyPath
) -> None:
    """A problem at `path` if every channel of the acquired instrument is off at this point."""
    if spec is not None and state.all_off(spec.name):
        checker.fail(path, f"no channel of {spec.name} is enabled at this point; enable some "
                     f"first (set: {{{spec.name}.channels.1.enabled: true}})")


def _with_orphans(run: StepRun, name: str, part: dict[str, Any]) -> dict[str, Any]:
    """On resume: parts of acquisition `name` in the store that progress does not list (their
    writer was killed mid-step; the store sealed them at their last commit) join the step's
    parts with the live time they hold."""
    if not run.resume:
        return part
    reader = RunReader(run.run_dir / STORE)
    prefix = f"{name}{PART_SEPARATOR}"
    orphans = [
        a for a in reader.acquisitions()
        if (a == name or a.startswith(prefix) and a[len(prefix):].isdigit())
        and a not in part["parts"]
    ]  # fmt: skip
    if not orphans:
        return part
    totals = reader.summary(include_run=False)["acquisitions"]
    for acq in orphans:
        t = totals[acq]
        run.summary = run.summary.with_acquisition(acq, {
            "name": acq, "sample_rate_hz": reader.info(acq)["sample_rate_hz"],
            "records": t["records"], "records_lost_to_gaps": t["records_lost_to_gaps"],
            "gaps": t["gaps"], "gap_samples": t["gap_samples"], "drops": t["drops"],
            "end_reason": reader.info(acq).get("stop_note", "interrupted"),
            "live_time_s": t["live_time_s"],
        })  # fmt: skip
        log.warning("%s: kept %.6g s of data from before the interruption", acq, t["live_time_s"])
    return {"parts": [*part["parts"], *orphans],
            "live_s": part["live_s"] + sum(totals[a]["live_time_s"] for a in orphans)}
