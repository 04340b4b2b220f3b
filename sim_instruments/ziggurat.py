"""Fast exact standard normals for the simulator's numba kernels.

Marsaglia & Tsang's ziggurat (J. Stat. Softw. 5(8), 2000) with 256 layers, the layout numpy
uses (52-bit abscissa, 8-bit layer index, one sign bit from one 64-bit word), over the
xoshiro256++ generator (Blackman & Vigna 2018: all 64 bits pass BigCrush, so the low byte can
pick the layer). 98.8 % of draws take one 64-bit word, one multiply and one compare; the
wedges and the tail (|x| > 3.654) are sampled exactly by rejection, so the distribution is
the normal one to the resolution of the 52-bit abscissa, tails included.

A stream is a uint64 array of 4 words (`new_state`); kernels load it into locals with
`load`, draw with `normal`, and write it back with `store`, so the state stays in registers.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Right edge of the base layer and area of each layer (Marsaglia & Tsang, 256 layers).
_R = 3.6541528853610088
_V = 4.92867323399e-3
_M52 = float(1 << 52)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, w, f): accept if abscissa < k[i]; x = abscissa * w[i]; f[i] = exp(-x_i^2 / 2)."""
    k = np.zeros(256, dtype=np.uint64)
    w = np.zeros(256)
    f = np.zeros(256)
    dn = tn = _R
    q = _V / math.exp(-0.5 * dn * dn)
    k[0] = np.uint64(int(dn / q * _M52))
    k[1] = np.uint64(0)
    w[0] = q / _M52
    w[255] = dn / _M52
    f[0] = 1.0
    f[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_V / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = np.uint64(int(dn / tn * _M52))
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / _M52
    return k, w, f


_K, _W, _F = _tables()
#: The same layers for 23-bit abscissae (two normals from one 64-bit word, `normal_pair`).
_K23 = (_K >> np.uint64(29)).astype(np.int64)
_W23 = _W * float(1 << 29)
_K = _K.astype(np.int64)  # 52-bit values: int64 compares and converts faster than uint64
_LOW8 = np.uint64(0xFF)
_BIT8 = np.uint64(0x100)
_U11 = np.uint64(11)
_U12 = np.uint64(12)
_U17 = np.uint64(17)
_INV53 = 1.0 / 9007199254740992.0


def new_state(rng: np.random.Generator) -> np.ndarray:
    """A fresh xoshiro256++ state (4 uint64 words, not all zero) seeded from `rng`."""
    state = rng.integers(0, 2**64, size=4, dtype=np.uint64, endpoint=False)
    if not state.any():
        state[0] = 1
    return state


@numba.njit(inline="always")
def _rotl(x, k):  # pragma: no cover - numba
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(inline="always")
def next_u64(s0, s1, s2, s3):  # pragma: no cover - numba
    """One xoshiro256++ output and the next state."""
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@numba.njit(inline="always")
def load(state):  # pragma: no cover - numba
    return state[0], state[1], state[2], state[3]


@numba.njit(inline="always")
def store(state, s0, s1, s2, s3):  # pragma: no cover - numba
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3


@numba.njit(inline="always")
def uniform(s0, s1, s2, s3):  # pragma: no cover - numba
    """A double in [0, 1) with 53 random bits, and the next state."""
    r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    return np.int64(r >> _U11) * _INV53, s0, s1, s2, s3


@numba.njit(inline="always")
def _layer(r):  # pragma: no cover - numba
    """(layer index, 52-bit abscissa, signed x) of one 64-bit word (all int64/float64)."""
    idx = np.int64(r & _LOW8)
    rabs = np.int64(r >> _U12)
    x = rabs * _W[idx]
    if r & _BIT8:
        x = -x
    return idx, rabs, x


@numba.njit
def _slow_normal(idx, x, s0, s1, s2, s3):  # pragma: no cover - numba
    """The 1.2 % of draws outside a layer's rectangle: tail (layer 0) or wedge rejection."""
    while True:
        if idx == 0:  # tail beyond R: Marsaglia's exponential rejection
            while True:
                u1, s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
                u2, s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
                xx = -math.log1p(-u1) / _R
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    break
            return (-(_R + xx) if x < 0.0 else _R + xx), s0, s1, s2, s3
        u, s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
        if (_F[idx - 1] - _F[idx]) * u + _F[idx] < math.exp(-0.5 * x * x):
            return x, s0, s1, s2, s3
        r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)  # rejected: a fresh draw from the top
        idx, rabs, x = _layer(r)
        if rabs < _K[idx]:
            return x, s0, s1, s2, s3


@numba.njit(inline="always")
def normal(s0, s1, s2, s3):  # pragma: no cover - numba
    """A standard normal and the next state."""
    r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    idx, rabs, x = _layer(r)
    if rabs < _K[idx]:
        return x, s0, s1, s2, s3
    return _slow_normal(idx, x, s0, s1, s2, s3)


@numba.njit(inline="always")
def _half(h):  # pragma: no cover - numba
    """(layer, 23-bit abscissa, signed x) of a 32-bit half word."""
    idx = np.int64(h & _LOW8)
    rabs = np.int64((h >> np.uint64(9)) & np.uint64(0x7FFFFF))
    x = rabs * _W23[idx]
    if h & _BIT8:
        x = -x
    return idx, rabs, x


@numba.njit(inline="always")
def normal_pair(s0, s1, s2, s3):  # pragma: no cover - numba
    """Two independent standard normals from one 64-bit word (each half: 8-bit layer, sign,
    23-bit abscissa; the rare misses go through the exact wedge and tail rejection)."""
    r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    idx, rabs, x1 = _half(r & np.uint64(0xFFFFFFFF))
    if rabs >= _K23[idx]:
        x1, s0, s1, s2, s3 = _slow_normal(idx, x1, s0, s1, s2, s3)
    idx, rabs, x2 = _half(r >> np.uint64(32))
    if rabs >= _K23[idx]:
        x2, s0, s1, s2, s3 = _slow_normal(idx, x2, s0, s1, s2, s3)
    return x1, x2, s0, s1, s2, s3


@numba.njit(cache=True)
def fill_normal_pairs(out, state):  # pragma: no cover - numba
    """out[i] = standard normals of `state`, two per 64-bit word (`normal_pair`)."""
    s0, s1, s2, s3 = load(state)
    for i in range(0, out.shape[0] - 1, 2):
        x1, x2, s0, s1, s2, s3 = normal_pair(s0, s1, s2, s3)
        out[i] = x1
        out[i + 1] = x2
    if out.shape[0] % 2:
        x1, x2, s0, s1, s2, s3 = normal_pair(s0, s1, s2, s3)
        out[-1] = x1
    store(state, s0, s1, s2, s3)


@numba.njit(cache=True)
def fill_normal(out, state):  # pragma: no cover - numba
    """out[i] = standard normals of the stream `state` (advanced)."""
    s0, s1, s2, s3 = load(state)
    for i in range(out.shape[0]):
        x, s0, s1, s2, s3 = normal(s0, s1, s2, s3)
        out[i] = x
    store(state, s0, s1, s2, s3)


def standard_normal(state: np.ndarray, n: int) -> np.ndarray:
    """`n` standard normals of the stream `state` (a `new_state`), which advances."""
    out = np.empty(n)
    fill_normal(out, state)
    return out
