"""`analyze`: run an analysis pipeline on the run's stored data; results go into the summary.

`cryodaq analyze RUN_DIR` runs a stored run's analyze steps again through `analyze_step`, the
same path as the campaign.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.base import StepError, StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.cluster.analyze import OnPiece, analyze
from cryodaq.acquisition.errors import did_you_mean
from cryodaq.acquisition.pipelines import (
    PIPELINES,
    PipelineError,
    PipelineInput,
    PipelineResult,
    UnknownPipeline,
    pipeline_options,
)
from cryodaq.acquisition.store.layout import FIGURES, STORE
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.yaml_source import KeyPath

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState


class AnalyzeStep(Step):
    kind: Literal["analyze"] = "analyze"
    pipeline: str
    acquisitions: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


def analyze_step(
    run_dir: Path, step: AnalyzeStep, name: str, client: Any = None,
    on_piece: OnPiece | None = None,
) -> PipelineResult:
    """Run `step`'s pipeline on the run in `run_dir` (per-channel pieces on `client`'s Dask
    cluster if given); `StepError` for an unknown pipeline."""
    inp = PipelineInput(
        run_dir,
        RunReader(run_dir / STORE),
        tuple(step.acquisitions),
        dict(step.options),
        run_dir / FIGURES,
    )
    try:
        return analyze(step.pipeline, inp, client, on_piece)
    except UnknownPipeline as exc:
        raise StepError(f"analyze {name}: {exc.args[0]}") from None


class AnalyzeHandler(StepHandler):
    kind = "analyze"
    model = AnalyzeStep

    def data_name(self, step: AnalyzeStep, suffix: str) -> str:
        return f"{step.name or step.pipeline}{suffix}"

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        pipeline = body.get("pipeline")
        if isinstance(pipeline, str) and pipeline not in PIPELINES:
            known = sorted(PIPELINES)
            checker.fail((*path, "pipeline"), f"no analysis pipeline {pipeline!r}"
                         f"{did_you_mean(pipeline, known)}; known: {', '.join(known) or 'none'}")
        elif isinstance(pipeline, str) and isinstance(body.get("options", {}), dict):
            try:
                pipeline_options(pipeline)(body.get("options"))
            except (PipelineError, ValueError, TypeError) as exc:
                where = (*path, "options") if "options" in body else path
                checker.fail(where, str(exc))
        names = body.get("acquisitions")
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in checker.sites and name not in checker.stored:
                earlier = list(checker.sites)
                hint = did_you_mean(name, earlier + list(checker.stored))
                checker.fail((*path, "acquisitions", j), f"no earlier step stores {name!r}{hint}; "
                             f"earlier: {', '.join(earlier) or 'none'}")
        result = body.get("name") or pipeline
        if isinstance(result, str):
            checker.unique(checker.results, result, path, "analysis result",
                           "; give this analyze step another `name`")

    def run(self, run: StepRun, step: AnalyzeStep, sid: str, suffix: str, ctx: RunContext) -> dict:
        name = self.data_name(step, suffix)
        outcome = analyze_step(run.run_dir, step, name)
        figures = tuple(str(p.relative_to(run.run_dir)) for p in outcome.figures)
        run.summary = run.summary.with_analysis(name, outcome.results, figures)
        return {"pipeline": step.pipeline, "figures": [str(p) for p in outcome.figures]}
