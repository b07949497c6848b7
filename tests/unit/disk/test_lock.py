"""One daemon per state dir, refused clearly; a dead holder leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vxlan_evt.disk.lock import StateDirLock
from vxlan_evt.model.errors import Conflict


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    refused = pytest.raises(Conflict, match=f"pid {os.getpid()}.*serves state dir {tmp_path}")
    with StateDirLock(tmp_path), refused:
        StateDirLock(tmp_path).acquire()
    with StateDirLock(tmp_path):  # released: free again
        pass


def test_another_process_is_refused_and_a_dead_one_frees_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from vxlan_evt.disk.lock import "
         "StateDirLock; StateDirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); "
         "time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(Conflict, match=f"pid {holder.pid}"):
            StateDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with StateDirLock(tmp_path):  # the kernel dropped the dead holder's lock
        pass
