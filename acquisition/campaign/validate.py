"""Load and check a campaign in one pass: every problem, each at its file:line:col.

`load_campaign` reads the campaign, applies `--set` overrides, loads its rig (a file relative
to the campaign, or inline), checks the rig, the schema and the steps against the rig, and
raises `CampaignInvalid` with every problem, or returns a `LoadedCampaign`. It builds no World
and opens no instrument. Each problem prints as `FILE:LINE:COL key.path: message`, where FILE
is the campaign, the rig file, or `<--set dotted.path=value>` for an override's value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cryodaq.acquisition.campaign.checks import StepChecker
from cryodaq.acquisition.campaign.overrides import Override, apply_override, parse_override
from cryodaq.acquisition.campaign.schema import Campaign
from cryodaq.acquisition.campaign.schema_errors import schema_problems
from cryodaq.acquisition.campaign.state import (
    BoardBudget,
    CampaignState,
    power_on,
    world_problem_key,
)
from cryodaq.acquisition.errors import ConfigError, CryodaqError
from cryodaq.acquisition.rig import RigSpec, check_rig, planned_settings
from cryodaq.acquisition.yaml_loader import Unreadable
from cryodaq.acquisition.yaml_source import YamlDocument, load_yaml
from cryodaq.drivers.umux import UmuxBoard


class CampaignInvalid(CryodaqError):
    """A campaign, its rig or an override is wrong; `problems` has every one, in file order."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class CampaignUnreadable(CampaignInvalid):
    """The campaign file itself cannot be read."""


@dataclass(frozen=True)
class LoadedCampaign:
    """A valid campaign, its rig (overrides applied) and the resolved mappings to save."""

    path: Path
    campaign: Campaign
    rig: RigSpec
    #: The campaign after overrides, rig included as a mapping; JSON-serialisable.
    raw: dict[str, Any]
    rig_raw: dict[str, Any]


def load_campaign(path: Path, overrides: Sequence[str] = ()) -> LoadedCampaign:
    """Read, override and check a campaign; raise `CampaignInvalid` listing every problem."""
    path = Path(path)
    problems: list[ConfigError] = []
    try:
        doc = load_yaml(path)
    except Unreadable as exc:
        raise CampaignUnreadable([exc]) from None
    except ConfigError as exc:
        raise CampaignInvalid([exc]) from None
    parsed: list[Override] = []
    for arg in overrides:
        try:
            parsed.append(parse_override(arg))
        except ConfigError as exc:
            problems.append(exc)
    if not isinstance(doc.data, dict):
        problems.append(doc.error((), "a campaign is a mapping with name, rig and steps"))
        raise CampaignInvalid(problems)
    rig_first = [o for o in parsed if o.parts == ("rig",)]
    _override(doc, rig_first, problems)
    _load_rig_file(doc, problems)
    _override(doc, [o for o in parsed if o.parts != ("rig",)], problems)
    rig = _check(doc, problems)
    if problems:
        order = [str(path), str(doc.sources.get(("rig",), path))]
        raise CampaignInvalid(_in_file_order(problems, order + [f"<--set {a}>" for a in overrides]))
    if rig is None:  # pragma: no cover - every way to lose the rig is reported above
        raise CampaignInvalid([doc.error(("rig",), "no rig")])
    # The model is made from the JSON form, so a run resumed from its saved campaign.json
    # sees the same campaign (YAML's integer keys become strings, dates ISO strings).
    raw = json.loads(json.dumps(doc.data, default=str))
    raw["rig"] = {"name": rig.name, **raw["rig"]}  # keep a file rig's name when saved inline
    try:
        campaign = Campaign.model_validate(raw)
    except ValidationError as exc:  # pragma: no cover - the schema pass reported it
        raise CampaignInvalid([ConfigError(str(path), "", str(exc))]) from None
    return LoadedCampaign(path, campaign, rig, raw, raw["rig"])


def _override(doc: YamlDocument, overrides: list[Override], problems: list[ConfigError]) -> None:
    for override in overrides:
        if override.parts[:1] == ("rig",) and len(override.parts) > 1 and not isinstance(
            doc.data.get("rig"), dict
        ):
            continue  # the rig did not load; that is reported where it is named
        try:
            apply_override(doc, override)
        except ConfigError as exc:
            problems.append(exc)


