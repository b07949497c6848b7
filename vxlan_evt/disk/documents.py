"""Documents that must survive damage: each save keeps the previous good copy, and a
load that finds the file damaged falls back to that copy instead of starting empty.

The state file and the IPAM file hold what Docker told us once and never again; losing
them loses networks and hands out addresses twice. A damaged file (a disk error, an edit
by hand) is set aside, never overwritten, so that a person can look at it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from vxlan_evt.disk.atomicfile import write_atomic
from vxlan_evt.model.errors import SystemFailure, VxlanEvtError

log = logging.getLogger(__name__)

T = TypeVar("T")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def save_document(path: Path, data: bytes) -> None:
    """Replace `path` atomically; what it held (if it decoded when loaded) stays as .bak."""
    if path.exists():
        backup = backup_path(path)
        backup.unlink(missing_ok=True)
        os.link(path, backup)  # the same inode: no copy, and the rename below keeps it
    write_atomic(path, data)


@dataclass(frozen=True, slots=True)
class Loaded(Generic[T]):
    value: T
    # Set when the file was damaged and its backup was used: what happened, for the log
    # and for callers that must be careful (the backup may be one change behind).
    recovered: str | None = None


def load_document(
    path: Path, decode: Callable[[bytes], T], empty: Callable[[], T], what: str
) -> Loaded[T]:
    """The decoded document; `empty()` if there is none yet. A damaged file is moved to
    `<name>.damaged-<UTC time>` and the backup used; with no usable backup nothing is
    touched and the error says what to do."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Loaded(empty())
    try:
        return Loaded(decode(data))
    except VxlanEvtError as damage:
        backup = backup_path(path)
        try:
            value = decode(backup.read_bytes())
        except (OSError, VxlanEvtError) as exc:
            why = "missing" if isinstance(exc, FileNotFoundError) else f"unusable too ({exc})"
            raise SystemFailure(
                f"{what} {path} is damaged ({damage}) and its backup {backup.name} is {why}; "
                f"nothing was changed. To start without it, move it away (mv {path} "
                f"{path}.damaged); links it named are then left alone, not deleted"
            ) from damage
        aside = path.with_name(
            f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        )
        os.replace(path, aside)
        os.link(backup, path)  # the good copy in place: the next save keeps it as .bak
        recovered = (
            f"{what} {path} was damaged ({damage}); kept it as {aside.name} and went back "
            f"to {backup.name} (up to one change older)"
        )
        log.error(recovered)
        return Loaded(value, recovered)
