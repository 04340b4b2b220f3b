"""Running a campaign: walk its steps on the rig, record progress, resume, summarise.

Every leaf step has an id (its position: `3`, `4.2.0` for step 0 of point 2 of sweep 4) and is
recorded in `progress.json` when it completes, so `--resume` continues after the last
completed step. On resume, completed `set` steps (and sweep points' settings) are applied
again and completed `wait_stable` steps rerun where the interrupted list continues, so the
rig is back in the state the next step expects; acquisitions, spectra and analyses are never
redone. An interrupted acquisition keeps what it stored and finishes the rest of its duration
into `<name>-part2`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryodaq.acquisition.campaign import steps as steps_impl
from cryodaq.acquisition.campaign.display import Display
from cryodaq.acquisition.campaign.schema import AnyStep, Campaign
from cryodaq.acquisition.campaign.steps import RunContext, StepError, WallClock, WorldClock
from cryodaq.acquisition.cluster import boards as boards_impl
from cryodaq.acquisition.cluster.connection import ClusterSpec, connect
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.pipelines import (
    PART_SEPARATOR,
    PipelineInput,
    UnknownPipeline,
    get_pipeline,
)
from cryodaq.acquisition.rig import Rig, RigSpec
from cryodaq.acquisition.store.format import software_versions
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.acquisition.stream.engine import AcquisitionError
from cryodaq.drivers.errors import InstrumentError

log = logging.getLogger("cryodaq")

STORE, PROGRESS, SUMMARY, FIGURES = "store", "progress.json", "summary.json", "figures"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class Interrupted(Exception):
    """Ctrl-C: the campaign stops, everything done so far is kept."""


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_directory(campaign: Campaign, out: Path | None, base: Path) -> Path:
    """The run directory: `--out`, or the campaign's `output` pattern (relative to `base`)."""
    if out is not None:
        return out
    path = Path(campaign.output.format(name=campaign.name, start=datetime.now()))
    return path if path.is_absolute() else base / path


