"""A rig: the instruments of one cryostat, simulated or real, built from `config/rigs/*.yaml`.

```yaml
name: example
world: {seed: 1, ...}            # the simulated World's parameters (sim backends only)
instruments:
  adc1:
    driver: adc                  # short name, or "package.module:Class" for a lab's own driver
    address: TCPIP0::127.0.0.1::5025::SOCKET
    backend: sim                 # sim | py (pyvisa-py) | ivi (the system VISA library)
    timeout: 500 ms
    settings: {sample_rate: 1 MHz, channels: {"1-16": {enabled: true}}}
    sim: {inputs: [fll.ch1, ...]}   # the simulated instrument's parameters (kind: to override)
```
Moving to the lab means changing `address` and `backend`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyvisa

from cryodaq.acquisition.errors import ConfigError, did_you_mean
from cryodaq.acquisition.units import UnitError, to_si, to_span_s
from cryodaq.acquisition.yaml_source import KeyPath, YamlDocument, load_yaml
from cryodaq.drivers.base import Instrument, Setting
from cryodaq.drivers.errors import InstrumentError
from cryodaq.sim_instruments.library import CryoSimLibrary, SimInstrument
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.world import World

#: Short driver names and the simulated instrument kind behind each.
DRIVERS = {
    "squid": "cryodaq.drivers.squid:SquidElectronics",
    "adc": "cryodaq.drivers.adc:Adc16",
    "lakeshore372": "cryodaq.drivers.lakeshore372:LakeShore372",
    "vst": "cryodaq.drivers.vst:VectorSignalTransceiver",
    "umux": "cryodaq.drivers.umux:UmuxBoard",
    "signal_analyser": "cryodaq.drivers.signal_analyser:SignalAnalyser",
    "vna": "cryodaq.drivers.vna:NetworkAnalyser",
}
SIM_MODELS = {
    "squid": "cryodaq.sim_instruments.squid_model:SquidModel",
    "adc": "cryodaq.sim_instruments.adc_model:AdcModel",
    "lakeshore372": "cryodaq.sim_instruments.lakeshore372_model:LakeShore372Model",
    "vst": "cryodaq.sim_instruments.vst_model:VstModel",
    "umux": "cryodaq.sim_instruments.umux_model:UmuxModel",
    "signal_analyser": "cryodaq.sim_instruments.signal_analyser_model:SignalAnalyserModel",
    "vna": "cryodaq.sim_instruments.vna_model:VnaModel",
}
BACKENDS = ("sim", "py", "ivi")
INSTRUMENT_KEYS = ("driver", "address", "backend", "timeout", "settings", "sim")
RIG_KEYS = ("name", "world", "instruments")


def _import(ref: str) -> Any:
    module, _, attr = ref.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attr)


def derived_seed(seed: Any, tag: str) -> int:
    """A World seed of its own for a later stretch of the same experiment (`tag`: a resume, a
    restarted server), derived from the rig's `seed`, so its random events are new ones."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _unknown(doc: YamlDocument, path: KeyPath, key: str, options: list[str]) -> ConfigError:
    return doc.error(
        (*path, key),
        f"unknown key{did_you_mean(key, options)}; allowed: {', '.join(options)}",
        at_key=True,
    )


def channel_selection(selector: Any, ids: tuple[int | str, ...]) -> list[int | str]:
    """Channels named by `"all"`, `3`, `"1-16"`, `"1,3,5-8"`, or a named id (`"A"`)."""
    text = str(selector).strip()
    if text.lower() == "all":
        return list(ids)
    named = {str(i).upper(): i for i in ids if isinstance(i, str)}
    chosen: list[int | str] = []
    for part in text.split(","):
        if part.strip().upper() in named:
            chosen.append(named[part.strip().upper()])
            continue
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(
                f"channel selector {selector!r}: use 'all', '3', '1-16' or '1,3,5-8'"
            ) from None
        for ch in range(first, last + 1):
            if ch not in ids:
                shown = ", ".join(str(i) for i in ids) if named else f"{ids[0]}..{ids[-1]}"
                raise ValueError(f"no channel {ch}; channels are {shown}")
            chosen.append(ch)
    return chosen


@dataclass
class InstrumentSpec:
    """One instrument as the rig file declares it."""

    name: str
    driver: type[Instrument]
    address: str
    backend: str
    timeout_s: float | None
    settings: dict[str, Any]
    sim_kind: str | None
    sim_params: dict[str, Any]


@dataclass
class RigSpec:
    """A validated rig file."""

    doc: YamlDocument
    name: str
    world: dict[str, Any]
    instruments: dict[str, InstrumentSpec] = field(default_factory=dict)

    @property
    def simulated(self) -> list[InstrumentSpec]:
        return [i for i in self.instruments.values() if i.backend == "sim"]


