"""IEEE 488.2 definite-length binary blocks and the preamble of cryodaq data blocks."""

from __future__ import annotations

import struct

import numpy as np

#: Preamble of a streamed data block: first-sample counter (u64), mask of the channels present
#: (u64, bit i = channel i+1), channels (u32), samples (u32); then `channels x samples` values.
STREAM_PREAMBLE = struct.Struct("<QQII")


def _block(prefix: bytes, payload: np.ndarray, digits: int = 0) -> bytearray:
    """`#<n><length>` + prefix + payload bytes, assembled with a single copy of the payload;
    the length has at least `digits` digits (zero-padded)."""
    length = str(len(prefix) + payload.nbytes).zfill(digits).encode()
    head = b"#" + str(len(length)).encode() + length + prefix
    out = bytearray(len(head) + payload.nbytes)
    out[: len(head)] = head
    np.frombuffer(out, dtype=np.uint8, offset=len(head))[:] = payload.reshape(-1).view(np.uint8)
    return out


def ieee_block(payload: bytes) -> bytearray:
    """Wrap `payload` as `#<n><length><payload>`."""
    return _block(b"", np.frombuffer(payload, dtype=np.uint8))


def stream_block(first_sample: int, channel_ids: list[int], data: np.ndarray) -> bytearray:
    """A `channels x samples` array with its first-sample counter, as one IEEE block."""
    channels, samples = data.shape
    mask = sum(1 << (ch - 1) for ch in channel_ids)
    arr = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    return _block(STREAM_PREAMBLE.pack(first_sample, mask, channels, samples), arr)


def array_block(values: np.ndarray, dtype: str = "<f8", digits: int = 0) -> bytearray:
    """A flat array of values (little-endian unless `dtype` says) as one IEEE block."""
    return _block(b"", np.ascontiguousarray(values, dtype=dtype), digits)
