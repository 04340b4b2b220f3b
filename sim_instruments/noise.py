"""Gaussian noise with a white plus 1/f PSD, continuous across blocks.

The 1/f part is a sum of first-order (Lorentzian) processes with corner frequencies spaced by
a constant ratio r; weights A_k proportional to 1/f_k sum to S(f) = pi c / (2 f ln r), so
c = 2 ln(r) w^2 f_knee / pi gives w^2 f_knee / f (see `cryodaq.analysis.noise_models`). A slow
component is updated only every m_k samples (m_k << 1 / f_k), which keeps the cost per sample
near that of white noise alone.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Ratio between successive corner frequencies of the 1/f synthesis.
CORNER_RATIO = 2.0
#: Lowest corner frequency modelled (Hz); 1/f flattens below it.
LOWEST_CORNER_HZ = 1e-3


@numba.njit(cache=True, nogil=True)
def _colored(out, white, sigma, slow, state, a, b, stride, phase):  # pragma: no cover - numba
    """out[i] = sigma * (a normal of `white`) + the held sum of the 1/f components, whose
    innovations are normals of `slow`; strides are ascending powers of two. Both streams are
    drawn in sample order, so the result does not depend on how the samples are blocked."""
    n = out.shape[0]
    for i in range(n):
        out[i] = white.standard_normal() * sigma
    if state.shape[0] == 0:
        return
    total = state.sum()
    fastest = stride[0]
    i = 0
    while i < n:
        p = phase + i
        if p & (fastest - 1) == 0:
            for k in range(state.shape[0]):
                if p & (stride[k] - 1) != 0:
                    break
                new = a[k] * state[k] + b[k] * slow.standard_normal()
                total += new - state[k]
                state[k] = new
        j = min(n, i + fastest - (p & (fastest - 1)))
        for q in range(i, j):  # the sum is held until the next update
            out[q] += total
        i = j


class ColoredNoise:
    """Noise of one-sided PSD S(f) = w^2 (1 + f_knee / f) at sample rate `rate_hz`.

    `components()` gives the 1/f synthesis (state, poles, innovation scales, strides) to a
    kernel that draws the normals itself (`cryodaq.sim_instruments.mmc_array`)."""

    def __init__(
        self,
        white_density: float,
        knee_hz: float,
        rate_hz: float,
        rng: np.random.Generator,
        top_corner_hz: float | None = None,
    ) -> None:
        if white_density < 0 or knee_hz < 0 or rate_hz <= 0:
            raise ValueError(
                f"noise needs white_density >= 0, knee_hz >= 0, rate_hz > 0; got "
                f"{white_density}, {knee_hz}, {rate_hz}"
            )
        self.white_density = white_density
        self.knee_hz = knee_hz
        self.rate_hz = rate_hz
        self._rng_white, self._rng_slow = rng.spawn(2)
        self._phase = 0
        self._sigma_white = white_density * math.sqrt(rate_hz / 2.0)
        corners = []
        f = LOWEST_CORNER_HZ
        # The fastest Lorentzian: 1/f holds up to ~its corner (default 1000 knees, where 1/f is
        # 0.1 % of the white level); a lower `top_corner_hz` saves updates.
        top = min(rate_hz / 16.0, 1e3 * knee_hz if top_corner_hz is None else top_corner_hz)
        while knee_hz > 0 and f <= top:
            corners.append(f)
            f *= CORNER_RATIO
        corners.reverse()  # fastest first: strides ascend, as the kernel requires
        c = 2.0 * math.log(CORNER_RATIO) * white_density**2 * knee_hz / math.pi
        self._stride = np.array(
            [max(1, 2 ** int(math.log2(rate_hz / (32.0 * fk)))) for fk in corners], dtype=np.int64
        )
        rates = rate_hz / self._stride
        self._a = np.exp(-2.0 * math.pi * np.array(corners) / rates)
        amplitude = c / np.array(corners)
        self._b = (1.0 - self._a) * np.sqrt(amplitude * rates / 2.0)
        # Start each component in its stationary state, so there is no warm-up transient.
        stationary = self._b / np.sqrt(1.0 - self._a**2) if corners else np.zeros(0)
        self._state = self._rng_slow.standard_normal(len(corners)) * stationary

    def components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(state, a, b, stride) of the 1/f components; `state` is updated in place."""
        return self._state, self._a, self._b, self._stride

    def block(
        self, n: int, white: np.random.Generator | None = None, sigma: float | None = None
    ) -> np.ndarray:
        """The next `n` samples. With `white` and `sigma` the white part is `sigma` times normals
        of `white` instead of this noise's own (a caller merging independent white noises)."""
        out = np.empty(n)
        _colored(
            out,
            self._rng_white if white is None else white,
            self._sigma_white if sigma is None else sigma,
            self._rng_slow,
            self._state,
            self._a,
            self._b,
            self._stride,
            self._phase,
        )
        self._phase += n
        return out
