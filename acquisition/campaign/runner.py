"""Running a campaign: walk its steps on the rig, record progress, resume, summarise.

Every leaf step has an id (its position: `3`, `4.2.0` for step 0 of point 2 of sweep 4) and is
recorded in `progress.json` when it completes, so `--resume` continues after the last
completed step. On resume, a completed step restores what later steps expect (its handler's
`restore`: settings applied again, tones put back, a temperature waited for again where its
list continues); acquisitions, spectra and analyses are never redone. Each kind's work is its
handler's (`steps.table`); the runner only walks, records and summarises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryodaq.acquisition.atomic import write_json_atomic
from cryodaq.acquisition.campaign.display import Display
from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.progress import Interrupted, Progress
from cryodaq.acquisition.campaign.schema import Campaign
from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.campaign.steps.set import apply_settings
from cryodaq.acquisition.campaign.steps.table import HANDLERS
from cryodaq.acquisition.clock import clock_for
from cryodaq.acquisition.cluster.connection import ClusterSpec, connect
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.pipelines.report import write_run_report
from cryodaq.acquisition.rig import Rig, RigSpec, derived_seed
from cryodaq.acquisition.store.format import software_versions
from cryodaq.acquisition.store.layout import CAMPAIGN, PROGRESS, STORE, SUMMARY
from cryodaq.acquisition.store.lock import RunLock
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.summary import RunSummary, json_default
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import AcquisitionError
from cryodaq.drivers.errors import InstrumentError

log = logging.getLogger("cryodaq")

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_directory(campaign: Campaign, out: Path | None, base: Path) -> Path:
    """The run directory: `--out`, or the campaign's `output` pattern (relative to `base`)."""
    if out is not None:
        return out
    path = Path(campaign.output.format(name=campaign.name, start=datetime.now()))
    return path if path.is_absolute() else base / path


class _LogFile(logging.FileHandler):
    """A run's log file that drops a record it cannot write (a full disk) without a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        """Drop the record: the run's outcome is reported elsewhere."""


