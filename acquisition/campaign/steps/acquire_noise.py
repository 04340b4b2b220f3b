"""Trigger thresholds in units of the measured noise (`edge_threshold: 5 sigma`).

Before such an acquisition the step reads `noise_s` of the stream (started and stopped again,
nothing stored) and measures, per channel, `sigma`: the rms of the edge kernel the trigger
compares with its threshold: the rms of the kernel d_w of the channel's `edge_width` (sum of
the last w samples minus the sum of the w before) on the channel's noise, estimated as
1.4826 x the median absolute deviation of d_w[i] - d_w[i - 4w], over sqrt(2)
(`cryodaq.analysis.trigger_efficiency.kernel_sigma`: pulses in the stretch, their rises and
their tails, do not move it). The threshold is then `N x sigma` in data units; both are
stored with the acquisition. A channel without noise (a clipped or dead input) gets no edge
trigger (a warning says so); its noise records are still taken.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.stream.sources import BlockSource
from cryodaq.acquisition.stream.trigger import TriggerConfig
from cryodaq.analysis.trigger_efficiency import kernel_sigma

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.steps.acquire import TriggerSpec

log = logging.getLogger(__name__)
SIGMA = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*sigma\s*$")


def sigma_multiple(value: Any) -> float | None:
    """N of a level written `N sigma` (N > 0), else None."""
    m = SIGMA.match(value) if isinstance(value, str) else None
    return float(m.group(1)) if m and float(m.group(1)) > 0 else None


def read_stretch(source: BlockSource, samples: int) -> np.ndarray:
    """The first `samples` samples (channels x samples) of `source`, started and stopped."""
    source.start()
    try:
        parts, have = [], 0
        while have < samples:
            block = source.read()
            if block is None:
                break
            parts.append(block.data[:, : samples - have])
            have += parts[-1].shape[1]
    finally:
        source.stop()
    if not parts:
        raise StepError(f"{source.name}: no data to measure the noise on")
    return np.concatenate(parts, axis=1)


def learn_sigma(
    source: BlockSource,
    channels: tuple[int, ...],
    specs: Mapping[int, TriggerSpec],
    noise_s: float,
    step: str,
) -> dict[int, float]:
    """Each channel's edge-kernel noise (data units), from `noise_s` of `source`."""
    rate = source.sample_rate_hz
    widest = max(s.edge_width for s in specs.values())
    samples = max(round(noise_s * rate), 16 * widest)
    data = read_stretch(source, samples)
    if data.shape[0] != len(channels):
        raise StepError(f"acquire {step}: the noise stretch has {data.shape[0]} channels, "
                        f"expected {len(channels)}")
    out = {}
    for row, ch in enumerate(channels):
        spec = specs.get(ch)
        if spec is None:
            continue
        try:
            out[ch] = float(kernel_sigma(data[row], spec.edge_width)[0])
        except ValueError as exc:
            raise StepError(f"acquire {step}: noise_s ({noise_s:g} s) too short: {exc}") from None
    silent = [ch for ch, v in out.items() if not v > 0]
    if silent:  # a railed (clipped) or dead input: no threshold in sigma exists
        log.warning("acquire %s: channels %s show no noise in %g s (clipped or dead input?): "
                    "their edge trigger is off", step, silent, noise_s)
    out = {ch: v for ch, v in out.items() if v > 0}
    log.info("acquire %s: edge-kernel noise per channel (data units): %s", step,
             {c: round(v, 3) for c, v in out.items()})
    return out


def trigger_metadata(
    config: TriggerConfig,
    sigma: Mapping[int, float] | None,
    specs: Mapping[int, TriggerSpec],
    offset: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per stored channel: polarity, edge threshold and width (data units), and for a
    threshold in sigma the measured sigma and N."""
    out: dict[str, dict[str, Any]] = {}
    for ch, trig in config.channels.items():
        own = ch - offset
        entry: dict[str, Any] = {
            "polarity": trig.polarity,
            "edge_threshold": trig.edge_threshold,
            "edge_width": trig.edge_width,
            "level": trig.level,
        }
        n = sigma_multiple(specs[own].edge_threshold) if own in specs else None
        if n is not None and sigma is not None:
            entry.update(sigma=sigma.get(own, 0.0), n_sigma=n)
        out[str(ch)] = entry
    return out
