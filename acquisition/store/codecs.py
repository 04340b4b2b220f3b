"""The codecs a run's records chunks may be compressed with: a lab trades disk for CPU per run.

- `zstd` (the default): Zstd level 1. On int16 ADC records (4096-sample pulses and noise) it
  stores 2.0x less than the raw samples and decodes at ~0.8 GB/s a core (on this host).
- `lz4`: Blosc with LZ4 (clevel 5) after a byte shuffle. On the same records 1.46x less than
  raw, but it decodes ~2x faster and the writer takes ~0.6x the time: more disk, less CPU.
  On float32 records (uMUX phase) it stores less than Zstd too: the shuffle groups the
  floats' sign and exponent bytes.
Measured trade-off: docs/run_store.md.

Both are core Zarr v3 codecs (`zstd`, `blosc`): any zarr reader opens either. The writer
encodes chunks itself (`store.columns`) with the same numcodecs codec zarr uses, so each chunk
file is byte for byte what zarr would write; `store.chunk_reader` decodes them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import zarr
from numcodecs import Blosc, Zstd
from numcodecs.abc import Codec

from cryodaq.acquisition.store.format import RunStoreError


@dataclass(frozen=True)
class RecordsCodec:
    """One choice of records codec: zarr's codec (for the array's metadata) and the numcodecs
    codec the writer encodes with."""

    name: str
    zarr_codec: Callable[[], Any]
    encoder: Callable[[], Codec]
    #: The codec's name in the array's `zarr.json`.
    metadata_name: str
    #: Entries its `zarr.json` configuration must hold (what the encoder writes).
    configuration: Mapping[str, Any]

    def matches(self, entry: Mapping[str, Any], itemsize: int | None = None) -> bool:
        """Whether a `zarr.json` codec entry is this codec with the writer's settings (and, given
        `itemsize`, a Blosc `typesize` that is the array's: the encoder shuffles by it)."""
        config = entry.get("configuration", {})
        sized = itemsize is None or config.get("typesize", itemsize) == itemsize
        return (
            sized
            and entry.get("name") == self.metadata_name
            and all(config.get(k) == v for k, v in self.configuration.items())
        )


RECORDS_CODECS: dict[str, RecordsCodec] = {
    "zstd": RecordsCodec(
        "zstd",
        lambda: zarr.codecs.ZstdCodec(level=1),
        lambda: Zstd(level=1),
        "zstd",
        {"level": 1, "checksum": False},
    ),
    "lz4": RecordsCodec(
        "lz4",
        lambda: zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", blocksize=0),
        lambda: Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0),
        "blosc",
        {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "blocksize": 0},
    ),
}
DEFAULT_RECORDS_CODEC = "zstd"

#: Decoders of the chunk codecs `store.chunk_reader` reads directly, by `zarr.json` name (a
#: Zstd or Blosc frame describes itself: any level, compressor or shuffle decodes).
DECODERS: dict[str, Codec] = {"zstd": Zstd(), "blosc": Blosc()}


def codec_named(name: str, where: str = "records_codec") -> RecordsCodec:
    """The codec called `name`; a clear error naming the allowed values otherwise."""
    try:
        return RECORDS_CODECS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(RECORDS_CODECS)
        msg = f"{where}: {name!r} is not a records codec; use one of {allowed}"
        raise RunStoreError(msg) from None
