"""What each campaign step does to the rig. The runner (`campaign_run`) decides when."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cryodaq.acquisition.campaign.schema import (
    AcquireStep,
    ReflectionStep,
    SetStep,
    SpectrumStep,
    TriggerSpec,
    TuneStep,
    WaitStableStep,
)
from cryodaq.acquisition.cluster.channels import OffsetSource, shifted
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.pipelines.stored_runs import jsonable
from cryodaq.acquisition.rig import Rig, channel_selection, planned_settings
from cryodaq.acquisition.store.writer import RunWriter
from cryodaq.acquisition.stream.engine import Acquisition, AcquisitionResult, SinkSpec
from cryodaq.acquisition.stream.live_monitor import LiveMonitor
from cryodaq.acquisition.stream.publisher import ZmqPublisher
from cryodaq.acquisition.stream.sources import AdcSource, BlockSource, UmuxSource
from cryodaq.acquisition.stream.trigger import ChannelTrigger, TriggerConfig
from cryodaq.acquisition.units import to_si
from cryodaq.analysis.resonator import find_dips
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.thermal import TemperatureController
from cryodaq.drivers.umux import UmuxBoard
from cryodaq.drivers.vst import VectorSignalTransceiver

log = logging.getLogger(__name__)


class StepError(CryodaqError):
    """A step could not be carried out; the message names the step and the reason."""


class RunClock(Protocol):
    """Time as the campaign sees it: the simulated World's, or the wall clock."""

    virtual: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def time_ns(self) -> int: ...


class WorldClock:
    """A simulated rig's virtual time: waiting is instant."""

    virtual = True

    def __init__(self, rig: Rig) -> None:
        assert rig.world is not None
        self.world = rig.world

    def now(self) -> float:
        return self.world.now()

    def sleep(self, seconds: float) -> None:
        self.world.advance(seconds)

    def time_ns(self) -> int:
        return int(round(self.world.now() * 1e9))


class WallClock:
    """A real rig's time."""

    virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def time_ns(self) -> int:
        return time.time_ns()


@dataclass
class RunContext:
    """Everything steps share during one run."""

    rig: Rig
    clock: RunClock
    store: RunWriter
    run_dir: Path
    on_monitor: Callable[..., None] = lambda monitor, drops=None: None
    results: dict[str, Any] = field(default_factory=dict)

    def instrument(self, name: str) -> Instrument:
        """The opened instrument `name` (opened, with its rig settings, on first use)."""
        if name not in self.rig.instruments:
            self.rig.open(name)
        return self.rig.instruments[name]

    def save_arrays(self, name: str, attrs: Mapping[str, Any], **arrays: np.ndarray) -> Path:
        """Write `data/<name>.npz` and its `.json` attributes, atomically."""
        out = self.run_dir / "data"
        out.mkdir(exist_ok=True)
        path = out / f"{name}.npz"
        tmp = out / f".{name}.{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        meta = out / f"{name}.json"
        tmp_meta = out / f".{name}.{os.getpid()}.json"
        tmp_meta.write_text(json.dumps(dict(attrs), indent=2, default=float))
        os.replace(tmp_meta, meta)
        return path


def _typed(ctx: RunContext, name: str, kind: type[Instrument], what: str) -> Any:
    inst = ctx.instrument(name)
    if not isinstance(inst, kind):
        raise StepError(
            f"{what}: instrument {name!r} is a {type(inst).__name__}, not a {kind.__name__}"
        )
    return inst


# -- set, wait, wait_stable -------------------------------------------------------------------


def settings_tree(path: str, value: Any) -> tuple[str, dict[str, Any]]:
    """`"tc.outputs.1.setpoint": v` -> ("tc", {"outputs": {"1": {"setpoint": v}}})."""
    instrument, *rest = path.split(".")
    if not rest:
        raise StepError(f"set: {path!r} names no setting (use INSTRUMENT.SETTING)")
    tree: Any = value
    for key in reversed(rest):
        tree = {key: tree}
    return instrument, tree


