"""One daemon per state dir: an exclusive flock on `<state dir>/lock`, held for the daemon's
life. Two daemons on one state dir would each take the other's links for orphans and
delete them; the second one is refused at start, naming the first one's pid."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from vxlan_evt.model.errors import Conflict

LOCK_FILE_NAME = "lock"


class StateDirLock:
    """`with StateDirLock(state_dir):` or `acquire()`/`release()`; the kernel drops the
    lock when the process dies, so a crash leaves nothing to clean up."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Conflict(
                    f"another vxlan-evt (pid {holder}) already serves state dir "
                    f"{self.path.parent}; stop it, or give this one its own --state-dir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
