"""`set`: instrument settings as dotted paths (`tc.outputs.1.setpoint: 20 mK`), or `world.KEY`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.base import StepError, StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.rig import planned_settings
from cryodaq.acquisition.yaml_source import KeyPath

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState

#: `set` keys under this prefix change the simulated World (a source swapped, a shield
#: mounted between acquisitions) rather than an instrument.
WORLD_PREFIX = "world."


class SetStep(Step):
    kind: Literal["set"] = "set"
    settings: dict[str, Any]


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
    """Set instrument parameters given as dotted paths; returns what was set."""
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


def set_world(ctx: RunContext, path: str, value: Any) -> None:
    """`world.KEY: value` on a simulated rig (`World.set_param`)."""
    if ctx.rig.world is None:
        raise StepError(f"set {path}: world.* settings exist only on simulated rigs")
    try:
        ctx.rig.world.set_param(path.removeprefix(WORLD_PREFIX), value)
    except ValueError as exc:
        raise StepError(f"set {path}: {exc}") from None


class SetHandler(StepHandler):
    kind = "set"
    model = SetStep
    scalar_body = "settings"

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if isinstance(body, dict):
            for key, value in body.items():
                checker.assign(state, key, value, (*path, key), (*path, key))

    def run(self, run: StepRun, step: SetStep, sid: str, suffix: str, ctx: RunContext) -> dict:
        return {"set": apply_settings(ctx, step.settings)}

    def restoring(self, *, continuing: bool) -> str | None:
        return "restoring state"

    def restore(self, run: StepRun, step: SetStep, suffix: str, ctx: RunContext) -> None:
        apply_settings(ctx, step.settings)
