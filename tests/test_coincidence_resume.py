"""`cryodaq run --resume` of an interrupted acquisition of both ADCs at once (one stream):
the resumed part acquires only the rest, on both ADCs, with the channels and their ADCs kept."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_campaign_run import _signal_mid_acquisition, campaign
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.store.reader import RunReader

DURATION_S = 20.0
BOTH_ADCS = f"""\
    name: both
    rig: RIGS/maxs30_sim.yaml
    steps:
      - set: {{adc1.channels.3-16.enabled: false, adc2.channels.2-16.enabled: false}}
      - acquire:
          name: calib
          sources: [adc1, adc2]
          duration: {DURATION_S} s
          coincidence_window: 4 us
          trigger: {{all: {{edge_threshold: 6 sigma, edge_width: 24, polarity: 0,
                            noise_every: 20 ms}}}}
    """


def test_resume_of_both_adcs_acquires_the_rest_once(tmp_path: Path) -> None:
    path = campaign(tmp_path, BOTH_ADCS)
    run_dir = tmp_path / "run"
    code, output = _signal_mid_acquisition(path, run_dir, signal.SIGINT)
    assert code == 130, output
    first = json.loads((run_dir / "summary.json").read_text())["acquisitions"]["calib"]
    assert 0 < first["live_time_s"] < DURATION_S
    resumed = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-display"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    reader = RunReader(run_dir / "store")
    assert reader.acquisitions() == ["calib", "calib-part2"]
    live = sum(reader.commit(a).processed_samples for a in reader.acquisitions()) / 500e3
    assert live == pytest.approx(DURATION_S, abs=1 / 500e3)
    for acq in reader.acquisitions():
        meta = reader.info(acq)["metadata"]
        assert reader.channels(acq) == [1, 2, 17]
        assert meta["channel_sources"] == {"1": ["adc1", 1], "2": ["adc1", 2], "17": ["adc2", 1]}
        assert meta["trigger"]["channels"]["17"]["n_sigma"] == 6.0
