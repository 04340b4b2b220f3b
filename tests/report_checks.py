"""What every example campaign's report must show, checked on a stored run of it: the
pipeline's headline tables before the first figure, naming the pipeline's headline quantities
(in a column head or a row's first cell) and holding the run's own numbers in the physicist's
format (`report_numbers`), each the whole text of a cell; every figure embedded, in the
pipeline's order, with a caption; nothing linked outside the page; the problems and then
the folded run facts last. Used by the tests that run the campaigns (tests/test_quickstart.py,
test_ho163_campaign.py, test_haloscope_pipeline.py, test_report_campaigns.py). Also a
synthetic run's report, for the tests of the renderer itself."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

from cryodaq.acquisition.pipelines.report import write_report
from cryodaq.acquisition.pipelines.report_numbers import DASH, fmt, fmt_asymmetric


def _ok(entries: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in entries.values() if "error" not in e]


#: campaign -> (result name, pipeline, headline labels, the run's headline numbers as the
#: report must print them).
Expect = tuple[str, str, tuple[str, ...], Callable[[dict[str, Any]], list[str]]]
EXPECT: dict[str, Expect] = {
    "quickstart": (
        "resolution", "pulses",
        ("line FWHM (eV)", "baseline FWHM (eV)", "filter prediction (eV)", "rate (Hz)",
         "counts in line"),
        lambda r: [fmt(c["fwhm_eV"], c["fwhm_err_eV"]) for c in _ok(r["channels"])],
    ),
    "maxs30_calibration": (
        "calibration", "mmc",
        ("mean Kα FWHM", "Kα FWHM (eV)", "baseline FWHM (eV)", "trigger efficiency E50",
         "ellipse cut"),
        lambda r: [fmt(r["mean_fwhm_eV"], r["mean_fwhm_err_eV"], "eV")],
    ),
    "maxs30_background": (
        "background", "mmc",
        ("mean Kα FWHM", "rate (/keV/cm²/s)", "burst cut removed", "coincidence cut removed",
         "ellipse cut removed"),
        lambda r: [fmt(g["rate_per_keV_cm2_s"], g["rate_err"])
                   for g in r["background_groups"].values()],
    ),
    "holmes_characterisation": (
        "characterisation", "holmes",
        ("design", "line FWHM (eV)", "noise FWHM (eV)", "τ rise (µs)", "τ slow (µs)",
         "time resolution (µs)", "pile-up fraction", "channel budget"),
        lambda r: [fmt(c["noise_fwhm_eV"], c["noise_fwhm_err_eV"]) for c in _ok(r["channels"])],
    ),
    "holmes_ho163": (
        "ho163", "ho163",
        ("end point Q", "m_ν²", "unresolved pile-up fraction", "activity (Bq)",
         "FWHM at Q (eV)"),
        lambda r: [fmt(r["q_eV"], r["q_err_eV"], "eV"),
                   fmt_asymmetric(r["m_nu_sq_eV2"], r["m_nu_sq_err_low_eV2"],
                                  r["m_nu_sq_err_high_eV2"], "eV²")],
    ),
    "haloscope_cavity_calibration": (
        "haloscope", "haloscope",
        ("gain G′ (dB)", "added noise T_a′ (K)", "transmission A1", "transmission A_cir",
         "transmission A2", "χ² / dof", "gain ripple r(f) rms"),
        lambda r: [fmt(r["fit"][k], r["fit"][f"{k}_err"])
                   for k in ("gain_dB", "added_noise_K", "A1", "A_cir", "A2")],
    ),
    "haloscope_yfactor": (
        "yfactor", "yfactor",
        ("Y factor", "system noise temperature", "gain"),
        lambda r: [fmt(r["yfactor"]["system_noise_K"], r["yfactor"]["system_noise_K_err"], "K")],
    ),
}  # fmt: skip


def _text(html: str) -> str:
    """The page's text (tags dropped, the escaped characters resolved)."""
    return unescape(re.sub(r"<[^>]+>", " ", html))


