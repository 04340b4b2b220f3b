"""`wait_stable`: wait until a thermometer stays within a tolerance of its target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from cryodaq.acquisition.campaign.fields import Duration, Kelvin, KelvinAboveZero, Step
from cryodaq.acquisition.campaign.steps.base import StepError, StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.campaign.thermometry import log_reading
from cryodaq.acquisition.yaml_source import KeyPath
from cryodaq.drivers.lakeshore372 import LakeShore372

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState


class WaitStableStep(Step):
    """Wait until `sensor` (INSTRUMENT.INPUT of a temperature controller: `tc.1`, `tc.A`)
    stays within `tolerance` of `target` (default: the setpoint of the loop it controls) for
    `window`."""

    kind: Literal["wait_stable"] = "wait_stable"
    sensor: str
    tolerance: KelvinAboveZero
    window: Duration
    timeout: Duration
    target: Kelvin | None = None
    poll: Duration = 1.0


def wait_stable(ctx: RunContext, step: WaitStableStep) -> dict[str, Any]:
    """Poll the sensor until it holds within tolerance for the window; StepError on timeout."""
    name, _, ch = step.sensor.partition(".")
    tc = ctx.typed(name, LakeShore372, f"wait_stable {step.sensor}")
    ch = ch.upper()
    target = step.target
    loops = [o for o in tc.loops if o.mode == "CLOSED_LOOP" and o.input_channel == ch]
    if target is None:
        if not loops:
            raise StepError(
                f"wait_stable {step.sensor}: no closed loop controls on input {ch}; "
                "give `target`"
            )
        target = loops[0].setpoint
    start = ctx.clock.now()
    stable_since: float | None = None
    while True:
        now = ctx.clock.now()
        reading = tc.temperature(ch)
        log_reading(ctx, tc, step.sensor, reading, target, loops)
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


class WaitStableHandler(StepHandler):
    kind = "wait_stable"
    model = WaitStableStep

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("sensor"), str):
            return
        name, dot, channel = body["sensor"].partition(".")
        where = (*path, "sensor")
        if not dot:
            checker.fail(where, "expected INSTRUMENT.CHANNEL of a thermometer, e.g. tc.1")
            return
        spec = checker.instrument(where, name, (LakeShore372,), "a wait_stable sensor")
        if spec is None:
            return
        ids = [str(i) for i in spec.driver.channel_groups()["channels"][0]]
        if channel.upper() not in ids:
            checker.fail(where, f"{name} has no input {channel!r} (inputs {', '.join(ids)})")
            return
        loops = state.loop_inputs(name)
        if "target" not in body and loops is not None and channel.upper() not in loops:
            checker.fail(where, f"no closed loop of {name} controls on input {channel} at this "
                         "point, so there is no setpoint to wait for; give `target` or set an "
                         f"output's mode: CLOSED_LOOP and input_channel: {channel}")

    def run(
        self, run: StepRun, step: WaitStableStep, sid: str, suffix: str, ctx: RunContext
    ) -> dict:
        return wait_stable(ctx, step)

    def restoring(self, *, continuing: bool) -> str | None:
        # Later steps of its list expect the temperature it waited for.
        return "restoring state" if continuing else None

    def restore(self, run: StepRun, step: WaitStableStep, suffix: str, ctx: RunContext) -> None:
        wait_stable(ctx, step)
