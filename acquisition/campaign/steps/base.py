"""What a step kind is: its model, how it is checked against the rig, run, and restored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.yaml_source import KeyPath

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.progress import Progress
    from cryodaq.acquisition.campaign.state import CampaignState
    from cryodaq.acquisition.campaign.steps.context import RunContext
    from cryodaq.acquisition.store.summary import RunSummary


class StepError(CryodaqError):
    """A step could not be carried out; the message names the step and the reason."""


class StepRun(Protocol):
    """The campaign run as a step sees it (the runner): its directory, progress and summary."""

    run_dir: Path
    resume: bool
    progress: Progress
    summary: RunSummary
    #: Whether acquisitions run as board tasks on a Dask cluster (one board too).
    clustered: bool

    def save(self) -> None:
        """Write progress and summary (atomically)."""

    def dask(self, boards: int) -> Any:
        """The Dask client for board tasks (a local cluster is started on first use)."""


class StepHandler:
    """One step kind. Adding a kind is one module with its model and a subclass of this,
    listed in `steps.table`: the schema, the checks, the runner and the CLI all read the table.

    A leaf kind implements `run`; a container kind (`sweep`, `repeat`) implements `passes` and
    `body`, and the runner walks its steps once per pass."""

    kind: ClassVar[str]
    model: ClassVar[type[Step]]
    #: A step written `kind: VALUE` (not a mapping) puts VALUE in this field.
    scalar_body: ClassVar[str | None] = None

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        """Problems of the step's YAML `body` at `path` against the rig, into `checker`;
        `state` is the instruments' state as the steps before leave it (updated in place)."""

    def run(self, run: StepRun, step: Any, sid: str, suffix: str, ctx: RunContext) -> dict:
        """Carry the step out; what it returns goes into the summary and progress."""
        raise NotImplementedError(f"{self.kind} is a container: the runner walks its steps")

    def restoring(self, *, continuing: bool) -> str | None:
        """What `restore` does on resume to a completed step, for the display (None: nothing);
        `continuing`: the steps after it in its list are still to run."""
        return None

    def restore(self, run: StepRun, step: Any, suffix: str, ctx: RunContext) -> None:
        """On resume, a completed step puts back the rig state later steps expect; it never
        measures again."""

    def passes(self, step: Any) -> Sequence[dict[str, Any]] | None:
        """A container's passes, each with the settings applied before it; None for a leaf."""
        return None

    def body(self, step: Any) -> Sequence[Step]:
        """A container's steps, run once per pass."""
        return ()

    def data_name(self, step: Any, suffix: str) -> str | None:
        """The name the step stores its data or results under (with a pass's suffix)."""
        name = getattr(step, "name", None)
        return f"{name}{suffix}" if name else None
