"""Who owns a lab namespace, and tearing lab namespaces down (also those of crashed runs).

Before a lab namespace is created, `<base>/<netns>/owner.json` records which process owns it.
A later session treats a lab namespace as stale when that owner is dead (or the record is
missing), and tears it down; live sessions running in parallel are left alone, and so are
namespaces that are not lab namespaces (other tests' `vxevt-*`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vxlan_evt.testing.labsys import (
    LAB_PREFIX,
    NETNS_DIR,
    LabError,
    cgroup_roots,
    default_base_dir,
    delete_netns,
    in_cgroup,
    in_ns,
    is_alive,
    kill_matching,
    list_lab_netns,
    mounts_of,
    pinned_holder_mnt,
    pinned_ns,
    process_start,
    remove_cgroups,
)

OWNER_FILE = "owner.json"


# --- ownership records --------------------------------------------------------------------


@dataclass
class OwnerRecord:
    """Who may keep a lab namespace alive; owner None = kept on purpose (tools/lab CLI)."""

    netns: str
    owner_pid: int | None
    owner_start: str | None
    holder_pid: int | None = None
    holder_start: str | None = None

    @classmethod
    def for_current_process(cls, netns: str, *, persistent: bool = False) -> OwnerRecord:
        pid = None if persistent else os.getpid()
        return cls(netns, pid, None if pid is None else process_start(pid))

    def owner_alive(self) -> bool:
        return is_alive(self.owner_pid, self.owner_start)

    def holder_alive(self) -> bool:
        return is_alive(self.holder_pid, self.holder_start)

    def save(self, lab_dir: Path) -> None:
        tmp = lab_dir / (OWNER_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(lab_dir / OWNER_FILE)

    @classmethod
    def load(cls, lab_dir: Path) -> OwnerRecord | None:
        try:
            return cls(**json.loads((lab_dir / OWNER_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def teardown_namespace(netns: str, lab_dir: Path, record: OwnerRecord | None) -> list[str]:
    """Kill everything in the lab's netns, mount ns and cgroup, then remove ns, cgroups, files.

    Shared by `LabHost.close()` (after the polite steps) and `cleanup_stale()`. Returns the
    problems it could not fix, so callers can raise them after doing everything else.
    """
    problems: list[str] = []
    holder_pid, holder_start = (record.holder_pid, record.holder_start) if record else (None, None)
    with (
        pinned_ns(NETNS_DIR / netns) as net_id,
        pinned_holder_mnt(holder_pid, holder_start) as mnt_id,
    ):
        ours = [in_cgroup(netns), in_ns("net", net_id), in_ns("mnt", mnt_id)]
        if survivors := kill_matching(lambda pid: any(check(pid) for check in ours)):
            problems.append(f"{netns}: processes survived SIGKILL: {survivors}")
    if left := remove_cgroups(netns):
        problems.append(f"{netns}: cgroups not removed: {[str(p) for p in left]}")
    try:
        delete_netns(netns)
    except LabError as error:
        problems.append(str(error))
    if lab_dir.exists():
        try:
            shutil.rmtree(lab_dir)
        except OSError as error:
            problems.append(f"{netns}: cannot remove {lab_dir}: {error}")
    return problems


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def cleanup_stale(base_dir: Path | None = None, *, include_persistent: bool = False) -> list[str]:
    """Tear down lab namespaces left by dead sessions; returns the names it removed.

    A lab netns is stale when its owner process is gone, or it has no owner record at all
    (records are written *before* the netns exists, so that is never a session in progress).
    Namespaces kept on purpose by tools/lab are removed only with `include_persistent`.
    Non-lab namespaces (other tests' `vxevt-*`) are never touched.
    """
    base = base_dir or default_base_dir()
    base.mkdir(parents=True, exist_ok=True)
    removed = []
    # one cleaner at a time: two sessions tearing down the same leftover would trip each other
    with (base / ".cleanup.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        names = set(list_lab_netns())
        names.update(p.name for p in base.iterdir() if p.name.startswith(LAB_PREFIX))
        for name in sorted(names):
            record = OwnerRecord.load(base / name)
            if record and record.owner_alive():
                continue
            if record is None and _younger_than(base / name, 60.0):
                continue  # a session between mkdir and writing its record
            if record and record.owner_pid is None and not include_persistent:
                continue
            teardown_namespace(name, base / name, record)
            removed.append(name)
    return removed


def lab_state() -> dict[str, list[str]]:
    """Lab leftovers on this machine (netns, mounts, cgroups), for clean-teardown assertions."""
    cgroups = [str(root / d) for root in cgroup_roots() for d in os.listdir(root)]
    return {
        "netns": list_lab_netns(),
        "mounts": [m.target for m in mounts_of() if LAB_PREFIX in m.target],
        "cgroups": [path for path in cgroups if LAB_PREFIX in path],
    }
