"""Documents with a last good copy: a damaged file is set aside and the copy used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vxlan_evt.disk.documents import backup_path, load_document, save_document
from vxlan_evt.model.errors import SystemFailure


def decode(data: bytes) -> list[int]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise SystemFailure(f"not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise SystemFailure("not a list")
    return [int(v) for v in value]


def nothing() -> list[int]:
    return []


def load(path: Path) -> tuple[list[int], str | None]:
    loaded = load_document(path, decode, nothing, "test file")
    return loaded.value, loaded.recovered


def test_a_missing_file_is_empty_and_the_first_save_has_no_backup(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    assert load(path) == ([], None)
    save_document(path, b"[1]")
    assert sorted(os.listdir(tmp_path)) == ["doc.json"]
    assert load(path) == ([1], None)


def test_each_save_keeps_the_previous_content_as_backup(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    save_document(path, b"[1]")
    save_document(path, b"[1, 2]")
    save_document(path, b"[1, 2, 3]")
    assert backup_path(path).read_bytes() == b"[1, 2]"
    assert path.read_bytes() == b"[1, 2, 3]"


@pytest.mark.parametrize("damage", [b"", b"[1, 2", b"{}", b"\x00\xff", b'"x"'])
def test_a_damaged_file_is_set_aside_and_the_backup_used(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / "doc.json"
    save_document(path, b"[1]")
    save_document(path, b"[1, 2]")
    path.write_bytes(damage)  # a disk error, or an edit by hand

    value, recovered = load(path)

    assert value == [1]
    assert recovered is not None and "damaged" in recovered and "doc.json.bak" in recovered
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("doc.json.damaged-")]
    assert aside.read_bytes() == damage  # kept for a person to look at, never overwritten
    assert path.read_bytes() == b"[1]"
    # The next save keeps the recovered copy as the backup, not the damaged one.
    save_document(path, b"[1, 3]")
    assert backup_path(path).read_bytes() == b"[1]"
    assert load(path) == ([1, 3], None)


def test_damage_without_a_usable_backup_changes_nothing_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b"{}")
    with pytest.raises(SystemFailure) as missing:
        load(path)
    assert "doc.json is damaged (not a list)" in str(missing.value)
    assert "backup doc.json.bak is missing" in str(missing.value)
    assert f"mv {path} {path}.damaged" in str(missing.value)

    backup_path(path).write_bytes(b"[")
    with pytest.raises(SystemFailure, match=r"backup doc\.json\.bak is unusable too"):
        load(path)
    assert sorted(os.listdir(tmp_path)) == ["doc.json", "doc.json.bak"]
    assert path.read_bytes() == b"{}"