def _load_rig_file(doc: YamlDocument, problems: list[ConfigError]) -> None:
    """Replace a rig path by the rig file's contents (with their own positions). A path is
    relative to the campaign file, or to the working directory when it came from `--set`."""
    ref = doc.data.get("rig")
    if not isinstance(ref, str):
        return  # inline, or a schema problem
    from_set = doc.sources.get(("rig",), "").startswith("<--set")
    rig_path = Path(os.path.normpath(Path(ref) if from_set else doc.path.parent / ref))
    try:
        rig_doc = load_yaml(rig_path)
    except ConfigError as exc:
        if exc.where == str(rig_path):  # unreadable, not a syntax error inside it
            exc = doc.error(("rig",), f"cannot read rig file {str(rig_path)!r}: "
                            f"{exc.message.removeprefix('cannot read: ')}")
        problems.append(exc)
        return
    if not isinstance(rig_doc.data, dict):
        kind = type(rig_doc.data).__name__
        problems.append(ConfigError(rig_doc.where(()), "rig", "a rig file holds a mapping with "
                                    f"name, world and instruments, not {kind}"))
        return
    doc.graft(("rig",), rig_doc)


def _check(doc: YamlDocument, problems: list[ConfigError]) -> RigSpec | None:
    """Check the rig, the schema and the steps; returns the rig spec if the rig parsed."""
    rig: RigSpec | None = None
    state: CampaignState | None = None
    declared: list[str] = []
    if isinstance(doc.data.get("rig"), dict):
        rig_doc = doc.subdocument(("rig",))
        rig, rig_problems = check_rig(rig_doc, _rig_name(doc))
        problems += rig_problems
        instruments = rig_doc.data.get("instruments")
        declared = [str(k) for k in instruments] if isinstance(instruments, dict) else []
        state = _initial_state(rig_doc, rig, problems)
    problems += schema_problems(doc)
    StepChecker(doc, state, declared, problems).check(doc.data.get("steps"))
    return rig


def _rig_name(doc: YamlDocument) -> str:
    source = doc.sources.get(("rig",))
    return Path(source).stem if source and not source.startswith("<") else doc.path.stem


def _initial_state(rig_doc: YamlDocument, rig: RigSpec, problems: list[ConfigError]
                   ) -> CampaignState:
    """Settings after the rig opens: power-on values, then the rig's own, in file order."""
    budget = None
    if any(issubclass(s.driver, UmuxBoard) for s in rig.instruments.values()):
        try:
            budget = BoardBudget.from_world(rig.world)
        except ValueError as exc:
            key = world_problem_key(str(exc))
            problems.append(rig_doc.error(("world", "resonators", *([key] if key else [])),
                                          str(exc)))
    state = CampaignState(rig, budget)
    for spec in rig.instruments.values():
        state.values.update(power_on(spec))
        for path, ch, setting, value in planned_settings(rig_doc, spec, problems=[]):
            refusal = state.apply(spec.name, ch, setting, value)
            if refusal is not None:
                problems.append(rig_doc.error(path, f"{spec.name} refuses this: {refusal}"))
    return state


def _in_file_order(problems: list[ConfigError], files_first: list[str]) -> list[ConfigError]:
    """One problem per place, sorted by file (`files_first` first, in that order), line and
    column."""
    files = {name: i for i, name in reversed(list(enumerate(files_first)))}
    seen: set[tuple[str, str]] = set()
    keyed = []
    for problem in problems:
        if (problem.where, problem.key) in seen:
            continue
        seen.add((problem.where, problem.key))
        name, line, col = problem.where, 0, 0
        head, _, tail = problem.where.rpartition(":")
        head2, _, mid = head.rpartition(":")
        if tail.isdigit() and mid.isdigit():
            name, line, col = head2, int(mid), int(tail)
        files.setdefault(name, len(files))
        keyed.append(((files[name], line, col), problem))
    return [p for _, p in sorted(keyed, key=lambda kp: kp[0])]
