"""Decoding one compressed chunk file into its rows, refusing a frame that is cut short or
holds another number of bytes than the chunk (numcodecs decodes a valid shorter frame into the
front of the output and leaves the rest as it was; Blosc reads a cut frame without a word).

The sizes come from the frames' own headers: Zstd's frame header (RFC 8878, 3.1.1.1) and
Blosc's 16-byte header (version, versionlz, flags, typesize, then nbytes, blocksize and cbytes
as little-endian uint32).
"""

from __future__ import annotations

import numpy as np

from cryodaq.acquisition.store.codecs import DECODERS

_ZSTD_MAGIC = 0xFD2FB528
_FCS_BYTES = (0, 2, 4, 8)  # by Frame_Content_Size_flag (flag 0: 1 byte if single segment)
_DICT_BYTES = (0, 1, 2, 4)  # by Dictionary_ID_flag


def zstd_content_size(data: bytes | memoryview) -> int | None:
    """The decoded size a Zstd frame declares, or None if its header does not say."""
    head = bytes(data[:18])
    if len(head) < 5 or int.from_bytes(head[:4], "little") != _ZSTD_MAGIC:
        raise ValueError("not a Zstd frame")
    descriptor = head[4]
    single = bool(descriptor & 0x20)
    fcs_flag = descriptor >> 6
    fcs = _FCS_BYTES[fcs_flag] or (1 if single else 0)
    at = 5 + (0 if single else 1) + _DICT_BYTES[descriptor & 0x03]
    if fcs == 0:
        return None
    if len(head) < at + fcs:
        raise ValueError("Zstd frame header cut short")
    size = int.from_bytes(head[at : at + fcs], "little")
    return size + 256 if fcs == 2 else size


def blosc_sizes(data: bytes | memoryview) -> tuple[int, int]:
    """(decoded bytes, frame bytes) a Blosc frame's header declares."""
    if len(data) < 16:
        raise ValueError("Blosc header cut short")
    head = bytes(data[:16])
    return int.from_bytes(head[4:8], "little"), int.from_bytes(head[12:16], "little")


def decode_chunk(codec: str, data: bytes, out: np.ndarray) -> None:
    """Decode the frame `data` of codec `codec` (a `zarr.json` codec name: "zstd" or "blosc")
    into `out`, a contiguous uint8 array of the chunk's size; ValueError if the frame is cut
    short, corrupt or not of that size."""
    if codec == "blosc":
        decoded, frame = blosc_sizes(data)
        if frame != len(data):
            raise ValueError(f"Blosc frame of {frame} bytes in a file of {len(data)}")
    else:
        decoded = zstd_content_size(data)
    if decoded is not None and decoded != out.nbytes:
        raise ValueError(f"frame of {decoded} bytes for a chunk of {out.nbytes}")
    try:
        if decoded is not None:
            DECODERS[codec].decode(data, out=out)
            return
        rows = np.frombuffer(DECODERS[codec].decode(data), np.uint8)
    except RuntimeError as exc:  # numcodecs' error for a bad frame
        raise ValueError(str(exc)) from None
    if rows.size != out.nbytes:
        raise ValueError(f"frame of {rows.size} bytes for a chunk of {out.nbytes}")
    out[...] = rows
