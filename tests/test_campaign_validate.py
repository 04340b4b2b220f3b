"""`cryodaq validate` and `load_campaign`: every problem of a campaign in one pass, each at its
FILE:LINE:COL, with `--set` overrides reaching the rig, and no instrument touched.

Each file in `campaigns_broken/` lists the lines it must yield as `# expect: LINE:COL key: msg`
comments (or `# expect: OTHER_FILE:LINE:COL ...` for a problem inside another file), in order;
a problem line must start with its expectation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryodaq.acquisition.campaign.validate import CampaignInvalid, load_campaign
from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.pipelines import PIPELINES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = sorted((ROOT / "config" / "campaigns").glob("*.yaml"))
VALID = sorted((HERE / "campaigns").glob("*.yaml"))
BROKEN = sorted((HERE / "campaigns_broken").glob("*.yaml"))
HOLMES = HERE / "campaigns" / "holmes_tune.yaml"


def problems_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(CampaignInvalid) as caught:
        load_campaign(path, overrides)
    lines = [str(p) for p in caught.value.problems]
    assert str(caught.value) == "\n".join(lines)
    return lines


def expected_lines(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            where, _, rest = line.removeprefix("# expect: ").partition(" ")
            if not where[0].isdigit():  # OTHER_FILE:LINE:COL, relative to this file
                name, line_no, col = where.rsplit(":", 2)
                where = f"{os.path.normpath(path.parent / name)}:{line_no}:{col}"
            else:
                where = f"{path}:{where}"
            out.append(f"{where} {rest}")
    return out


@pytest.mark.parametrize("path", EXAMPLES + VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_example_campaigns_validate(path: Path) -> None:
    loaded = load_campaign(path)
    assert loaded.campaign.steps and loaded.rig.instruments
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: OK (campaign {loaded.campaign.name!r}")


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_campaigns_report_each_problem_at_its_line(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PIPELINES, "pulses", "cryodaq.acquisition.pipelines.pulses:run")
    expected = expected_lines(path)
    assert expected, f"{path.name} has no '# expect:' lines"
    got = problems_of(path)
    assert len(got) == len(expected), "\n".join(got)
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want), f"\n got: {line}\nwant: {want}"


def test_cli_lists_every_problem_and_exits_1() -> None:
    path = HERE / "campaigns_broken" / "references.yaml"
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 12 and lines[-1] == f"{path}: 11 problems"
    for got, want in zip(lines[:-1], expected_lines(path), strict=True):
        assert got.startswith(want)
    steps = {line.split()[1].split(".")[1] for line in lines[:-1]}
    assert steps == {str(i) for i in range(10)}  # one pass reached every step


def test_cli_exits_2_for_a_file_it_cannot_read(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: cannot read" in result.output and "Traceback" not in result.output


def test_set_reaches_rig_keys_and_steps() -> None:
    loaded = load_campaign(
        HOLMES,
        [
            "rig.world.seed=7",
            "rig.instruments.roach.settings.ramp_amplitude=1",
            "steps.2.sweep.steps.0.acquire.duration=5s",
            "steps.0.set.roach.ramp_frequency=300 kHz",  # a dotted key of a set step
            "steps.0.set.tc.outputs.0.setpoint=30 mK",  # a new one
        ],
    )
    assert loaded.rig.world["seed"] == 7 and loaded.raw["rig"]["world"]["seed"] == 7
    assert loaded.rig.instruments["roach"].settings["ramp_amplitude"] == 1
    assert loaded.campaign.steps[2].steps[0].duration == 5.0
    assert loaded.campaign.steps[0].settings == {
        "roach.ramp_frequency": "300 kHz",
        "tc.outputs.0.setpoint": "30 mK",
    }
    assert load_campaign(HOLMES).rig.world["seed"] == 1  # the rig file is untouched


def test_problems_caused_by_an_override_are_reported_at_the_override() -> None:
    got = problems_of(
        HOLMES,
        (
            "rig.instruments.roach.settings.ramp_frequency=5 MHz",
            "steps.1.tune.channels=many",
            "rig.wrld.seed=7",
            "steps.9.wait=1 s",
            "seed",
        ),
    )
    assert got == [
        "<--set rig.instruments.roach.settings.ramp_frequency=5 MHz>:1:47 "
        "rig.instruments.roach.settings.ramp_frequency: "
        "5e+06 Hz is outside the allowed range 10000 Hz .. 2e+06 Hz",
        "<--set steps.1.tune.channels=many>:1:23 steps.1.tune.channels: "
        "Input should be a valid integer, unable to parse string as an integer, got 'many'",
        "<--set rig.wrld.seed=7>:1:5 rig.wrld.seed: rig has no key 'wrld' "
        "(did you mean 'world'?); keys: name, world, instruments",
        "<--set steps.9.wait=1 s>:1:7 steps.9.wait: steps is a list of 4; no item '9'",
        "<--set seed>:1:1 seed: expected dotted.path=value, e.g. rig.world.seed=7",
    ]
    result = CliRunner().invoke(app, ["validate", str(HOLMES), "--set", "rig.world={seed: 1"])
    assert result.exit_code == 1
    assert result.output.startswith("<--set rig.world={seed: 1>:1:") and "invalid YAML" in (
        result.output
    )


def test_an_overridden_rig_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        textwrap.dedent("""\
        name: moved
        rig: not_here.yaml
        steps: [{tune: {instrument: roach, channels: 20}}]
        """)
    )
    got = problems_of(campaign)
    assert got == [f"{campaign}:2:6 rig: cannot read rig file '{tmp_path / 'not_here.yaml'}': "
                   "No such file or directory"]
    monkeypatch.chdir(ROOT)
    loaded = load_campaign(campaign, ["rig=config/rigs/holmes_sim.yaml", "rig.world.seed=3"])
    assert loaded.rig.name == "holmes_sim" and loaded.rig.world["seed"] == 3


def test_validation_opens_no_instrument_and_builds_no_world(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation touched an instrument")

    monkeypatch.setattr("pyvisa.ResourceManager.__init__", forbidden)
    monkeypatch.setattr("cryodaq.drivers.base.Instrument.open", forbidden)
    monkeypatch.setattr("cryodaq.sim_instruments.world.World.__init__", forbidden)
    monkeypatch.setattr("cryodaq.acquisition.rig.Rig.__init__", forbidden)
    # An unreachable address on a real backend (py) validates: nothing is opened.
    loaded = load_campaign(HERE / "campaigns" / "inline_rig.yaml")
    assert loaded.rig.instruments["adc"].backend == "py"
    assert load_campaign(HOLMES).rig.name == "holmes_sim"


def test_loaded_campaign_is_frozen_and_its_raw_form_reloads_as_json(tmp_path: Path) -> None:
    loaded = load_campaign(HOLMES, ["rig.world.seed=5"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.campaign = None  # type: ignore[misc]
    assert isinstance(loaded.raw["rig"], dict) and loaded.rig_raw == loaded.raw["rig"]
    saved = tmp_path / "campaign.json"
    saved.write_text(json.dumps(loaded.raw))
    again = load_campaign(saved)
    assert again.campaign == loaded.campaign and again.raw == loaded.raw
    assert again.rig.world == loaded.rig.world  # floats such as 1e-05 stay floats
