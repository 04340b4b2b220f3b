"""The codecs a run's records chunks may be compressed with.

- `lz4` (the default): Blosc with LZ4 (clevel 5) after a bit shuffle. The bit shuffle puts the
  same bit of every sample together, so the bits that noise-dominated samples share (an int16
  ADC sample's high bits, a float's sign and exponent) compress to almost nothing. On int16
  ADC records (4096-sample pulses and noise) it stores 2.6x less than the raw samples, on
  float32 uMUX records 2.4x less; it encodes at 1.3-1.6 GB/s and decodes at 2.7-3.1 GB/s a
  core (on this host).
- `zstd`: Zstd level 1, for a reader with no Blosc. On the same records 2.1x and 1.7x less
  than raw; it encodes at 0.3-0.6 GB/s and decodes at 1.1-1.8 GB/s.
Measured: docs/run_store.md.

Both are core Zarr v3 codecs (`blosc`, `zstd`): any zarr reader opens either. The writer
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
        lambda: zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", blocksize=0),
        lambda: Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE, blocksize=0),
        "blosc",
        {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "blocksize": 0},
    ),
}
DEFAULT_RECORDS_CODEC = "lz4"

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
