from __future__ import annotations

import os
from pathlib import Path

import pytest

from vxlan_evt.disk.atomicfile import write_atomic


def test_replaces_creates_the_directory_private_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.json"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["x.json"]
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_a_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_atomic(path, b"old")
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.json"]