@dataclass
class Progress:
    """Completed and partial steps, saved atomically after each change."""

    path: Path
    done: dict[str, dict[str, Any]]
    partial: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Progress:
        if not path.exists():
            return cls(path, {}, {})
        data = json.loads(path.read_text())
        return cls(path, data.get("done", {}), data.get("partial", {}))

    def save(self) -> None:
        _write_json(self.path, {"done": self.done, "partial": self.partial})


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
        self.summary: dict[str, Any] = {}
        self.figures: list[Path] = []
        self.cluster = cluster
        self.client = client
        self._cluster_stack = contextlib.ExitStack()

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> int:
        """Execute the campaign; returns the exit code (0 done, 1 failed, 130 interrupted)."""
        if self.resume:
            self._reseed()
        rig = Rig(self.rig_spec)  # a bad World parameter fails here, before anything is written
        try:
            self._prepare_directory()
        except BaseException:
            rig.close()
            raise
        with self._logging(), rig:
            clock = WorldClock(rig) if rig.world is not None else WallClock()
            if self.resume and rig.world is not None:  # the virtual time line goes on
                rig.world.advance_to(float(self.summary.get("virtual_time_s", 0.0)))
            self._start_summary(rig, clock)
            wall0, virtual0 = time.monotonic(), clock.now()
            status, error, code = "failed", None, EXIT_FAILED
            store = None
            with self.display:
                try:
                    store = (RunStore.resume if self.resume else RunStore.create)(
                        self.run_dir / STORE
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
                    error = str(exc)
                    log.error("%s", exc)
                except Exception as exc:  # a bug or an unforeseen fault: failed, never completed
                    error = f"unexpected {type(exc).__name__}: {exc} (traceback in cryodaq.log)"
                    log.exception("unexpected failure")
                finally:
                    if store is not None:
                        store.close(end_reason=status if error is None else f"failed: {error}")
                    self._cluster_stack.close()
                    self._finish_summary(
                        status, error, clock.now() - virtual0, time.monotonic() - wall0
                    )
        return code

    def _reseed(self) -> None:
        """A resumed simulated rig is a later stretch of the same experiment: its random events
        (pulses, noise) must be new ones, not a replay of the first part's."""
        if not self.rig_spec.simulated:
            return
        path = self.run_dir / SUMMARY
        resumes = len(json.loads(path.read_text()).get("resumed", [])) if path.exists() else 0
        base = self.rig_spec.world.get("seed", 0)
        digest = hashlib.sha256(f"{base}:resume{resumes + 1}".encode()).digest()
        self.rig_spec.world["seed"] = int.from_bytes(digest[:4], "little")

    def _prepare_directory(self) -> None:
        if self.resume:
            if not (self.run_dir / PROGRESS).exists():
                raise CryodaqError(f"{self.run_dir}: not a cryodaq run directory (no {PROGRESS})")
            old = json.loads((self.run_dir / SUMMARY).read_text())
            if old.get("status") == "completed":
                raise CryodaqError(f"{self.run_dir}: the campaign completed; nothing to resume")
            self.summary = old
            return
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise CryodaqError(f"{self.run_dir}: exists and is not empty (runs never overwrite)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.run_dir / "campaign.json", self.resolved)
        self.progress.save()

    @contextlib.contextmanager
    def _logging(self) -> Iterator[None]:
        handler = logging.FileHandler(self.run_dir / "cryodaq.log")
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

    def _complete(self, step: AnyStep, sid: str) -> bool:
        if step.kind == "sweep":
            return all(
                self._complete(s, f"{sid}.{k}.{i}")
                for k in range(len(_points(step)))
                for i, s in enumerate(step.steps)
            )
        if step.kind == "repeat":
            return all(
                self._complete(s, f"{sid}.{k}.{i}")
                for k in range(step.times)
                for i, s in enumerate(step.steps)
            )
        return sid in self.progress.done

    def _steps(self, steps: Sequence[AnyStep], prefix: str, suffix: str, ctx: RunContext) -> None:
        first_open = next(
            (i for i, s in enumerate(steps) if not self._complete(s, f"{prefix}{i}")), len(steps)
        )
        for i, step in enumerate(steps):
            sid = f"{prefix}{i}"
            if step.kind in ("sweep", "repeat"):
                self._container(step, sid, suffix, ctx)
            elif sid in self.progress.done:
                # Bring the rig back to the state later steps expect; never redo measurements.
                if step.kind == "set" or (
                    step.kind == "wait_stable" and i < first_open < len(steps)
                ):
                    self._leaf(step, sid, suffix, ctx, record=False)
                elif step.kind == "tune":  # its tones, not its sweep
                    name = f"{step.name}{suffix}" if step.name else f"tune{suffix}"
                    self.display.step(sid, f"tune {name} (restoring tones)")
                    steps_impl.restore_tune(ctx, step, name)
            else:
                self._leaf(step, sid, suffix, ctx, record=True)

    def _container(self, step: AnyStep, sid: str, suffix: str, ctx: RunContext) -> None:
        if step.kind == "sweep":
            for k, point in enumerate(_points(step)):
                if not all(self._complete(s, f"{sid}.{k}.{i}") for i, s in enumerate(step.steps)):
                    self.display.step(f"{sid}.{k}", f"sweep point {k}: {point}")
                    steps_impl.apply_settings(ctx, point)
                self._steps(step.steps, f"{sid}.{k}.", f"{suffix}.{k}", ctx)
        else:
            for k in range(step.times):
                self._steps(step.steps, f"{sid}.{k}.", f"{suffix}.{k}", ctx)

    def _leaf(self, step: AnyStep, sid: str, suffix: str, ctx: RunContext, record: bool) -> None:
        label = f"{step.kind} {getattr(step, 'name', None) or ''}".strip()
        self.display.step(sid, label + (" (restoring state)" if not record else ""))
        wall0, virtual0 = time.monotonic(), ctx.clock.now()
        log.info("step %s: %s", sid, label)
        result = self._dispatch(step, sid, suffix, ctx)
        if not record:
            return
        entry = {
            "id": sid,
            "kind": step.kind,
            "name": getattr(step, "name", None),
            "virtual_time_s": ctx.clock.now() - virtual0,
            "wall_time_s": time.monotonic() - wall0,
            "result": result,
        }
        self.progress.done[sid] = entry
        self.progress.save()
        self.summary["steps"].append(entry)
        self._save_summary()

    def _dispatch(self, step: AnyStep, sid: str, suffix: str, ctx: RunContext) -> dict[str, Any]:
        kind = step.kind
        name = f"{step.name}{suffix}" if getattr(step, "name", None) else None
        if kind == "set":
            return steps_impl.run_set(ctx, step)
        if kind == "wait":
            return steps_impl.run_wait(ctx, step.duration)
        if kind == "wait_stable":
            return steps_impl.run_wait_stable(ctx, step)
        if kind == "acquire" and (
            step.boards
            or self.cluster is not None
            or self.client is not None
            or "boards" in self.progress.partial.get(sid, {})
        ):  # board tasks on the Dask cluster (one board too, given a cluster)
            return self._acquire_boards(step, sid, name, ctx)
        if kind == "acquire":
            return self._acquire(step, sid, name, ctx)
        if kind == "spectrum":
            return steps_impl.run_spectrum(ctx, step, name)
        if kind == "reflection":
            return steps_impl.run_reflection(ctx, step, name)
        if kind == "tune":
            return steps_impl.run_tune(ctx, step, name or f"tune{suffix}")
        if kind == "analyze":
            return self._analyze(step, name or f"{step.pipeline}{suffix}", ctx)
        raise StepError(f"step {sid}: unknown kind {kind!r}")

    def _with_orphans(self, name: str, part: dict[str, Any]) -> dict[str, Any]:
        """On resume: parts of acquisition `name` in the store that progress does not list
        (their writer was killed mid-step; the store sealed them at their last commit) join
        the step's parts with the live time they hold."""
        if not self.resume:
            return part
        reader = RunReader(self.run_dir / STORE)
        prefix = f"{name}{PART_SEPARATOR}"
        orphans = [
            a for a in reader.acquisitions()
            if (a == name or a.startswith(prefix) and a[len(prefix):].isdigit())
            and a not in part["parts"]
        ]
        if not orphans:
            return part
        totals = reader.summary(include_run=False)["acquisitions"]
        for acq in orphans:
            t = totals[acq]
            self.summary["acquisitions"][acq] = {
                "name": acq, "sample_rate_hz": reader.info(acq)["sample_rate_hz"],
                "records": t["records"], "records_lost_to_gaps": t["records_lost_to_gaps"],
                "gaps": t["gaps"], "gap_samples": t["gap_samples"], "drops": t["drops"],
                "end_reason": reader.info(acq).get("stop_note", "interrupted"),
                "live_time_s": t["live_time_s"],
            }  # fmt: skip
            log.warning("%s: kept %.6g s of data from before the interruption", acq,
                        t["live_time_s"])
        return {"parts": [*part["parts"], *orphans],
                "live_s": part["live_s"] + sum(totals[a]["live_time_s"] for a in orphans)}

    def _acquire(self, step: AnyStep, sid: str, name: str, ctx: RunContext) -> dict[str, Any]:
        part = self.progress.partial.get(sid, {"parts": [], "live_s": 0.0})
        part = self._with_orphans(name, part)
        store_name = (
            name if not part["parts"] else f"{name}{PART_SEPARATOR}{len(part['parts']) + 1}"
        )
        remaining = step.duration - part["live_s"]
        try:
            result = steps_impl.run_acquire(ctx, step, store_name, remaining)
        except (AcquisitionError, KeyboardInterrupt) as exc:
            # What was stored stays a part of this step; a resume adds the rest, never redoes it.
            stored = getattr(exc, "result", None)
            if stored is not None and store_name in RunReader(self.run_dir / STORE).acquisitions():
                self.progress.partial[sid] = {
                    "parts": [*part["parts"], store_name],
                    "live_s": part["live_s"] + stored.live_time_s,
                }
                self.summary["acquisitions"][store_name] = stored.as_dict()
                self.progress.save()
                self._save_summary()
            raise
        part = {
            "parts": [*part["parts"], store_name],
            "live_s": part["live_s"] + result.live_time_s,
        }
        self.summary["acquisitions"][store_name] = result.as_dict()
        if result.end_reason == "interrupted":
            self.progress.partial[sid] = part
            self.progress.save()
            self._save_summary()
            raise Interrupted
        self.progress.partial.pop(sid, None)
        return {
            "acquisition": name,
            **part,
            "records": result.records,
            "drops": result.drops,
            "end_reason": result.end_reason,
        }

    def _dask(self, boards: int) -> Any:
        """The Dask client for board tasks (a local cluster is started once, on first use)."""
        if self.client is None:
            spec = self.cluster or ClusterSpec(workers=min(boards, os.cpu_count() or 1))
            self.client = self._cluster_stack.enter_context(connect(spec))
        return self.client

    def _acquire_boards(
        self, step: AnyStep, sid: str, name: str, ctx: RunContext
    ) -> dict[str, Any]:
        """One acquisition task per board on the Dask cluster; a resumed step re-runs only the
        boards that miss stream time. A failed board fails the step after the others finished
        (their parts are kept)."""
        state = {
            b: self.progress.partial.get(sid, {}).get("boards", {}).get(b)
            or {"parts": [], "live_s": 0.0}
            for b in [step.source, *step.boards]
        }
        todo = {
            b: (len(s["parts"]) + 1, step.duration - s["live_s"])
            for b, s in state.items()
            if s["live_s"] < step.duration * (1 - 1e-9)
        }
        stop = f"cryodaq-stop-{uuid.uuid4().hex}"
        tasks = boards_impl.board_tasks(ctx, step, name, todo, stop)
        outcomes, interrupted = [], False
        if tasks:
            client = self._dask(len(tasks))
            outcomes, interrupted = boards_impl.run_tasks(client, tasks, ctx.store)
        stored = set(RunReader(self.run_dir / STORE).acquisitions())
        for out in outcomes:  # a board that stored nothing is named in the step's error only
            if out.result is not None and out.store_name in stored:
                s = state[out.board]
                s["parts"] = [*s["parts"], out.store_name]
                s["live_s"] += out.result.live_time_s
                self.summary["acquisitions"][out.store_name] = {
                    **out.result.as_dict(), "board": out.board, "error": out.error
                }
        if ctx.clock.virtual:  # the boards' stream time passed on the campaign's clock too
            ctx.clock.sleep(max((o.result.live_time_s for o in outcomes if o.result), default=0))
        failed = [o for o in outcomes if o.error]
        short = any(s["live_s"] < step.duration * (1 - 1e-9) for s in state.values())
        if failed or interrupted or short:
            self.progress.partial[sid] = {"boards": state}
            self.progress.save()
            self._save_summary()
            if failed:
                raise StepError(
                    f"acquire {name}: " + "; ".join(f"board {o.board}: {o.error}" for o in failed)
                    + " (the other boards kept their data; --resume re-runs what is missing)"
                )
            raise Interrupted
        self.progress.partial.pop(sid, None)
        return {"acquisition": name, **boards_impl.merged(state, self.summary["acquisitions"])}

    def _analyze(self, step: AnyStep, name: str, ctx: RunContext) -> dict[str, Any]:
        try:
            pipeline = get_pipeline(step.pipeline)
        except UnknownPipeline as exc:
            raise StepError(f"analyze {name}: {exc.args[0]}") from None
        outcome = pipeline(
            PipelineInput(
                self.run_dir,
                RunReader(self.run_dir / STORE),
                tuple(step.acquisitions),
                dict(step.options),
                self.run_dir / FIGURES,
            )
        )
        self.summary["analyze"][name] = outcome.results
        self.figures.extend(outcome.figures)
        return {"pipeline": step.pipeline, "figures": [str(p) for p in outcome.figures]}

    # -- summary ----------------------------------------------------------------------------------

    def _start_summary(self, rig: Rig, clock: Any) -> None:
        if self.resume:
            self.summary.setdefault("resumed", []).append(_now_iso())
            self.summary["status"] = "running"
            return
        self.summary = {
            "campaign": self.campaign.name,
            "rig": self.rig_spec.name,
            "simulated": rig.world is not None,
            "run_dir": str(self.run_dir),
            "versions": software_versions(),
            "started": _now_iso(),
            "status": "running",
            "steps": [],
            "acquisitions": {},
            "analyze": {},
            "virtual_time_s": 0.0,
            "wall_time_s": 0.0,
        }

    def _save_summary(self) -> None:
        _write_json(self.run_dir / SUMMARY, self.summary)

    def _finish_summary(self, status: str, error: str | None, virtual: float, wall: float) -> None:
        s = self.summary
        s["status"], s["error"], s["finished"] = status, error, _now_iso()
        s["virtual_time_s"] = s.get("virtual_time_s", 0.0) + virtual
        s["wall_time_s"] = s.get("wall_time_s", 0.0) + wall
        s["steps_done"] = len(self.progress.done)
        s["live_time_s"] = sum(a["live_time_s"] for a in s["acquisitions"].values())
        drops: dict[str, int] = {}
        for acq in s["acquisitions"].values():
            for sink, d in acq["drops"].items():
                drops[sink] = drops.get(sink, 0) + d["records"]
        s["drops"] = drops
        s["figures"] = sorted(
            {*s.get("figures", []), *(str(p.relative_to(self.run_dir)) for p in self.figures)}
        )
        self._save_summary()
        from cryodaq.acquisition.pipelines.report import write_report

        write_report(self.run_dir, s, [self.run_dir / f for f in s["figures"]])


def _points(step: AnyStep) -> list[dict[str, Any]]:
    """The settings of each point of a sweep: paired `over` lists, times the `grid` product."""
    over = [
        dict(zip(step.over, values, strict=True))
        for values in zip(*step.over.values(), strict=True)
    ]
    grid = [
        dict(zip(step.grid, values, strict=True))
        for values in itertools.product(*step.grid.values())
    ]
    return [{**o, **g} for o in (over or [{}]) for g in (grid or [{}])]
