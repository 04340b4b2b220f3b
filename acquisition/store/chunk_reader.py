"""Reading rows of a run-store array straight from its chunk files, one decompression per chunk.

The arrays the run-store writer makes (`store.columns.Column`) have one layout: a regular grid
of whole-row chunks, little-endian bytes, optionally one Zstd or Blosc frame per chunk
(`store.codecs`), chunk keys `c.<index>.0...` (earlier stores: `c/<index>/0...`). For them the
rows are decoded here directly into the output array (no intermediate copies, no Zarr
machinery per chunk: Zarr costs ~3x the decompression itself on 64-row record chunks). Any
other layout, or a missing chunk file (a fill value), is left to Zarr: `read_rows` returns
None. A chunk file cut short, or a compressed one that does not decode, is one RunStoreError
naming the array and the chunk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cryodaq.acquisition.store.codecs import DECODERS
from cryodaq.acquisition.store.format import RunStoreError, chunk_key, read_json
from cryodaq.acquisition.store.frames import decode_chunk


def key_separator(meta: dict[str, Any]) -> str:
    """The separator of an array's `default` chunk key encoding."""
    return meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")


def plain_layout(meta: dict[str, Any]) -> bool:
    """True for an array in the writer's layout (see module docstring)."""
    try:
        codecs = meta["codecs"]
        names = [c["name"] for c in codecs]
        endian = codecs[0].get("configuration", {}).get("endian", "little")
        grid = meta["chunk_grid"]
        keys = meta["chunk_key_encoding"]
        shape = grid["configuration"]["chunk_shape"]
    except (KeyError, IndexError, TypeError):
        return False
    return (
        names[0] == "bytes"
        and (len(names) == 1 or len(names) == 2 and names[1] in DECODERS)
        and endian == "little"
        and grid["name"] == "regular"
        and keys.get("name") == "default"
        and key_separator(meta) in ("/", ".")
        and list(shape[1:]) == list(meta["shape"][1:])
        and not meta.get("storage_transformers")
    )


def read_rows(path: Path, start: int, stop: int) -> np.ndarray | None:
    """Rows [start, stop) of the array at `path`, or None if Zarr must read it (see module)."""
    meta = read_json(path / "zarr.json")
    if not plain_layout(meta):
        return None
    if meta["shape"][0] < stop:
        raise RunStoreError(
            f"{path}: holds {meta['shape'][0]} rows but {stop} are committed (store damaged)"
        )
    dtype = np.dtype(meta["data_type"]).newbyteorder("<")
    row_shape = tuple(meta["shape"][1:])
    rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
    codecs = meta["codecs"]
    codec = codecs[1]["name"] if len(codecs) == 2 else None
    out = np.empty((stop - start, *row_shape), dtype)
    if stop <= start:
        return out
    flat = out.reshape(stop - start, -1).view(np.uint8)
    separator = key_separator(meta)
    chunk_bytes = rows * flat.shape[1]
    chunk: np.ndarray | None = None
    for index in range(start // rows, -(-stop // rows)):
        lo, hi = max(start, index * rows), min(stop, (index + 1) * rows)
        file = path / chunk_key(index, len(row_shape), separator)
        if codec is None:  # only the rows asked for, read into `out`
            try:
                _read_raw_rows(file, (lo - index * rows) * flat.shape[1], chunk_bytes,
                               flat[lo - start : hi - start])  # fmt: skip
            except FileNotFoundError:
                return None
            except ValueError as e:
                raise RunStoreError(f"{path}: chunk {index} is truncated or corrupt: {e}") from None
            continue
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return None
        if lo == index * rows and hi == (index + 1) * rows:  # whole: straight into `out`
            rows_of = None
        else:
            if chunk is None:
                chunk = np.empty(chunk_bytes, np.uint8)
            rows_of = chunk.reshape(rows, -1)
        target = flat[lo - start : hi - start] if rows_of is None else rows_of
        try:
            decode_chunk(codec, data, target.reshape(-1))
        except ValueError as e:
            raise RunStoreError(f"{path}: chunk {index} is truncated or corrupt ({e})") from None
        if rows_of is not None:
            flat[lo - start : hi - start] = rows_of[lo - index * rows : hi - index * rows]
    return out


def _read_raw_rows(file: Path, offset: int, chunk_bytes: int, out: np.ndarray) -> None:
    """Bytes `offset...` of the uncompressed chunk `file` into `out` (contiguous rows); a
    file that is not `chunk_bytes` long is a ValueError."""
    with open(file, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != chunk_bytes:
            raise ValueError(f"{size} bytes, not {chunk_bytes}")
        f.seek(offset)
        view = memoryview(out.reshape(-1))
        while view:
            got = f.readinto(view)
            if not got:
                raise ValueError(f"cut short while reading ({size} bytes)")
            view = view[got:]