def _parse_instrument(doc: YamlDocument, name: str, raw: Any) -> InstrumentSpec:
    path: KeyPath = ("instruments", name)
    if not isinstance(raw, Mapping):
        raise doc.error(path, "must be a mapping with driver, address, backend, ...")
    for key in raw:
        if key not in INSTRUMENT_KEYS:
            raise _unknown(doc, path, str(key), list(INSTRUMENT_KEYS))
    for key in ("driver", "address"):
        if not raw.get(key):
            raise doc.error((*path, key), f"missing: every instrument needs {key!r}")
    ref = str(raw["driver"])
    try:
        driver = _import(DRIVERS.get(ref, ref))
    except (ImportError, AttributeError, ValueError) as exc:
        raise doc.error(
            (*path, "driver"),
            f"unknown driver class {ref!r} ({exc}); short names: {', '.join(DRIVERS)}, "
            "or give 'package.module:Class'",
        ) from None
    if not (isinstance(driver, type) and issubclass(driver, Instrument)):
        raise doc.error((*path, "driver"), f"{ref!r} is not a cryodaq Instrument class")
    backend = str(raw.get("backend", "sim"))
    if backend not in BACKENDS:
        raise doc.error((*path, "backend"), f"{backend!r} is not one of {', '.join(BACKENDS)}")
    timeout = None
    if raw.get("timeout") is not None:
        try:
            timeout = to_span_s(raw["timeout"])
        except UnitError as exc:
            raise doc.error((*path, "timeout"), str(exc)) from None
    sim = dict(raw.get("sim") or {})
    class_ref = f"{driver.__module__}:{driver.__name__}"
    kind = sim.pop("kind", None) or next((k for k, r in DRIVERS.items() if r == class_ref), None)
    if backend == "sim" and kind not in SIM_MODELS:
        raise doc.error(
            (*path, "sim"),
            f"no simulated instrument for driver {ref!r}; set sim.kind to one of "
            f"{', '.join(SIM_MODELS)}",
        )
    settings = raw.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise doc.error((*path, "settings"), "must be a mapping of setting names to values")
    return InstrumentSpec(
        name, driver, str(raw["address"]), backend, timeout, dict(settings), kind, sim
    )


def load_rig(path: str | Path) -> RigSpec:
    """Read and check a rig file; the first problem raises a `ConfigError` at its file:line."""
    return rig_from_document(load_yaml(path), Path(path).stem)


def rig_from_document(doc: YamlDocument, default_name: str) -> RigSpec:
    """A rig from a loaded (possibly inline or overridden) document; raises its first problem."""
    spec, problems = check_rig(doc, default_name)
    if problems:
        raise problems[0]
    return spec


def check_rig(doc: YamlDocument, default_name: str) -> tuple[RigSpec, list[ConfigError]]:
    """A rig and every problem found in it; the spec holds the instruments that parsed."""
    data = doc.data
    if not isinstance(data, Mapping):
        problem = doc.error((), "a rig is a mapping with name, world and instruments")
        return RigSpec(doc, default_name, {}), [problem]
    problems = [_unknown(doc, (), str(k), list(RIG_KEYS)) for k in data if k not in RIG_KEYS]
    world = data.get("world") or {}
    if not isinstance(world, Mapping):
        problems.append(doc.error(("world",), "must be a mapping (the simulated World)"))
        world = {}
    spec = RigSpec(doc, str(data.get("name", default_name)), dict(world))
    instruments = data.get("instruments")
    if not isinstance(instruments, Mapping) or not instruments:
        problems.append(doc.error(("instruments",), "a rig needs at least one instrument"))
        return spec, problems
    for name, raw in instruments.items():
        try:
            inst = _parse_instrument(doc, str(name), raw)
        except ConfigError as exc:
            problems.append(exc)
            continue
        spec.instruments[str(name)] = inst
        for _ in planned_settings(doc, inst, problems=problems):
            pass
    return spec, problems


# -- settings --------------------------------------------------------------------------------


def _coerce(setting: Setting[Any], value: Any) -> Any:
    if setting.kind is float:
        value = to_si(value, setting.unit)
    elif setting.kind is bool and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    elif setting.kind is int:
        value = int(to_si(value, setting.unit))
    if setting.readonly:
        raise ValueError("read-only")
    if setting.allowed is not None:
        value = setting.allowed.check(value, setting.unit)
    return value


