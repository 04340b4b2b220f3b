"""Checks of a campaign's steps against its rig, on the campaign's YAML as written.

The schema (`cryodaq.acquisition.campaign.schema`) says what each step may contain; these checks
say whether the rig can do it: the instruments a step names exist and are of the right kind,
settings are within each driver's declared ranges, trigger channels and levels fit the source, the
uMUX channel budget holds at every point, analyze steps name known pipelines and acquisitions made
before them. Values the schema rejects are skipped here (the schema reports them). Nothing is
opened.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from cryodaq.acquisition.campaign.schema import STEP_KINDS
from cryodaq.acquisition.campaign.state import CampaignState
from cryodaq.acquisition.errors import ConfigError
from cryodaq.acquisition.pipelines import PIPELINES
from cryodaq.acquisition.rig import (
    InstrumentSpec,
    _coerce,
    _declared,
    channel_selection,
    did_you_mean,
    planned_settings,
)
from cryodaq.acquisition.units import UnitError, to_si
from cryodaq.acquisition.yaml_source import KeyPath, YamlDocument, dotted
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.thermal import TemperatureController
from cryodaq.drivers.umux import UmuxBoard
from cryodaq.drivers.vst import VectorSignalTransceiver

KIND_NAMES = {
    Adc16: "an ADC (Adc16)",
    UmuxBoard: "a uMUX board (UmuxBoard)",
    TemperatureController: "a temperature controller (TemperatureController)",
    VectorSignalTransceiver: "a VST (VectorSignalTransceiver)",
}
#: Unit of a trigger level given with units, and what a plain number means, per source kind.
LEVEL_UNITS = {Adc16: ("V", "ADC codes"), UmuxBoard: ("Phi0", "radians of phase")}
#: Step field -> VST setting it is checked against.
SPECTRUM_FIELDS = {
    "centre": "centre_frequency", "span": "span", "rbw": "rbw", "integration": "integration_time"
}
REFLECTION_FIELDS = {
    "start": "sweep_start", "stop": "sweep_stop", "points": "sweep_points",
    "power_dBm": "source_power",
}
#: A setting entry: key, value, key path, value path.
Entry = tuple[Any, Any, KeyPath, KeyPath]
#: Sweep points walked with their own instrument state (every value is checked regardless).
MAX_SWEEP_POINTS_WALKED = 256
#: Data names followed per step (sweep points times repeat passes).
MAX_NAMES = 100_000


class _EntryDocument(YamlDocument):
    """Reports every problem of one dotted setting entry (`tc.outputs.1.setpoint: 20 mK`) at
    that entry: at its key for unknown names, else at its value."""

    def __init__(self, outer: YamlDocument, key_path: KeyPath, value_path: KeyPath) -> None:
        super().__init__(outer.path, None)
        self.outer, self.key_path, self.value_path = outer, key_path, value_path

    def error(self, key_path: KeyPath, message: str, at_key: bool = False) -> ConfigError:
        where = self.outer.where(self.key_path if at_key else self.value_path, at_key)
        return ConfigError(where, dotted(self.value_path), message)


@dataclass
class StepChecker:
    """Walks the raw steps once, in campaign order, keeping instrument state as it goes."""

    doc: YamlDocument
    state: CampaignState | None
    declared: list[str]
    problems: list[ConfigError]

    def __post_init__(self) -> None:
        #: Suffixes the runner gives names at this nesting level (`.k`: point or pass k).
        self.suffixes: tuple[str, ...] = ("",)
        self.sites: dict[str, KeyPath] = {}  # step name -> its first step
        self.stored: dict[str, KeyPath] = {}  # data name (name + suffix) -> its step
        self.results: dict[str, KeyPath] = {}  # analyze result name -> its step

    # -- helpers ----------------------------------------------------------------------------

    def fail(self, path: KeyPath, message: str, at_key: bool = False) -> None:
        self.problems.append(self.doc.error(path, message, at_key))

    def instrument(
        self,
        path: KeyPath,
        name: Any,
        kinds: tuple[type[Instrument], ...],
        role: str,
        at_key: bool = False,
    ) -> InstrumentSpec | None:
        """Rig instrument `name` if it is one of `kinds`; otherwise a problem at `path`."""
        if self.state is None or not isinstance(name, str):
            return None  # no rig (reported where it is loaded) or a schema problem
        if name not in self.declared:
            self.fail(
                path,
                f"the rig has no instrument {name!r}{did_you_mean(name, self.declared)}; "
                f"it has {', '.join(self.declared)}",
                at_key,
            )
            return None
        spec = self.state.rig.instruments.get(name)
        if spec is None:
            return None  # its own problem is reported in the rig
        if not issubclass(spec.driver, kinds):
            wanted = " or ".join(KIND_NAMES[k] for k in kinds)
            kind = spec.driver.__name__
            article = "an" if kind[0].lower() in "aeiou" else "a"
            self.fail(path, f"{name!r} is {article} {kind}; {role} must be {wanted}")
            return None
        return spec

    def assign(self, state: CampaignState, key: Any, value: Any, key_path: KeyPath,
               value_path: KeyPath, budget: bool = True) -> None:
        """Check `INSTRUMENT.SETTING` or `INSTRUMENT.GROUP.CHANNELS.SETTING` = `value` as a
        `set` step would apply it, and record it in `state` (which checks the uMUX budget)."""
        name, _, rest = str(key).partition(".")
        if name == "world" and self.state is not None:  # the simulated World (sim rigs)
            if not rest:
                self.fail(key_path, "names no World parameter: use world.KEY", at_key=True)
            elif not self.state.rig.world:
                self.fail(key_path, "world.* settings need a simulated rig (with `world:`)",
                          at_key=True)  # fmt: skip
            return
        spec = self.instrument(key_path, name, (Instrument,), "a setting's instrument", True)
        if spec is None:
            return
        if not rest:
            self.fail(key_path, "names no setting: use INSTRUMENT.SETTING or "
                      "INSTRUMENT.GROUP.CHANNELS.SETTING", at_key=True)
            return
        tree: Any = value
        for part in reversed(rest.split(".")):
            tree = {part: tree}
        entry = _EntryDocument(self.doc, key_path, value_path)
        single = replace(spec, settings=tree)
        for _, ch, setting, si in planned_settings(entry, single, (), self.problems):
            refusal = state.apply(name, ch, setting, si)
            if refusal is not None and budget:
                self.fail(value_path, f"{spec.name} refuses this: {refusal}")

    # -- walking ----------------------------------------------------------------------------

    def check(self, steps: Any) -> None:
        if self.state is not None:
            self.steps(steps, ("steps",), self.state)

    def steps(self, items: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(items, list):
            return
        for i, item in enumerate(items):
            if isinstance(item, dict) and len(item) == 1:
                ((kind, body),) = item.items()
                if kind in STEP_KINDS:
                    getattr(self, f"_{kind}")(body, (*path, i, kind), state)

    def _set(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if isinstance(body, dict):
            for key, value in body.items():
                self.assign(state, key, value, (*path, key), (*path, key))

    def _wait(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        pass  # the schema says all

    def nested(self, items: Any, path: KeyPath, state: CampaignState, passes: int) -> None:
        """Walk a sweep's or repeat's steps, run `passes` times, with their names' suffixes."""
        outer = self.suffixes
        inner = (f"{s}.{k}" for s in outer for k in range(max(passes, 1)))
        self.suffixes = tuple(itertools.islice(inner, MAX_NAMES))
        try:
            self.steps(items, path, state)
        finally:
            self.suffixes = outer

    def _repeat(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if isinstance(body, dict):
            times = body.get("times")
            times = times if isinstance(times, int) and not isinstance(times, bool) else 1
            # A second pass sees the state the first one leaves behind.
            for _ in range(min(times, 2)):
                self.nested(body.get("steps"), (*path, "steps"), state, times)

    def _sweep(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        axes: dict[str, list[list[Entry]]] = {}
        for table in ("over", "grid"):
            lists = body.get(table)
            axes[table] = [
                [(key, v, (*path, table, key), (*path, table, key, j)) for j, v in enumerate(vs)]
                for key, vs in (lists.items() if isinstance(lists, dict) else ())
                if isinstance(vs, list)
            ]
        paired = list(zip(*axes["over"], strict=False)) if axes["over"] else [()]
        grid = [[(entry,) for entry in values] for values in axes["grid"]]
        count = len(paired) * math.prod(len(values) for values in grid)
        points = (sum(p, ()) for p in itertools.product(paired, *grid))
        last, walked = state, 0
        for point in itertools.islice(points, MAX_SWEEP_POINTS_WALKED):
            walked += 1
            last = state.copy()
            for entry in point:
                self.assign(last, *entry)
            self.nested(body.get("steps"), (*path, "steps"), last, count)
        if walked == MAX_SWEEP_POINTS_WALKED:  # values only points beyond those would set
            for entry in (e for values in [*axes["over"], *axes["grid"]] for e in values):
                self.assign(state.copy(), *entry, budget=False)
        if not walked:
            self.nested(body.get("steps"), (*path, "steps"), last, 1)
        state.values = last.values  # the instruments stay at the last point

    def _wait_stable(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("sensor"), str):
            return
        name, dot, channel = body["sensor"].partition(".")
        where = (*path, "sensor")
        if not dot:
            self.fail(where, "expected INSTRUMENT.CHANNEL of a thermometer, e.g. tc.1")
            return
        spec = self.instrument(where, name, (TemperatureController,), "a wait_stable sensor")
        if spec is None:
            return
        ids = tuple(spec.driver.channel_groups()["channels"][0])
        if not channel.isdigit() or int(channel) not in ids:
            self.fail(where, f"{name} has no thermometer channel {channel!r} "
                      f"(channels {ids[0]}..{ids[-1]})")
            return
        loops = state.pid_inputs(name)
        if "target" not in body and loops is not None and int(channel) not in loops:
            self.fail(where, f"no PID loop of {name} reads channel {channel} at this point, so "
                      "there is no setpoint to wait for; give `target` or set an output's "
                      f"mode: PID and input_channel: {channel}")

    def _acquire(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        self.produce(body.get("name"), path)
        spec = self.instrument(
            (*path, "source"), body.get("source"), (Adc16, UmuxBoard), "an acquire source"
        )
        boards = body.get("boards")
        for i, board in enumerate(boards if isinstance(boards, list) else []):
            self.instrument((*path, "boards", i), board, (Adc16, UmuxBoard), "an acquire board")
        if spec is None:
            return
        ids = tuple(spec.driver.channel_groups()["channels"][0])
        unit, plain = next(v for k, v in LEVEL_UNITS.items() if issubclass(spec.driver, k))
        trigger = body.get("trigger")
        for selector, levels in (trigger.items() if isinstance(trigger, dict) else ()):
            where = (*path, "trigger", selector)
            try:
                channel_selection(selector, ids)
            except ValueError as exc:
                self.fail(where, f"{exc} on {spec.name}", at_key=True)
            for level in ("edge_threshold", "level"):
                value = levels.get(level) if isinstance(levels, dict) else None
                if isinstance(value, str):
                    try:
                        to_si(value, unit)
                    except UnitError as exc:
                        self.fail((*where, level), f"{exc}; a trigger level on {spec.name} is "
                                  f"in {unit}, or a plain number in data units ({plain})")
        fanout = body.get("fanout")
        for key, targets in (fanout.items() if isinstance(fanout, dict) else ()):
            for j, ch in enumerate(targets if isinstance(targets, list) else []):
                self._channel_of((*path, "fanout", key, j), ch, spec.name, ids)
            self._channel_of((*path, "fanout", key), key, spec.name, ids, at_key=True)

    def _channel_of(self, where: KeyPath, ch: Any, name: str, ids: tuple[Any, ...],
                    at_key: bool = False) -> None:
        if isinstance(ch, int | str) and str(ch).isdigit() and int(ch) not in ids:
            self.fail(where, f"{name} has no channel {ch} (channels {ids[0]}..{ids[-1]})",
                      at_key)

    def _vst_fields(self, body: Any, path: KeyPath, fields: dict[str, str], role: str) -> None:
        if not isinstance(body, dict):
            return
        self.produce(body.get("name"), path)
        where = (*path, "instrument")
        spec = self.instrument(where, body.get("instrument"), (VectorSignalTransceiver,), role)
        if spec is None:
            return
        settings = _declared(spec.driver)
        for field, name in fields.items():
            setting = settings[name]
            try:
                _coerce(setting, to_si(body[field], setting.unit))
            except (KeyError, UnitError, TypeError):
                continue  # absent (driver default) or a schema problem
            except ValueError as exc:
                self.fail((*path, field), f"{exc} ({spec.name} {name})")

    def _spectrum(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        self._vst_fields(body, path, SPECTRUM_FIELDS, "a spectrum's instrument")

    def _reflection(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        self._vst_fields(body, path, REFLECTION_FIELDS, "a reflection's instrument")
        try:
            start, stop = to_si(body["start"], "Hz"), to_si(body["stop"], "Hz")
        except (KeyError, TypeError, UnitError):
            return
        if start >= stop:
            self.fail((*path, "stop"), f"stop ({stop:g} Hz) must be above start ({start:g} Hz)")

    def _tune(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        spec = self.instrument(
            (*path, "instrument"), body.get("instrument"), (UmuxBoard,), "a tune's instrument"
        )
        if spec is None:
            return
        wanted = body.get("channels")
        count = len(spec.driver.channel_groups()["channels"][0])
        ramp = state.ramp(spec.name)
        budget = state.budget
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > count:
            self.fail((*path, "channels"), f"{spec.name} has {count} channels, not {wanted}")
        elif isinstance(wanted, int) and budget and ramp:
            problem = budget.exceeded(wanted, *ramp)
            if problem:
                self.fail((*path, "channels"), f"{problem} on {spec.name}")
        if budget and ramp:
            fits = min(count, budget.channels(*ramp), budget.resonators)
            state.enable_tones(spec.name, min(wanted, fits) if isinstance(wanted, int) else fits)

    def _analyze(self, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        pipeline = body.get("pipeline")
        if isinstance(pipeline, str) and pipeline not in PIPELINES:
            known = sorted(PIPELINES)
            self.fail((*path, "pipeline"), f"no analysis pipeline {pipeline!r}"
                      f"{did_you_mean(pipeline, known)}; known: {', '.join(known) or 'none'}")
        names = body.get("acquisitions")
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in self.sites and name not in self.stored:
                earlier = list(self.sites)
                hint = did_you_mean(name, earlier + list(self.stored))
                self.fail((*path, "acquisitions", j), f"no earlier step stores {name!r}{hint}; "
                          f"earlier: {', '.join(earlier) or 'none'}")
        result = body.get("name") or pipeline
        if isinstance(result, str):
            self.unique(self.results, result, path, "analysis result",
                        "; give this analyze step another `name`")

    def produce(self, name: Any, path: KeyPath) -> None:
        """Record that the step at `path` stores data under `name` (plus the suffix of each
        sweep point or repeat pass); two steps may not store under one name."""
        if isinstance(name, str):
            self.sites.setdefault(name, path)
            self.unique(self.stored, name, path, "data name")

    def unique(self, table: dict[str, KeyPath], name: str, path: KeyPath, what: str,
               hint: str = "") -> None:
        for suffix in self.suffixes:
            first = table.setdefault(f"{name}{suffix}", path)
            if first != path:
                where = (*first, "name") if (*first, "name") in self.doc.marks else first
                self.fail((*path, "name") if (*path, "name") in self.doc.marks else path,
                          f"{what} {name + suffix!r} is already used by {dotted(first)} "
                          f"({self.doc.where(where)}){hint}")
                return
