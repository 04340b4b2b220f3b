"""Instrument settings as they stand at each point of a campaign, known without opening
anything: a simulated instrument's power-on values (its device file), then the rig's initial
settings, then each `set` step and sweep point. Used to check the uMUX channel budget
n = f_ADC/(2 f_ramp n_Phi0 g_f) where the campaign changes the flux ramp or the tones.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from cryodaq.acquisition.rig import InstrumentSpec, RigSpec
from cryodaq.analysis.resonator import channel_budget, guard_factor
from cryodaq.drivers.base import Setting, parse_value
from cryodaq.drivers.lakeshore import Field
from cryodaq.drivers.lakeshore372 import LakeShore372
from cryodaq.drivers.umux import UmuxBoard
from cryodaq.sim_instruments.lakeshore372_commands import STORED as LS372_STORED
from cryodaq.sim_instruments.lakeshore372_commands import Stored
from cryodaq.sim_instruments.library import device_file
from cryodaq.sim_instruments.umux_model import ADC_BANDWIDTH_HZ, ResonatorComb

#: (instrument, channel group or None, channel or None, setting name)
Key = tuple[str, str | None, int | str | None, str]


@functools.cache
def _device_defaults(kind: str) -> dict[str, Any]:
    """Power-on value of each property of a simulated instrument kind, by its getter query."""
    devices = yaml.safe_load(device_file(kind).read_text(encoding="utf-8"))["devices"]
    spec = next(iter(devices.values()))
    props = [spec.get("properties", {})]
    props += [group.get("properties", {}) for group in spec.get("channels", {}).values()]
    return {p["getter"]["q"]: p.get("default") for ps in props for p in ps.values()}


def power_on(spec: InstrumentSpec) -> dict[Key, Any]:
    """Power-on settings of a simulated instrument; empty for a real one (unknown)."""
    if spec.backend != "sim" or spec.sim_kind is None:
        return {}
    if spec.sim_kind == "lakeshore372":
        return _stored_power_on(spec, LS372_STORED)
    defaults = _device_defaults(spec.sim_kind)
    out: dict[Key, Any] = {}

    def take(setting: Setting[Any], query: str, key: Key) -> None:
        if defaults.get(query) is not None:
            out[key] = parse_value(str(defaults[query]), setting.kind)

    for name, setting in spec.driver.declared_settings().items():
        take(setting, f"{setting.command}?", (spec.name, None, None, name))
    for group, (ids, channel_class) in spec.driver.channel_groups().items():
        for name, setting in channel_class.declared_settings().items():
            query = setting.command.replace("{ch}", "{ch_id}") + "?"
            for ch in ids:
                take(setting, query, (spec.name, group, ch, name))
    return out


def _stored_power_on(spec: InstrumentSpec, stored: Mapping[str, Stored]) -> dict[Key, Any]:
    """Power-on settings of a simulated Lake Shore controller: each plain `Field` from its
    command's stored defaults; an input is enabled at power-on when a sensor is wired to it."""
    wired = {str(ch).upper() for ch in dict(spec.sim_params.get("sensors") or {})}
    out: dict[Key, Any] = {}
    for group, (ids, channel_class) in spec.driver.channel_groups().items():
        for name, setting in channel_class.declared_settings().items():
            command = stored.get(getattr(setting, "mnemonic", ""))
            if type(setting) is not Field or command is None:
                continue
            for ch in ids:
                if str(ch) not in command.addresses:
                    continue
                if (setting.mnemonic, setting.position) == ("INSET", 0):
                    out[(spec.name, group, ch, name)] = str(ch) in wired
                    continue
                text = command.defaults[setting.position]
                out[(spec.name, group, ch, name)] = setting.decode(channel_class, text)
    return out


@dataclass(frozen=True)
class BoardBudget:
    """What fixes a uMUX board's channel budget besides its flux ramp: the rule the board
    itself enforces (CHAN:BUDG?, from its chip's nominal spacing and bandwidth), known before
    anything is opened. The `tune` step measures the chip's own budget from the resonators it
    finds (`cryodaq.analysis.channel_budget`) and refuses tones beyond either."""

    guard: float
    resonators: int
    f_adc_hz: float = ADC_BANDWIDTH_HZ

    @classmethod
    def from_world(cls, world: Mapping[str, Any]) -> BoardBudget:
        """g_f = spacing/bandwidth of the World's resonators, with the simulator's defaults
        (a `ValueError` names the bad `world.resonators` key)."""
        section = world.get("resonators")
        if section is not None and not isinstance(section, Mapping):
            raise ValueError("world.resonators must be a mapping")
        comb = ResonatorComb.from_params(section, np.random.default_rng(0))
        return cls(guard_factor(comb.spacing_hz, comb.bandwidth_hz), int(comb.f0_hz.size))

    def channels(self, f_ramp_hz: float, n_phi0: float) -> int:
        return channel_budget(self.f_adc_hz, f_ramp_hz, n_phi0, self.guard)

    def exceeded(self, wanted: int, f_ramp_hz: float, n_phi0: float) -> str | None:
        """Why `wanted` channels do not fit at this ramp (the formula's numbers), or None."""
        n = self.channels(f_ramp_hz, n_phi0)
        if wanted <= n:
            return None
        return (
            f"{wanted} channels exceed the budget f_ADC/(2 f_ramp n_Phi0 g_f) = "
            f"{self.f_adc_hz / 1e6:g} MHz/(2 x {f_ramp_hz / 1e3:g} kHz x {n_phi0:g} x "
            f"{self.guard:g}) = {n}"
        )