def check_report(run_dir: Path, campaign: str) -> None:
    """Assert that `run_dir`'s report.html reads as `campaign`'s report must (module doc)."""
    result, pipeline, labels, numbers = EXPECT[campaign]
    summary = json.loads((run_dir / "summary.json").read_text())
    page = (run_dir / "report.html").read_text()
    first_figure, problems = page.find("<figure"), page.find("<h2>Problems")
    headline = page.find('<table class="headline">')
    assert 0 < headline < problems and (first_figure == -1 or headline < first_figure), campaign
    # labels and numbers are looked for in this analysis' headline tables only (not in the
    # header, the campaign's description, a caption or another analysis): labels in a column
    # head or a row's first cell, each number as the whole text of one cell
    own = re.search(rf'<section class="results"><h2>{re.escape(result)} .*?</section>', page, re.S)
    assert own and (first_figure == -1 or own.end() < first_figure), (campaign, result)
    assert f"{pipeline} pipeline" in _text(own[0])
    tables = "".join(re.findall(r'<table class="headline">.*?</table>', own[0], re.S))
    heads = [_text(h).strip() for pair in re.findall(r"<th>(.*?)</th>|<tr><td>(.*?)</td>", tables)
             for h in pair if h]  # fmt: skip
    cells = {_text(c).strip() for c in re.findall(r"<td>(.*?)</td>", tables)}
    for label in labels:
        assert any(label in h for h in heads), (campaign, label, heads)
    for number in numbers(summary["analyze"][result]):
        assert number != DASH and number in cells, (campaign, number)
    assert problems < page.find('<section class="facts"><details>')
    step = next(s for s in summary["steps"] if s["kind"] == "analyze")
    order = [Path(f).name for f in step["result"]["figures"]]
    shown = re.findall(r'<span class="name">figures/([^<]+)</span>', page)
    assert shown == order and len(order) == len(summary["figures"]), campaign
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(order)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(script|link)\b|https?://|@import|url\(", page), campaign
    captions = re.findall(r"<figcaption>([^<]*)<span", page)
    assert len(captions) == len(order) and all(len(c.strip()) > 20 for c in captions), captions


def png(path: Path, width: int, height: int) -> None:
    """A blank grey PNG of `width` x `height` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b""))  # fmt: skip


def _channel(fwhm: float, err: float) -> dict[str, Any]:
    return {"fwhm_eV": fwhm, "fwhm_err_eV": err, "baseline_fwhm_eV": 4.9,
            "baseline_fwhm_err_eV": 0.21, "predicted_fwhm_eV": 5.0, "rise_s": 1e-5,
            "decay_s": 3e-3, "rate_hz": 5.0, "rate_err_hz": 0.4, "counts": 117,
            "pulses": 131, "isolated_pulses": 140, "pulse_triggers": 151}  # fmt: skip


def synthetic_summary(**changes: Any) -> dict[str, Any]:
    """A completed quickstart-like run's summary (two channels, a set and an analyze step,
    two figures), with `changes` applied."""
    figures = ["figures/pulses_calib_spectrum.png", "figures/pulses_calib_pulses.png"]
    summary = {
        "campaign": "<script>alert(1)</script>", "rig": "mmc_simple_sim", "simulated": True,
        "run_dir": "/runs/x", "versions": {"cryodaq": "0.1.0"}, "status": "completed",
        "error": None, "started": "2026-12-06T06:35:27+00:00",
        "finished": "2026-12-06T06:35:39+00:00", "live_time_s": 30.0, "virtual_time_s": 180.0,
        "wall_time_s": 12.1, "resumed": [], "steps_done": 2, "drops": {},
        "steps": [
            {"id": "0", "kind": "set", "name": None, "virtual_time_s": 0.0,
             "wall_time_s": 0.001, "result": {"set": {"tc.outputs.0.setpoint": "20 mK"}}},
            {"id": "1", "kind": "analyze", "name": "resolution", "virtual_time_s": 0.0,
             "wall_time_s": 3.6, "result": {"pipeline": "pulses", "figures": [
                 f"/elsewhere/{f}" for f in reversed(figures)]}},
        ],
        "acquisitions": {"calib": {"source": "adc1", "channels": [1, 2], "live_time_s": 30.0,
                                   "records": 300, "gaps": 0, "drops": {},
                                   "end_reason": "completed"}},
        "analyze": {"resolution": {
            "acquisitions": ["calib"], "line_eV": 5898.75, "line_shape": "gaussian",
            "channels": {"1": _channel(4.81, 0.316), "2": _channel(5.78, 0.418)},
            "mean": {**_channel(5.31, 0.26), "channels": 2},
        }},
        "figures": figures,
    }  # fmt: skip
    return {**summary, **changes}


def synthetic_run(tmp_path: Path, **changes: Any) -> tuple[dict[str, Any], str]:
    """A report written in `tmp_path` from `synthetic_summary(**changes)`, two figures and a
    campaign snapshot: the summary and the page."""
    summary = synthetic_summary(**changes)
    png(tmp_path / "figures" / "pulses_calib_spectrum.png", 30, 10)
    png(tmp_path / "figures" / "pulses_calib_pulses.png", 8, 6)
    campaign = {"name": "quickstart", "description": "30 s of 55Fe & friends",
                "rig": {"name": "mmc_simple_sim", "world": {"seed": 1}}, "steps": []}
    page = write_report(tmp_path, summary, campaign).read_text()
    return summary, page
