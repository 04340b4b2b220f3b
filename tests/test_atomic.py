"""Atomic replacement of files and directories: the new content, or the old one intact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cryodaq.acquisition.atomic import replace_directory, write_atomic, write_json_atomic


def test_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    write_atomic(path, b"old")
    write_atomic(path, b"\x00new")
    assert path.read_bytes() == b"\x00new"
    write_json_atomic(tmp_path / "state.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": [1, 2]}
    write_atomic(path, "text é")
    assert path.read_text(encoding="utf-8") == "text é"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin", "state.json"]


def test_a_failed_write_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"version": 1})

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(path, {"version": 2})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_directory_is_replaced_or_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "column"
    for version in ("1", "2"):
        new = tmp_path / f".new-{version}"
        new.mkdir()
        (new / "data").write_text(version)
        replace_directory(new, target)
    assert (target / "data").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["column"]

    new = tmp_path / ".new-3"
    new.mkdir()
    real = os.replace

    def refuse_new(src: Path, dst: Path) -> None:
        if Path(src) == new:
            raise OSError(18, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(os, "replace", refuse_new)
    with pytest.raises(OSError, match="cross-device"):
        replace_directory(new, target)
    assert (target / "data").read_text() == "2"  # the old one was put back
    assert sorted(p.name for p in tmp_path.iterdir()) == [".new-3", "column"]