def world_problem_key(message: str) -> str | None:
    """The `world.resonators` key a `BoardBudget.from_world` error names, if any."""
    match = re.search(r"world\.resonators\.(\w+)", message)
    return match.group(1) if match else None


@dataclass
class CampaignState:
    """Known settings of every instrument at one point of the campaign."""

    rig: RigSpec
    budget: BoardBudget | None
    values: dict[Key, Any] = field(default_factory=dict)

    def copy(self) -> CampaignState:
        return CampaignState(self.rig, self.budget, dict(self.values))

    def ramp(self, board: str) -> tuple[float, float] | None:
        """(f_ramp, n_Phi0) of a uMUX board, or None if not known."""
        f = self.values.get((board, None, None, "ramp_frequency"))
        n = self.values.get((board, None, None, "ramp_amplitude"))
        return None if f is None or n is None else (float(f), float(n))

    def enabled(self, board: str) -> set[int | str | None]:
        """Channels of a uMUX board known to have their tone on."""
        return {
            k[2] for k, v in self.values.items()
            if k[0] == board and k[1] == "channels" and k[3] == "enabled" and v
        }

    def apply(
        self, inst: str, ch: tuple[str, int | str] | None, setting: Setting[Any], value: Any
    ) -> str | None:
        """Record a setting; if a uMUX board would refuse it (channel budget), return why and
        leave the state as the board would: unchanged."""
        key: Key = (inst, None, None, setting.name) if ch is None else (inst, *ch, setting.name)
        refusal = self._budget_refusal(inst, key, value)
        if refusal is None:
            self.values[key] = value
        return refusal

    def _budget_refusal(self, inst: str, key: Key, value: Any) -> str | None:
        spec = self.rig.instruments.get(inst)
        if self.budget is None or spec is None or not issubclass(spec.driver, UmuxBoard):
            return None
        ramp = self.ramp(inst)
        enabled = self.enabled(inst)
        if key[1:] == ("channels", key[2], "enabled") and value and key[2] not in enabled:
            enabled.add(key[2])
        elif key[1] is None and key[3] in ("ramp_frequency", "ramp_amplitude") and ramp:
            f, n = ramp
            ramp = (float(value), n) if key[3] == "ramp_frequency" else (f, float(value))
        else:
            return None
        return None if ramp is None else self.budget.exceeded(len(enabled), *ramp)

    def enable_tones(self, board: str, count: int | None) -> None:
        """What a `tune` leaves: tones on channels 1..count, the others off (None: on an
        unknown number of channels)."""
        spec = self.rig.instruments[board]
        ids = spec.driver.channel_groups()["channels"][0]
        for i, ch in enumerate(ids):
            if count is None:
                self.values.pop((board, "channels", ch, "enabled"), None)
            else:
                self.values[(board, "channels", ch, "enabled")] = i < count

    def all_off(self, inst: str) -> bool:
        """Whether every channel of `inst` (its `channels` group) is known to be disabled."""
        spec = self.rig.instruments.get(inst)
        groups = spec.driver.channel_groups() if spec else {}
        ids = groups["channels"][0] if "channels" in groups else ()
        states = [self.values.get((inst, "channels", ch, "enabled")) for ch in ids]
        return bool(ids) and all(s is not None and not s for s in states)

    def loop_inputs(self, tc: str) -> set[str] | None:
        """Inputs a closed loop of controller `tc` controls on, or None if not known."""
        spec = self.rig.instruments.get(tc)
        if spec is None or not issubclass(spec.driver, LakeShore372):
            return None
        out: set[str] = set()
        for group in ("outputs", "analog"):
            for ch in spec.driver.channel_groups()[group][0]:
                mode = self.values.get((tc, group, ch, "mode"))
                source = self.values.get((tc, group, ch, "input_channel"))
                if mode is None or source is None:
                    return None
                if str(mode).upper() == "CLOSED_LOOP":
                    out.add(str(source).upper())
        return out