def planned_settings(
    doc: YamlDocument,
    spec: InstrumentSpec,
    base: KeyPath | None = None,
    problems: list[ConfigError] | None = None,
) -> Iterator[tuple[KeyPath, tuple[str, int | str] | None, Setting[Any], Any]]:
    """Each setting of `spec.settings` as (key path, (group, channel) or None, setting, SI
    value); key paths start at `base` (default: the instrument's `settings` in the rig).
    A problem raises a `ConfigError`, or, given `problems`, is added there and skipped."""
    if base is None:
        base = ("instruments", spec.name, "settings")
    top = spec.driver.declared_settings()
    groups = spec.driver.channel_groups()
    for key, value in spec.settings.items():
        if key not in groups:
            try:
                path, setting, val = _checked(doc, (*base, key), top, key, value, list(groups))
            except ConfigError as exc:
                _report(problems, exc)
                continue
            yield path, None, setting, val
            continue
        ids, channel_class = groups[key]
        per_channel = channel_class.declared_settings()
        if not isinstance(value, Mapping):
            _report(problems, doc.error((*base, key), f"must map {key} selectors to settings"))
            continue
        for selector, group in value.items():
            where = (*base, key, selector)
            try:
                chosen = channel_selection(selector, tuple(ids))
                if not isinstance(group, Mapping | None):
                    raise ValueError(f"must map setting names of these {key} to values")
            except ValueError as exc:
                _report(problems, doc.error(where, str(exc)))
                continue
            for name, v in (group or {}).items():
                try:
                    path, setting, val = _checked(doc, (*where, name), per_channel, name, v)
                except ConfigError as exc:
                    _report(problems, exc)
                    continue
                for ch in chosen:
                    yield path, (key, ch), setting, val


def _report(problems: list[ConfigError] | None, problem: ConfigError) -> None:
    if problems is None:
        raise problem from None
    problems.append(problem)


def _checked(
    doc: YamlDocument,
    path: KeyPath,
    declared: dict[str, Setting[Any]],
    name: str,
    value: Any,
    groups: list[str] | None = None,
) -> tuple[KeyPath, Setting[Any], Any]:
    setting = declared.get(name)
    if setting is None:
        raise _unknown(doc, path[:-1], name, sorted(declared) + (groups or []))
    try:
        return path, setting, _coerce(setting, value)
    except UnitError as exc:
        raise doc.error(path, f"{exc}; allowed: {setting.describe()}") from None
    except (ValueError, TypeError) as exc:
        raise doc.error(path, str(exc)) from None


def check_settings(doc: YamlDocument, spec: InstrumentSpec) -> None:
    """Raise at the first initial setting that cannot be applied."""
    for _ in planned_settings(doc, spec):
        pass


# -- opening ------------------------------------------------------------------------------------


class Rig:
    """The opened instruments of a rig, and its World when simulated."""

    def __init__(self, spec: RigSpec, realtime: bool = False) -> None:
        self.spec = spec
        self.world: World | None = None
        self.library: CryoSimLibrary | None = None
        self.instruments: dict[str, Instrument] = {}
        self._managers: dict[str, pyvisa.ResourceManager] = {}
        if spec.simulated:
            try:
                self.world = World(spec.world, realtime=realtime)
            except ValueError as exc:  # a World parameter: name it at the rig's `world` key
                raise spec.doc.error(("world",), str(exc)) from None
            self.library = CryoSimLibrary.serving(
                [SimInstrument(i.address, i.sim_kind or "", self._model(i)) for i in spec.simulated]
            )

    def _model(self, spec: InstrumentSpec) -> SimModel:
        assert self.world is not None and spec.sim_kind is not None
        model_cls = _import(SIM_MODELS[spec.sim_kind])
        try:
            return model_cls(self.world, spec.name, spec.sim_params)
        except ValueError as exc:
            raise self.spec.doc.error(("instruments", spec.name, "sim"), str(exc)) from None

    def _manager(self, backend: str) -> pyvisa.ResourceManager:
        if backend not in self._managers:
            if backend == "sim":
                self._managers[backend] = pyvisa.ResourceManager(self.library)
            elif backend == "py":
                self._managers[backend] = pyvisa.ResourceManager("@py")
            else:
                self._managers[backend] = pyvisa.ResourceManager()
        return self._managers[backend]

    def open(self, name: str) -> Instrument:
        """Open one instrument, make it idle (`Instrument.make_idle`), apply its initial
        settings."""
        spec = self.spec.instruments[name]
        try:
            manager = self._manager(spec.backend)
        except (OSError, ValueError) as exc:
            raise InstrumentError(
                name, f"VISA library for backend {spec.backend!r}", str(exc)
            ) from None
        inst = spec.driver.open(manager, spec.address, name=name, timeout_s=spec.timeout_s)
        try:
            inst.make_idle()  # whatever a crashed run left running stops first
            for path, ch, setting, value in planned_settings(self.spec.doc, spec):
                node = inst if ch is None else inst.group_channel(*ch)
                try:
                    node.set(setting, value)
                except InstrumentError as exc:
                    raise self.spec.doc.error(path, exc.reason) from None
        except BaseException:
            inst.close()
            raise
        self.instruments[name] = inst
        return inst

    def close(self) -> None:
        for inst in self.instruments.values():
            with contextlib.suppress(InstrumentError, pyvisa.Error, OSError):
                inst.close()
        self.instruments.clear()
        for manager in self._managers.values():
            manager.close()
        self._managers.clear()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
