"""The run report rendered from a summary: results first, escaped text, figures embedded with
their captions, problems stated plainly, the run facts (every step and result) last, folded."""

from __future__ import annotations

import re
from pathlib import Path

from report_checks import synthetic_run, synthetic_summary


def test_results_first_then_figures_problems_and_folded_facts(tmp_path: Path) -> None:
    _, page = synthetic_run(tmp_path)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "30 s of 55Fe &amp; friends" in page
    order = [page.find(s) for s in ('<table class="headline">', "<figure", "<h2>Problems",
                                    '<section class="facts"><details>')]  # fmt: skip
    assert order == sorted(order) and order[0] > 0
    headline = page[order[0]:order[1]]
    for channel in ("4.81 ± 0.32", "5.8 ± 0.4"):  # the physicist's format
        assert f"<td>{channel}</td>" in headline
    assert "mean of 2" in headline and "5.31 ± 0.26" in headline
    # figures in the pipeline's order (the step's), embedded, each with its caption
    shown = re.findall(r'<span class="name">(figures/[^<]+)</span>', page)
    assert shown == ["figures/pulses_calib_pulses.png", "figures/pulses_calib_spectrum.png"]
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 2
    assert '<figure class="wide">' in page  # the 3:1 panel row spans the page
    assert "two-exponential fit" in page and "likelihood fit" in page
    assert "None: the run completed" in page
    # the facts: every step, every result, the rig and campaign as they ran
    facts = page[order[3]:]
    assert "setpoint=20 mK" in facts and "All results of resolution" in facts
    assert "line_shape" in facts and "&quot;seed&quot;: 1" in facts
    assert not list(tmp_path.glob(".*.tmp"))


def test_problems_are_stated_plainly(tmp_path: Path) -> None:
    summary = synthetic_summary()
    channels = summary["analyze"]["resolution"]["channels"]
    channels["3"] = {"error": "only 4 pulses (need 20)"}
    channels["2"]["pulses"] = 40  # of 140 isolated: the cuts removed far more than pile-up
    acquisition = {**summary["acquisitions"]["calib"], "gaps": 2, "gap_samples": 4096,
                   "records_lost_to_gaps": 3, "end_reason": "interrupted"}
    _, page = synthetic_run(
        tmp_path, status="failed", error="adc1: timeout on :DATA? (after 5 s)",
        drops={"live": 12}, resumed=["2026-12-06T07:00:00+00:00"],
        acquisitions={"calib": acquisition},
        analyze={"resolution": {**summary["analyze"]["resolution"], "channels": channels}},
        figures=[*summary["figures"], "figures/gone.png"],
    )  # fmt: skip
    assert 'class="status failed"' in page
    header = page[: page.find("</header>")]
    assert "The run did not complete (failed): adc1: timeout on :DATA? (after 5 s)" in header
    problems = re.findall(r"<li>([^<]+)</li>", page[page.find("<h2>Problems"):])
    expected = [
        "The run did not complete: failed after 2 steps: adc1: timeout on :DATA? (after 5 s).",
        "The run was interrupted and resumed 1 time(s), at 2026-12-06T07:00:00+00:00.",
        "Sink live dropped 12 records (its queue was full).",
        "Acquisition calib: 2 gap(s) in the sample stream, 4\u2009096 samples lost, 3 records "
        "lost with them.",
        "Acquisition calib ended early: interrupted.",
        "resolution: channel 3 failed: only 4 pulses (need 20)",
        "resolution: channel 2: the cuts kept 40 of the 140 pulses isolated from pile-up "
        "(28.6 %; 151 pulse triggers in all).",
        "Figure figures/gone.png is missing from the run directory.",
    ]
    assert [p.replace("&#x27;", "'") for p in problems] == expected
    assert "problem(s): see Problems below" in header


def test_a_pipeline_without_headline_and_failed_entries_of_one_kind(tmp_path: Path) -> None:
    results = {"pixels": {n: {"error": f"only {k} clean Ka pulses of pixel {n} (need 30)"}
                          for k, n in enumerate(("A1", "B1", "C2"), start=20)}}  # fmt: skip
    _, page = synthetic_run(tmp_path, analyze={"other": results}, figures=[])
    assert "This pipeline defines no headline" in page
    assert ("other: 3 pixels failed like A1 (only 20 clean Ka pulses of pixel A1 (need 30)): "
            "A1, B1, C2") in page  # fmt: skip
    assert "<figure" not in page