class CampaignRunner:
    """Runs one campaign into one run directory (new, or resumed)."""

    def __init__(
        self,
        campaign: Campaign,
        rig_spec: RigSpec,
        resolved: dict[str, Any],
        run_dir: Path,
        *,
        resume: bool = False,
        display: Display | None = None,
        cluster: ClusterSpec | None = None,
        client: Any = None,
    ) -> None:
        """`cluster` (or a connected Dask `client`) runs every acquisition as board tasks on
        it; without either, one-board acquisitions run here and a local cluster of one worker
        process per board (up to the cores) is started for the first multi-board one."""
        self.campaign = campaign
        self.rig_spec = rig_spec
        self.resolved = resolved
        self.run_dir = run_dir
        self.resume = resume
        self.display = display or Display(live=False)
        self.progress = Progress.load(run_dir / PROGRESS)
        self.summary: RunSummary | None = None
        #: Why the final summary is only in memory (it could not be written), if it is.
        self.unsaved: str | None = None
        self.cluster = cluster
        self.client = client
        self._cluster_stack = contextlib.ExitStack()

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> int:
        """Execute the campaign; returns the exit code (0 done, 1 failed, 130 interrupted).

        The run directory is locked from its creation (or, on resume, before anything is read
        or written) to the end: a second process is refused and touches nothing."""
        with RunLock(self.run_dir) as lock:
            return self._run_locked(lock)

    def _run_locked(self, lock: RunLock) -> int:
        if self.resume:
            self._open_for_resume(lock)
            self._reseed()
        rig = Rig(self.rig_spec)  # a bad World parameter fails here, before a new run is written
        try:
            if not self.resume:
                self._create_directory(lock, rig)
        except BaseException:
            rig.close()
            raise
        with self._logging(), rig:
            self._start_summary(rig)
            clock = clock_for(rig, self.summary.clock_epoch_ns)
            if self.resume and rig.world is not None:  # the virtual time line goes on
                rig.world.advance_to(self._resumed_virtual_time())
            wall0, virtual0 = time.monotonic(), clock.now()
            status, error, code = "failed", None, EXIT_FAILED
            store = None
            with self.display:
                try:
                    resumable = self.resume and (self.run_dir / STORE).exists()
                    store = (RunStore.resume if resumable else RunStore.create)(
                        self.run_dir / STORE, RunStore.snapshots(self.resolved),
                        records_codec=self.campaign.store.records_codec,
                        buffer_bytes=int(self.campaign.store.buffer),
                    )
                    ctx = RunContext(
                        rig, clock, store, self.run_dir, on_monitor=self.display.monitor
                    )
                    for name in self.rig_spec.instruments:  # rig file settings hold from the start
                        ctx.instrument(name)
                    self._steps(self.campaign.steps, "", "", ctx)
                    status, code = "completed", EXIT_OK
                except (Interrupted, KeyboardInterrupt):
                    status, code = "interrupted", EXIT_INTERRUPTED
                except (StepError, AcquisitionError, InstrumentError, CryodaqError) as exc:
                    hint = getattr(exc, "resume_hint", None)
                    error = str(exc) + (
                        f"; {hint}, then `cryodaq run --resume {self.run_dir}`" if hint else ""
                    )
                    log.error("%s", error)
                except Exception as exc:  # a bug or an unforeseen fault: failed, never completed
                    error = f"unexpected {type(exc).__name__}: {exc} (traceback in cryodaq.log)"
                    log.exception("unexpected failure")
                finally:
                    try:
                        if store is not None:
                            store.close(end_reason=status if error is None else f"failed: {error}")
                    except (CryodaqError, OSError) as exc:  # the store keeps its last commits
                        log.error("closing the run store failed: %s", exc)
                        if error is None:
                            status, code = "failed", EXIT_FAILED
                            error = f"closing the run store failed: {exc}"
                    self._cluster_stack.close()
                    self._finish_summary(
                        status, error, clock.now() - virtual0, time.monotonic() - wall0
                    )
        return code

    def _drop_half_made_store(self) -> None:
        """A run store's root is written last when it is made: one without it was killed
        while being made, holds nothing, and is made again."""
        store = self.run_dir / STORE
        if store.exists() and not (store / "zarr.json").exists():
            shutil.rmtree(store)

    def _resumed_virtual_time(self) -> float:
        """Where a resumed simulated rig's time goes on: after everything the store holds
        (a killed run stored stream time its summary never counted), never back in time."""
        virtual = self.summary.virtual_time_s
        if (self.run_dir / STORE).exists():
            reader = RunReader(self.run_dir / STORE)
            for acq in reader.acquisitions():
                info, commit = reader.info(acq), reader.commit(acq)
                start_ns = info.get("metadata", {}).get("start_time_ns", 0)
                end_ns = start_ns + 1e9 * (commit.next_sample or 0) / info["sample_rate_hz"]
                virtual = max(virtual, (end_ns - self.summary.clock_epoch_ns) / 1e9)
        return virtual

    def _reseed(self) -> None:
        """A resumed simulated rig is a later stretch of the same experiment: its random events
        (pulses, noise) must be new ones, not a replay of the first part's."""
        if not self.rig_spec.simulated:
            return
        path = self.run_dir / SUMMARY
        resumes = len(RunSummary.read(path).resumed) if path.exists() else 0
        world = self.rig_spec.world
        world["seed"] = derived_seed(world.get("seed", 0), f"resume{resumes + 1}")

    def _open_for_resume(self, lock: RunLock) -> None:
        """Lock the run, then read where it stands. A run killed at any moment after its
        directory was made resumes: a missing progress is no step done, a missing summary a
        fresh one."""
        if not (self.run_dir / CAMPAIGN).is_file():
            raise CryodaqError(f"{self.run_dir}: not a cryodaq run directory (no {CAMPAIGN})")
        lock.acquire("cryodaq run --resume")
        self._drop_half_made_store()
        self.progress = Progress.load(self.run_dir / PROGRESS)
        if (self.run_dir / SUMMARY).exists():
            self.summary = RunSummary.read(self.run_dir / SUMMARY)
            if self.summary.status == "completed":
                raise CryodaqError(f"{self.run_dir}: the campaign completed; nothing to resume")

    def _create_directory(self, lock: RunLock, rig: Rig) -> None:
        """A new run directory, locked, with the campaign, an empty progress and a summary
        from the first moment on (so a run killed at any point can be resumed)."""
        if self.run_dir.exists() and (not self.run_dir.is_dir() or any(self.run_dir.iterdir())):
            raise CryodaqError(f"{self.run_dir}: exists and is not empty (runs never overwrite)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire("cryodaq run")
        write_json_atomic(self.run_dir / CAMPAIGN, self.resolved, default=json_default)
        self.progress.save()
        self._start_summary(rig)
        self.summary.write(self.run_dir / SUMMARY)

    @contextlib.contextmanager
    def _logging(self) -> Iterator[None]:
        handler = _LogFile(self.run_dir / "cryodaq.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        level = root.level
        root.setLevel(min(level, logging.INFO) if level else logging.INFO)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()

    # -- walking the steps ------------------------------------------------------------------------

    @property
    def clustered(self) -> bool:
        """Whether acquisitions run as board tasks on a Dask cluster."""
        return self.cluster is not None or self.client is not None

    def dask(self, boards: int) -> Any:
        """The Dask client for board tasks (a local cluster is started once, on first use)."""
        if self.client is None:
            spec = self.cluster or ClusterSpec(workers=min(boards, os.cpu_count() or 1))
            self.client = self._cluster_stack.enter_context(connect(spec))
        return self.client

    def _complete(self, step: Step, sid: str) -> bool:
        handler = HANDLERS[step.kind]
        passes = handler.passes(step)
        if passes is None:
            return sid in self.progress.done
        return all(
            self._complete(s, f"{sid}.{k}.{i}")
            for k in range(len(passes))
            for i, s in enumerate(handler.body(step))
        )

    def _steps(self, steps: Sequence[Step], prefix: str, suffix: str, ctx: RunContext) -> None:
        first_open = next(
            (i for i, s in enumerate(steps) if not self._complete(s, f"{prefix}{i}")), len(steps)
        )
        for i, step in enumerate(steps):
            sid = f"{prefix}{i}"
            handler = HANDLERS[step.kind]
            if handler.passes(step) is not None:
                self._container(step, sid, suffix, ctx)
            elif sid in self.progress.done:
                # Bring the rig back to the state later steps expect; never redo measurements.
                doing = handler.restoring(continuing=i < first_open < len(steps))
                if doing is not None:
                    self.display.step(sid, f"{self._label(step, suffix)} ({doing})")
                    log.info("step %s: %s (%s)", sid, self._label(step, suffix), doing)
                    handler.restore(self, step, suffix, ctx)
            else:
                self._leaf(step, sid, suffix, ctx)

    def _container(self, step: Step, sid: str, suffix: str, ctx: RunContext) -> None:
        handler = HANDLERS[step.kind]
        body = handler.body(step)
        for k, settings in enumerate(handler.passes(step) or ()):
            open_pass = not all(
                self._complete(s, f"{sid}.{k}.{i}") for i, s in enumerate(body)
            )
            if open_pass and settings:
                self.display.step(f"{sid}.{k}", f"{step.kind} point {k}: {settings}")
                apply_settings(ctx, settings)
            self._steps(body, f"{sid}.{k}.", f"{suffix}.{k}", ctx)

    @staticmethod
    def _label(step: Step, suffix: str) -> str:
        return f"{step.kind} {HANDLERS[step.kind].data_name(step, suffix) or ''}".strip()

    def _leaf(self, step: Step, sid: str, suffix: str, ctx: RunContext) -> None:
        label = f"{step.kind} {step.name or ''}".strip()
        self.display.step(sid, label)
        wall0, virtual0 = time.monotonic(), ctx.clock.now()
        log.info("step %s: %s", sid, label)
        result = HANDLERS[step.kind].run(self, step, sid, suffix, ctx)
        entry = {
            "id": sid,
            "kind": step.kind,
            "name": step.name,
            "virtual_time_s": ctx.clock.now() - virtual0,
            "wall_time_s": time.monotonic() - wall0,
            "result": result,
        }
        self.progress.done[sid] = entry
        self.summary = self.summary.with_step(entry)
        self.save()

    # -- summary ----------------------------------------------------------------------------------

    def save(self) -> None:
        """Write progress and summary (each atomically)."""
        self.progress.save()
        self.summary.write(self.run_dir / SUMMARY)

    def _start_summary(self, rig: Rig) -> None:
        if self.summary is not None:  # a resumed run's, or the one its creation wrote
            if self.resume:
                self.summary = replace(
                    self.summary, resumed=(*self.summary.resumed, _now_iso()), status="running"
                )
            return
        self.summary = RunSummary(
            campaign=self.campaign.name,
            rig=self.rig_spec.name,
            simulated=rig.world is not None,
            run_dir=str(self.run_dir),
            versions=software_versions(),
            started=_now_iso(),
            clock_epoch_ns=time.time_ns(),
        )

    def _finish_summary(self, status: str, error: str | None, virtual: float, wall: float) -> None:
        self.summary = self.summary.finished_as(
            status, error, _now_iso(), virtual, wall, len(self.progress.done)
        )
        try:
            self.summary.write(self.run_dir / SUMMARY)
            write_run_report(self.run_dir, self.summary)
        except OSError as exc:  # a full disk: the outcome is printed from `self.summary`
            self.unsaved = f"{SUMMARY} could not be written: {exc}"
            log.error("%s", self.unsaved)