def apply_settings(ctx: RunContext, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Set instrument parameters given as dotted paths; returns what was set (SI values)."""
    done: dict[str, Any] = {}
    for path, value in settings.items():
        if path.startswith(WORLD_PREFIX):
            set_world(ctx, path, value)
            done[path] = value
            continue
        name, tree = settings_tree(path, value)
        spec = ctx.rig.spec.instruments.get(name)
        if spec is None:
            raise StepError(f"set {path}: the rig has no instrument {name!r}")
        planned = planned_settings(ctx.rig.spec.doc, replace(spec, settings=tree))
        inst = ctx.instrument(name)
        for _, ch, setting, si_value in planned:
            node = inst if ch is None else inst.group_channel(*ch)
            node.set(setting, si_value)
        done[path] = value
    return done


#: `set` keys under this prefix change the simulated World (a source swapped, a shield
#: mounted between acquisitions) rather than an instrument.
WORLD_PREFIX = "world."


def set_world(ctx: RunContext, path: str, value: Any) -> None:
    """`world.KEY: value` on a simulated rig (`World.set_param`)."""
    if ctx.rig.world is None:
        raise StepError(f"set {path}: world.* settings exist only on simulated rigs")
    try:
        ctx.rig.world.set_param(path.removeprefix(WORLD_PREFIX), value)
    except ValueError as exc:
        raise StepError(f"set {path}: {exc}") from None


def run_set(ctx: RunContext, step: SetStep) -> dict[str, Any]:
    return {"set": apply_settings(ctx, step.settings)}


def run_wait(ctx: RunContext, seconds: float) -> dict[str, Any]:
    ctx.clock.sleep(seconds)
    return {"waited_s": seconds}


def run_wait_stable(ctx: RunContext, step: WaitStableStep) -> dict[str, Any]:
    name, _, ch_text = step.sensor.partition(".")
    tc = _typed(ctx, name, TemperatureController, f"wait_stable {step.sensor}")
    ch = int(ch_text)
    target = step.target
    if target is None:
        loops = [o for o in tc.outputs if o.mode == "PID" and o.input_channel == ch]
        if not loops:
            raise StepError(
                f"wait_stable {step.sensor}: no PID loop reads channel {ch}; give `target`"
            )
        target = loops[0].setpoint
    start = ctx.clock.now()
    stable_since: float | None = None
    while True:
        now = ctx.clock.now()
        reading = tc.temperature(ch)
        if abs(reading - target) <= step.tolerance:
            stable_since = now if stable_since is None else stable_since
            if now - stable_since >= step.window:
                return {
                    "sensor": step.sensor,
                    "target_K": target,
                    "reading_K": reading,
                    "waited_s": now - start,
                }
        else:
            stable_since = None
        if now - start > step.timeout:
            raise StepError(
                f"wait_stable {step.sensor}: not within {step.tolerance * 1e3:g} mK of "
                f"{target * 1e3:g} mK for {step.window:g} s after {step.timeout:g} s "
                f"(reading {reading * 1e3:.4g} mK)"
            )
        ctx.clock.sleep(step.poll)


# -- acquire ------------------------------------------------------------------------------------


def _source(inst: Instrument, step: AcquireStep, clock: RunClock) -> BlockSource:
    if isinstance(inst, Adc16):
        return AdcSource(inst, step.block, clock.time_ns)
    if isinstance(inst, UmuxBoard):
        return UmuxSource(inst, step.block, clock.time_ns)
    raise StepError(
        f"acquire {step.name}: {inst.name!r} is a {type(inst).__name__}, not an ADC or uMUX board"
    )


def _level(value: float | str | None, source: BlockSource) -> float | None:
    """A trigger level in data units: plain numbers as they are, unit strings converted."""
    if value is None or isinstance(value, int | float):
        return value
    return to_si(value, source.unit) / source.units_per_value


def trigger_config(
    step: AcquireStep, source: BlockSource, channels: tuple[int, ...]
) -> TriggerConfig:
    """The engine's configuration for `step` on a source with `channels`."""
    rate = source.sample_rate_hz
    per_channel: dict[int, TriggerSpec] = {}
    for selector in sorted(step.trigger, key=lambda s: s != "all"):  # "all" first, then specific
        for ch in channel_selection(selector, channels):
            per_channel[int(ch)] = step.trigger[selector]
    triggers = {
        ch: ChannelTrigger(
            polarity=spec.polarity,
            edge_threshold=_level(spec.edge_threshold, source),
            level=_level(spec.level, source),
            auto_period=0 if spec.noise_every is None else max(1, round(spec.noise_every * rate)),
        )
        for ch, spec in per_channel.items()
    }
    return TriggerConfig(
        record_length=step.record_length,
        pretrigger=step.pretrigger,
        channels=triggers,
        holdoff=step.holdoff,
        fanout={int(k): [int(x) for x in v] for k, v in step.fanout.items()},
        coincidence_window=round(step.coincidence_window * rate),
        coincidence_min=step.coincidence_min,
    )


def acquisition_for(
    inst: Instrument,
    step: AcquireStep,
    store_name: str,
    duration_s: float,
    store: Any,
    clock: RunClock,
    *,
    offset: int = 0,
    sinks: Callable[[tuple[int, ...]], dict[str, SinkSpec]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Acquisition:
    """The acquisition of `step` on board `inst` into `store_name` of `store`; its channel
    numbers shifted by `offset` (a board part of a multi-board step); `sinks(channels)` gives
    further sinks."""
    source = _source(inst, step, clock)
    channels = tuple(c for c in source.device.channel_ids if source.device.channel(c).enabled)
    if not channels:
        raise StepError(f"acquire {step.name}: no channel of {inst.name!r} is enabled")
    config = trigger_config(step, source, channels)
    if offset:
        source, config = OffsetSource(source, offset), shifted(config, offset)
    extra = sinks(tuple(c + offset for c in channels)) if sinks else {}
    if step.publish is not None:
        publisher = ZmqPublisher(
            step.publish.address,
            [c + offset for c in channels],
            source.dtype,
            source.units_per_value,
            units_per_count=step.publish.units_per_count,
        )
        extra["publish"] = SinkSpec(publisher, policy="drop", maxsize=64)
    return Acquisition(
        source,
        config,
        name=store_name,
        store=store,
        duration_s=duration_s,
        sinks=extra,
        metadata={
            "step": step.name,
            # what the readout was set to: the same data mean the same only with the same settings
            "instrument": jsonable(inst.settings()),
            "channel_settings": {
                str(c + offset): jsonable(source.device.channel(c).settings())
                for c in channels
            },
            "trigger": {
                "record_length": config.record_length,
                "pretrigger": config.pretrigger,
                "holdoff": config.holdoff or config.record_length,
                "coincidence_window": config.coincidence_window,
            },
            **(metadata or {}),
        },
    )


def run_acquire(
    ctx: RunContext, step: AcquireStep, store_name: str, duration_s: float
) -> AcquisitionResult:
    """Acquire `duration_s` of stream into acquisition `store_name` of the run store."""
    monitors: list[LiveMonitor] = []

    def monitor(channels: tuple[int, ...]) -> dict[str, SinkSpec]:
        monitors.append(LiveMonitor(channels, duration_s=duration_s))
        return {"monitor": SinkSpec(monitors[0], policy="drop", maxsize=8)}

    inst = ctx.instrument(step.source)
    acquisition = acquisition_for(
        inst, step, store_name, duration_s, ctx.store, ctx.clock, sinks=monitor
    )
    ctx.on_monitor(monitors[0], acquisition.drops)
    try:
        return acquisition.run()
    finally:
        ctx.on_monitor(None)


# -- microwave steps ------------------------------------------------------------------------------


def run_spectrum(ctx: RunContext, step: SpectrumStep, store_name: str) -> dict[str, Any]:
    vst = _typed(ctx, step.instrument, VectorSignalTransceiver, f"spectrum {step.name}")
    for attr, value in (
        ("centre_frequency", step.centre),
        ("span", step.span),
        ("rbw", step.rbw),
        ("integration_time", step.integration),
    ):
        if value is not None:
            setattr(vst, attr, value)
    temperatures = _temperatures(ctx)
    spectrum = vst.spectrum()
    attrs = {
        "bin_width_Hz": spectrum.bin_width_Hz,
        "integration_s": spectrum.integration_s,
        "temperatures_K": temperatures,
        "time_s": ctx.clock.now(),
    }
    ctx.save_arrays(
        store_name, attrs, frequencies_Hz=spectrum.frequencies_Hz, power_W=spectrum.power_W
    )
    return {
        "bins": int(spectrum.power_W.size),
        "mean_power_W": float(spectrum.power_W.mean()),
        **attrs,
    }


def run_reflection(ctx: RunContext, step: ReflectionStep, store_name: str) -> dict[str, Any]:
    vst = _typed(ctx, step.instrument, VectorSignalTransceiver, f"reflection {step.name}")
    vst.source_power = step.power_dBm
    vst.output = True
    try:
        sweep = vst.reflection_sweep(step.start, step.stop, step.points)
    finally:
        vst.output = False
    attrs = {"power_dBm": step.power_dBm, "time_s": ctx.clock.now()}
    ctx.save_arrays(store_name, attrs, frequencies_Hz=sweep.frequencies_Hz, s11=sweep.s11)
    return {"points": int(sweep.s11.size), **attrs}


def run_tune(ctx: RunContext, step: TuneStep, store_name: str) -> dict[str, Any]:
    """Find the resonators in a full-band sweep and put one tone on each minimum."""
    board = _typed(ctx, step.instrument, UmuxBoard, f"tune {step.instrument}")
    half = 256e6
    sweep = board.sweep(-half * 0.999, half * 0.999, step.points)
    dips = find_dips(sweep.baseband_hz, sweep.s21)
    budget = board.channel_budget
    wanted = min(len(dips), step.channels or budget)
    if wanted > budget:
        raise StepError(
            f"tune {step.instrument}: {wanted} tones exceed the channel budget "
            f"{budget} at the present flux ramp"
        )
    for ch in board.channel_ids:
        board.channel(ch).enabled = False
    placed = [board.set_tone(i + 1, float(f)) for i, f in enumerate(dips.freq_hz[:wanted])]
    ctx.save_arrays(
        store_name,
        {"lo_hz": sweep.lo_hz, "budget": budget},
        baseband_hz=sweep.baseband_hz,
        s21=sweep.s21,
        dips_hz=dips.freq_hz,
        tones_hz=np.array(placed),
    )
    return {"resonators_found": len(dips), "tones": wanted, "channel_budget": budget}


def restore_tune(ctx: RunContext, step: TuneStep, store_name: str) -> None:
    """On resume: put back the tones a completed tune placed (`data/<store_name>.npz`), as the
    board held them, without sweeping again; refused if the board's LO moved since."""
    board = _typed(ctx, step.instrument, UmuxBoard, f"tune {step.instrument}")
    data = ctx.run_dir / "data"
    try:
        with np.load(data / f"{store_name}.npz") as npz:
            tones = np.asarray(npz["tones_hz"], dtype=np.float64)
        saved = json.loads((data / f"{store_name}.json").read_text())
    except (OSError, KeyError, ValueError) as exc:
        raise StepError(f"tune {step.instrument}: cannot restore the tones of {store_name!r} "
                        f"from {data}: {exc}") from None
    lo = float(board.lo_frequency)
    if abs(lo - float(saved["lo_hz"])) > 1.0:
        raise StepError(f"tune {step.instrument}: the LO is at {lo:.9g} Hz, the tones of "
                        f"{store_name!r} were placed at {saved['lo_hz']:.9g} Hz")
    for ch in board.channel_ids:
        board.channel(ch).enabled = False
    for i, f in enumerate(tones):
        board.set_tone(i + 1, float(f))
    log.info("tune %s: %d tones restored from %s", step.instrument, tones.size, store_name)


def _temperatures(ctx: RunContext) -> dict[str, float]:
    """Every thermometer reading of the rig's opened temperature controllers."""
    out: dict[str, float] = {}
    for name, inst in ctx.rig.instruments.items():
        if isinstance(inst, TemperatureController):
            for th in inst.channels:
                if th.enabled:
                    value = inst.temperature(int(th.ch))
                    if np.isfinite(value):
                        out[f"{name}.{th.ch}"] = value
    return out