def test_a_one_line_mmc_calibration_reports_no_nonlinearity() -> None:
    """With Mn Ka alone the calibration is a line through it and zero: its 'nonlinearity'
    is 0 by construction, which the headline must not show as a measured 0.00 %."""
    from cryodaq.acquisition.pipelines.mmc_headline import problems, tables

    one = {"lines": {"MnKa": {"pixels": 4}},
           "nonlinearity": {"energy_eV": 5898.853, "mean": 0.0, "mean_err": 0.0}}
    results = {"pixels": {"A1": {"fwhm_eV": 7.0}}, "calibration_lines": one}
    rows = dict(row for table in tables(results) for row in table.rows if len(row) == 2)
    assert rows["nonlinearity"] == "not measured: one calibration line"
    assert any("found only MnKa" in p for p in problems(results))
    two = {**one, "lines": {"MnKa": {}, "NpLa1": {}},
           "nonlinearity": {"energy_eV": 13946.0, "mean": 0.004, "mean_err": 0.0003}}
    rows = dict(row for table in tables({**results, "calibration_lines": two})
                for row in table.rows if len(row) == 2)  # fmt: skip
    assert rows["nonlinearity at 13\u2009946 eV"] == "0.400 ± 0.030 %"


def test_each_pipeline_states_its_problems_past_their_thresholds_only() -> None:
    """Every headline's problem, fired just past its threshold and silent just short of it:
    a renamed result key or a wrong comparison would leave a problem never reported."""
    from cryodaq.acquisition.pipelines import (
        haloscope_headline,
        ho163_headline,
        holmes_headline,
        mmc_headline,
        pulses_headline,
        yfactor_headline,
    )

    def fired(module: object, bad: dict, good: dict, text: str) -> None:
        assert any(text in p for p in module.problems(bad)), (text, module.problems(bad))
        assert not module.problems(good), module.problems(good)

    dof = 200  # chi2 is 5 sigma (sqrt(2 dof) = 20) above its dof at 300
    fired(haloscope_headline, {"fit": {"chi2": 310.0, "dof": dof}},
          {"fit": {"chi2": 290.0, "dof": dof}}, "Eq 9 does not describe")
    fired(haloscope_headline, {"fit": {"A1": 1.05, "A1_err": 0.02}},
          {"fit": {"A1": 1.03, "A1_err": 0.02}}, "A1 = 1.050 ± 0.020 exceeds 1")
    fired(haloscope_headline, {"ripple": {"drift_percent": -1.2}},
          {"ripple": {"drift_percent": 0.9}}, "drifted by −1.20 %")
    fired(yfactor_headline, {"yfactor": {"y": 0.98, "y_err": 0.01}},
          {"yfactor": {"y": 1.02, "y_err": 0.01}}, "Y factor is 0.980 ± 0.010")
    fired(ho163_headline, {"pileup": {"ratio_to_a_tau_R": 5.5}},
          {"pileup": {"ratio_to_a_tau_R": 4.5}}, "5.5 times A τ_R")
    slew = {"max_slew_phi0_per_us": 0.31, "slew_limit_phi0_per_us": 0.3}
    fired(holmes_headline, {"channels": {"2": slew}},
          {"channels": {"2": {**slew, "max_slew_phi0_per_us": 0.29}}}, "detector 2: the pulse "
          "slews at 0.310 Φ₀/µs, above the flux ramp's limit of 0.300")  # fmt: skip
    fired(holmes_headline, {"resonator_collisions": [[1, 2]]}, {"resonator_collisions": []},
          "1 resonator pairs are closer")
    ellipse = 3 * mmc_headline.ELLIPSE_EXPECTED
    fired(mmc_headline, {"cuts": {"calibration_ellipse_rejected_fraction": ellipse * 1.1}},
          {"cuts": {"calibration_ellipse_rejected_fraction": ellipse * 0.9}},
          "ellipse cut removed 3.30 %")
    kept = {"pulse_triggers": 300, "isolated_pulses": 200}  # the cuts after isolation: 70 %
    fired(pulses_headline, {"channels": {"4": {**kept, "pulses": 139}}},
          {"channels": {"4": {**kept, "pulses": 141}}}, "channel 4: the cuts kept 139 of the 200")
    fired(mmc_headline, {"cuts": {"unshielded": {"burst": {"live_time_fraction_lost": 0.11}}}},
          {"cuts": {"unshielded": {"burst": {"live_time_fraction_lost": 0.09}}}},
          "background unshielded: the burst cut dropped 11.0 %")


def test_a_haloscope_parameter_without_an_error_is_not_called_fixed() -> None:
    """Losses fixed to their specs carry no error entry; a fitted one whose error came out
    non-finite (null in summary.json) is fitted all the same and must not read as fixed."""
    from cryodaq.acquisition.pipelines.haloscope_headline import tables

    results = {"fit": {"A1": 0.951, "A1_err": None, "A2": 0.9412, "A2_err": 0.0031},
               "fixed_loss_fit": {"A1": 0.96}}  # fmt: skip
    rows = {row[0]: row[1:] for row in tables(results)[0].rows}
    assert rows["transmission A1"] == ("0.951 (no error)", "–", "0.960 (fixed)")
    assert rows["transmission A2"][0] == "0.9412 ± 0.0031"


def test_holmes_detectors_in_numeric_order_and_any_name_accepted() -> None:
    from cryodaq.acquisition.pipelines.holmes_headline import tables

    channels = {k: {"design": "a", "fwhm_eV": 5.0} for k in ("10", "x", "2")}
    rows = tables({"channels": channels})[0].rows
    assert [r[1] for r in rows] == ["2", "10", "x"]
