"""An offline container image: busybox-static plus relative applet links, `docker import`ed.

No registry is involved. The rootfs is written straight into a tarball (no rootfs dir, no `tar`
binary): `/bin/busybox` and one *relative* symlink per applet (`busybox --install -s` would
make absolute links to the machine's /bin/busybox, which do not exist in the image).
"""

from __future__ import annotations

import atexit
import functools
import io
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labsys import LabError, run_cmd, which

BUSYBOX_IMAGE = "local/busybox"
PT_INTERP = 3


def find_busybox() -> Path:
    """The static busybox binary; LabError saying what to install if there is none."""
    found = which("busybox")
    if found is None:
        raise LabError("busybox not found (apt-get install busybox-static)")
    path = Path(found).resolve()
    if not is_static_elf(path):
        raise LabError(f"{path} is dynamically linked (apt-get install busybox-static)")
    return path


def is_static_elf(path: Path) -> bool:
    """True when the ELF has no PT_INTERP (no dynamic loader), so it runs in an empty rootfs."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only; that is all we run on
        return False
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[0x20:0x28], order)
    entsize = int.from_bytes(data[0x36:0x38], order)
    count = int.from_bytes(data[0x38:0x3A], order)
    for i in range(count):
        start = phoff + i * entsize
        if int.from_bytes(data[start : start + 4], order) == PT_INTERP:
            return False
    return True


def build_busybox_tar(dest: Path, busybox: Path | None = None) -> Path:
    """Write the image's rootfs as `dest` (a tarball) and return it."""
    binary = busybox or find_busybox()
    applets = run_cmd([str(binary), "--list"]).stdout.split()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w") as tar:
        for name, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(binary, arcname="bin/busybox", filter=_as_root)
        for applet in sorted(set(applets) - {"busybox"}):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            body = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return dest


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


@functools.cache
def cached_busybox_tar() -> Path:
    """One tarball per process, for callers without the `busybox_tar` session fixture."""
    directory = Path(tempfile.mkdtemp(prefix="vxevt-busybox-"))
    atexit.register(shutil.rmtree, directory, True)
    return build_busybox_tar(directory / "busybox.tar")


def busybox_image(host: LabHost, tar: Path | None = None, tag: str = BUSYBOX_IMAGE) -> str:
    """Import the busybox image into `host`'s dockerd (once); returns its tag."""
    if host.docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    with (tar or cached_busybox_tar()).open("rb") as stream:
        host.docker("import", "--change", "ENV PATH=/bin", "-", tag, stdin=stream, timeout=120)
    return tag
