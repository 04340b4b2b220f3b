"""Every pipeline's options live in a light `<module>_options` module: the pipeline uses the
same check `cryodaq validate` calls, and importing it pulls in no analysis or plotting."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from cryodaq.acquisition.pipelines import PIPELINES, PipelineError, pipeline_options
from cryodaq.acquisition.pipelines.mmc_options import CALIBRATION_SOURCES
from cryodaq.acquisition.pipelines.pulses_options import LINE_SHAPES
from cryodaq.analysis.calibration_sources import SOURCES
from cryodaq.analysis.xray_lines import LINE_SHAPES as SHAPES


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_the_pipeline_checks_its_options_with_the_light_module(name: str) -> None:
    check = pipeline_options(name)
    module = importlib.import_module(PIPELINES[name].partition(":")[0])
    assert module.options is check  # one check, used by the run and by validate
    defaults = importlib.import_module(check.__module__).DEFAULTS
    assert check(None) == check({}) and set(check(None)) == set(defaults)
    with pytest.raises(PipelineError, match=f"{name}: unknown option"):
        check({"no_such_option": 1})


def test_options_import_no_analysis() -> None:
    code = (
        "import sys\n"
        "from cryodaq.acquisition.pipelines import PIPELINES, pipeline_options\n"
        "for name in PIPELINES: pipeline_options(name)\n"
        "heavy = ('matplotlib', 'scipy.signal', 'scipy.optimize', 'numba', 'xraydb')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_mmc_knows_the_calibration_sources_the_analysis_has() -> None:
    assert tuple(SOURCES) == CALIBRATION_SOURCES


def test_pulses_knows_the_line_shapes_the_analysis_has() -> None:
    assert tuple(SHAPES) == LINE_SHAPES


@pytest.mark.parametrize(("name", "given", "line"), [
    ("holmes", {"lines": 5}, "holmes: option lines must be a list, got 5"),
    ("ho163", {"lines": "MnKa"}, "ho163: option lines must be a list, got 'MnKa'"),
    ("mmc", {"wiring": [1]}, "mmc: option wiring must be a mapping, got [1]"),
    ("mmc", {"layout": 5}, "mmc: option layout must be a mapping, got 5"),
    ("holmes", {"tes": "sheet"}, "holmes: option tes must be a mapping, got 'sheet'"),
    ("pulses", {"background": "yes"}, "pulses: option background must be true or false, got 'yes'"),
    ("pulses", {"line_eV": None}, "pulses: option line_eV must be a number, got None"),
    ("ho163", {"isolation_s": None}, "ho163: option isolation_s must be a number, got None"),
])  # fmt: skip
def test_an_option_of_the_wrong_kind_is_one_line(name: str, given: dict, line: str) -> None:
    """Checked against the kind of each option's default, before any analysis touches it (a
    list given as a number was a TypeError from deep inside the pipeline)."""
    with pytest.raises(PipelineError) as err:
        pipeline_options(name)(given)
    assert str(err.value) == line


@pytest.mark.parametrize(("name", "given"), [
    ("pulses", {"learn_records": None, "bin_eV": None}),
    ("holmes", {"artefact_hz": None, "designs": {1: "a"}}),
    ("haloscope", {"yfactor": None}),
    ("mmc", {"sources": "fe55"}),
])  # fmt: skip
def test_the_nulls_and_shorthands_that_mean_something_stay_allowed(name: str, given: dict) -> None:
    pipeline_options(name)(given)


@pytest.mark.parametrize(("name", "given", "line"), [
    ("pulses", {"channels": "3"}, "pulses: option channels must be a channel number or a list "
     "of them, got '3'"),
    ("holmes", {"channels": [1, "a"]}, "holmes: option channels must be a channel number or a "
     "list of them, got [1, 'a']"),
    ("pulses", {"bin_eV": "fine"}, "pulses: option bin_eV must be a number, got 'fine'"),
    ("ho163", {"activity_Bq": "300 Bq"}, "ho163: option activity_Bq must be a number, got "
     "'300 Bq'"),
])  # fmt: skip
def test_channels_and_null_default_numbers_are_checked(name: str, given: dict, line: str) -> None:
    """`channels: 3` passed validate and then failed the analysis with a traceback."""
    with pytest.raises(PipelineError) as err:
        pipeline_options(name)(given)
    assert str(err.value) == line


@pytest.mark.parametrize("name", ["pulses", "holmes", "ho163", "mmc"])
def test_one_channel_and_a_float_learn_records_are_normalised(name: str) -> None:
    """`learn_records: 2e4` was kept a float (holmes slices with it); one channel is a list."""
    opts = pipeline_options(name)({"channels": 3, "learn_records": 2e4})
    assert opts["channels"] == [3]
    assert opts["learn_records"] == 20000 and isinstance(opts["learn_records"], int)
