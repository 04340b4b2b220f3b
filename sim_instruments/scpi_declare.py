"""A pyvisa-sim device file's commands registered with the SCPI parser, in canonical form."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cryodaq.sim_instruments.scpi_headers import HeaderTable


def _declare_properties(
    table: HeaderTable, properties: Mapping[str, Any], ids: list[str] | None
) -> None:
    for prop in properties.values():
        specs = prop.get("specs") or {}
        if "getter" in prop:
            prop["getter"]["q"] = table.declare(prop["getter"]["q"], None, None, ids)
        if "setter" in prop:
            q = prop["setter"]["q"]
            prop["setter"]["q"] = table.declare(q, specs, prop.get("default"), ids)


def declare_device(spec: Mapping[str, Any]) -> tuple[dict[str, Any], HeaderTable]:
    """A copy of a device's spec with canonical q-strings, and its header table.

    Each q-string of the file's dialogues, getters, setters and error queue may be written in
    SCPI notation (`[:SENSe]:FREQuency:CENTer {:e}`) or in the short form plain pyvisa-sim
    answers (`FREQ:CENT {:e}`); the device's `scpi: {headers: [...]}` list gives short
    q-strings their long forms and optional nodes, and declares the headers its physics model
    answers (`FETCh?`, any parameters). Setter specs may name the value's unit (`unit: HZ`)
    for suffixes such as `4.4 GHZ`.
    """
    out: dict[str, Any] = copy.deepcopy(dict(spec))
    channels = out.get("channels", {})
    all_ids = [str(i) for group in channels.values() for i in group.get("ids", ())]
    table = HeaderTable((out.get("scpi") or {}).get("headers", ()), all_ids)
    error = out.get("error")
    if isinstance(error, dict):
        for queue in error.get("error_queue", ()):
            queue["q"] = table.declare_error_query(queue["q"])
    for dialogue in out.get("dialogues", ()):
        dialogue["q"] = table.declare(dialogue["q"])
    _declare_properties(table, out.get("properties", {}), None)
    for group in channels.values():
        _declare_properties(table, group.get("properties", {}), [str(i) for i in group["ids"]])
    table.finish()
    return out, table


def declared(spec: Mapping[str, Any]) -> tuple[dict[str, Any], HeaderTable]:
    """`declare_device`, once per spec object (device files are parsed once, then cached);
    devices built from it share the result (neither pyvisa-sim nor the table changes it)."""
    key = id(spec)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not spec:
        hit = (spec, *declare_device(spec))
        _CACHE[key] = hit
    return hit[1], hit[2]


_CACHE: dict[int, tuple[Mapping[str, Any], dict[str, Any], HeaderTable]] = {}
