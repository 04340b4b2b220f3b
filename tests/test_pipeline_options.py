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
