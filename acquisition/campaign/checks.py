"""Checks of a campaign's steps against its rig, on the campaign's YAML as written.

The schema (`campaign.schema`) says what each step may contain; these checks say whether the
rig can do it: the instruments a step names exist and are of the right kind, settings are within
each driver's declared ranges, trigger channels and levels fit the source, the uMUX channel
budget holds at every point, analyze steps name known pipelines and acquisitions made before
them. `StepChecker` walks the steps and keeps the instruments' state; each kind's own check is
its handler's `check` (`steps.table`). Values the schema rejects are skipped here (the schema
reports them). Nothing is opened.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from cryodaq.acquisition.campaign.state import CampaignState
from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.campaign.steps.context import only_instrument
from cryodaq.acquisition.campaign.steps.table import HANDLERS
from cryodaq.acquisition.errors import ConfigError
from cryodaq.acquisition.rig import (
    InstrumentSpec,
    _coerce,
    did_you_mean,
    planned_settings,
)
from cryodaq.acquisition.units import UnitError, to_si
from cryodaq.acquisition.yaml_source import KeyPath, YamlDocument, dotted
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.lakeshore372 import LakeShore372
from cryodaq.drivers.microwave import ReflectionInstrument, SpectrumInstrument
from cryodaq.drivers.umux import UmuxBoard

KIND_NAMES: dict[type, str] = {
    Adc16: "an ADC (Adc16)",
    UmuxBoard: "a uMUX board (UmuxBoard)",
    LakeShore372: "a temperature controller (LakeShore372)",
    SpectrumInstrument: "a VST or a signal analyser (SpectrumInstrument)",
    ReflectionInstrument: "a VST or a VNA (ReflectionInstrument)",
}
#: A setting entry: key, value, key path, value path.
Entry = tuple[Any, Any, KeyPath, KeyPath]
#: Data names followed per step (sweep points times repeat passes).
MAX_NAMES = 100_000
#: Sweep points and repeat passes walked with their own instrument state in one campaign,
#: nested ones included (beyond it, each container's steps are walked once).
MAX_POINTS_WALKED = 1024
#: Name suffixes made and data names recorded in one campaign (beyond it, one suffix each).
MAX_NAME_WORK = 500_000


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
        self.walks_left = MAX_POINTS_WALKED
        self.names_left = MAX_NAME_WORK

    # -- helpers ----------------------------------------------------------------------------

    def fail(self, path: KeyPath, message: str, at_key: bool = False) -> None:
        self.problems.append(self.doc.error(path, message, at_key))

    def instrument(
        self,
        path: KeyPath,
        name: Any,
        kinds: tuple[type, ...],
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
                if kind in HANDLERS:
                    HANDLERS[kind].check(self, body, (*path, i, kind), state)

    def nested(self, items: Any, path: KeyPath, state: CampaignState, passes: int,
               only: int | None = None) -> None:
        """Walk a sweep's or repeat's steps, run `passes` times, with their names' suffixes
        (`only`: the suffixes of that pass alone)."""
        outer = self.suffixes
        ks = range(max(passes, 1)) if only is None else (only,)
        inner = (f"{s}.{k}" for s in outer for k in ks)
        self.suffixes = tuple(itertools.islice(inner, min(MAX_NAMES, max(1, self.names_left))))
        self.names_left -= len(self.suffixes)
        try:
            self.steps(items, path, state)
        finally:
            self.suffixes = outer

    def channel_of(self, where: KeyPath, ch: Any, name: str, ids: tuple[Any, ...],
                    at_key: bool = False) -> None:
        if isinstance(ch, int | str) and str(ch).isdigit() and int(ch) not in ids:
            self.fail(where, f"{name} has no channel {ch} (channels {ids[0]}..{ids[-1]})",
                      at_key)

    def microwave_fields(self, body: Any, path: KeyPath, kind: type, role: str) -> None:
        """Check a spectrum's or reflection's fields against what its instrument (a `kind`:
        `SpectrumInstrument` or `ReflectionInstrument`) declares for them, and record the data
        name it stores."""
        if not isinstance(body, dict):
            return
        self.produce(body.get("name"), path)
        name = body.get("instrument")
        if name is None and self.state is not None:  # the rig's only one that can do it
            try:
                name = only_instrument(self.state.rig, kind, role.removeprefix("a "))
            except StepError as exc:
                self.fail(path, str(exc))
                return
        spec = self.instrument((*path, "instrument"), name, (kind,), role)
        if spec is None:
            return
        driver: Any = spec.driver
        fields = (driver.spectrum_fields() if kind is SpectrumInstrument
                  else driver.reflection_fields())  # fmt: skip
        for field, setting in fields.items():
            try:
                _coerce(setting, to_si(body[field], setting.unit))
            except (KeyError, UnitError, TypeError):
                continue  # absent (driver default) or a schema problem
            except ValueError as exc:
                self.fail((*path, field), f"{exc} ({spec.name} {setting.name})")

    def produce(self, name: Any, path: KeyPath) -> None:
        """Record that the step at `path` stores data under `name` (plus the suffix of each
        sweep point or repeat pass); two steps may not store under one name."""
        if isinstance(name, str):
            self.sites.setdefault(name, path)
            self.unique(self.stored, name, path, "data name")

    def unique(self, table: dict[str, KeyPath], name: str, path: KeyPath, what: str,
               hint: str = "") -> None:
        suffixes = self.suffixes[: max(1, self.names_left)]
        self.names_left -= len(suffixes)
        for suffix in suffixes:
            first = table.setdefault(f"{name}{suffix}", path)
            if first != path:
                where = (*first, "name") if (*first, "name") in self.doc.marks else first
                self.fail((*path, "name") if (*path, "name") in self.doc.marks else path,
                          f"{what} {name + suffix!r} is already used by {dotted(first)} "
                          f"({self.doc.where(where)}){hint}")
                return
