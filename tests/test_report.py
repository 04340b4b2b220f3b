"""The HTML report: tables from any summary, escaped text, figures by relative path."""

from __future__ import annotations

import re
from pathlib import Path

from cryodaq.acquisition.pipelines.report import write_report


def test_report_tables_escaping_and_relative_figures(tmp_path: Path) -> None:
    figs = tmp_path / "figures"
    figs.mkdir()
    png = figs / "pulses_calib_spectrum.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    summary = {
        "campaign": "<script>alert(1)</script>",
        "live_time_s": 30.0,
        "steps": [
            {"id": "0", "kind": "set", "result": {"set": {"tc.outputs.0.setpoint": "20 mK"}}},
            {"id": "1", "kind": "acquire", "result": {"records": 2400, "drops": {}}},
        ],
        "analyze": {
            "resolution": {
                "line_eV": 5898.75,
                "channels": {"1": {"fwhm_eV": 4.1234567, "a&b": None}, "2": {"error": "x < y"}},
            }
        },
    }
    report = write_report(tmp_path, summary, [png])
    text = report.read_text()
    assert report == tmp_path / "report.html"
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "x &lt; y" in text and "a&amp;b" in text
    assert 'src="figures/pulses_calib_spectrum.png"' in text
    # One table row per step and per channel; small nested results fit in a cell.
    steps = text.split("<h3>steps</h3>")[1].split("</table>")[0]
    assert len(re.findall(r"<tr><td", steps)) == 2
    assert "setpoint=20 mK" in steps and "drops=&ndash;" in steps
    channels = text.split("<h5>channels</h5>")[1].split("</table>")[0]
    assert len(re.findall(r"<tr><td", channels)) == 2 and "4.12346" in channels
    assert "5898.75" in text
    assert not list(tmp_path.glob(".*.tmp"))
