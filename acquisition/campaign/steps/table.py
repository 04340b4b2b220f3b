"""The table of step kinds: every part of cryodaq that meets a step looks its kind up here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.acquire import AcquireHandler
from cryodaq.acquisition.campaign.steps.analyze import AnalyzeHandler
from cryodaq.acquisition.campaign.steps.base import StepHandler
from cryodaq.acquisition.campaign.steps.reflection import ReflectionHandler
from cryodaq.acquisition.campaign.steps.repeat import RepeatHandler
from cryodaq.acquisition.campaign.steps.set import SetHandler
from cryodaq.acquisition.campaign.steps.spectrum import SpectrumHandler
from cryodaq.acquisition.campaign.steps.sweep import SweepHandler
from cryodaq.acquisition.campaign.steps.tune import TuneHandler
from cryodaq.acquisition.campaign.steps.wait import WaitHandler
from cryodaq.acquisition.campaign.steps.wait_stable import WaitStableHandler

#: Step kind -> its handler, in the order the documentation lists them.
HANDLERS: dict[str, StepHandler] = {
    h.kind: h
    for h in (
        SetHandler(),
        WaitHandler(),
        WaitStableHandler(),
        AcquireHandler(),
        SpectrumHandler(),
        ReflectionHandler(),
        TuneHandler(),
        SweepHandler(),
        AnalyzeHandler(),
        RepeatHandler(),
    )
}
STEP_KINDS = tuple(HANDLERS)


def leaf_steps(steps: Sequence[Step], suffix: str = "") -> Iterator[tuple[Step, str]]:
    """Every leaf step as the runner meets it, with the suffix of its sweep point or repeat
    pass (`.k`, nested: `.k.j`)."""
    for step in steps:
        handler = HANDLERS[step.kind]
        passes = handler.passes(step)
        if passes is None:
            yield step, suffix
            continue
        for k in range(len(passes)):
            yield from leaf_steps(handler.body(step), f"{suffix}.{k}")
