"""The vxlan-evt container image in the lab: built once by tools/build-image.sh, loaded
into each lab host's dockerd, and run there the way the README tells users to run it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labsys import LabError

REPO = Path(__file__).resolve().parents[2]
IMAGE_TAG = "vxlan-evt:lab"
PLUGIN_CONTAINER = "vxlan-evt"


def build_image_tar(dest: Path, *, base_dir: Path | None = None, tag: str = IMAGE_TAG) -> Path:
    """Build the image with tools/build-image.sh on a throwaway lab dockerd and save it to
    `dest` (a `docker save` tarball). The script itself runs outside the lab host: the base
    image (apt) and the wheels (PyPI) need the machine's network; only dockerd is the lab's."""
    with LabHost("imgbuild", base_dir=base_dir, log_dir=dest.parent / "imgbuild") as host:
        host.start_dockerd()
        output = run_tool(host, "build-image.sh", "--tag", tag, "--save", str(dest), timeout=1200)
    print(output)  # which base, and the image's size: into the test's log
    return dest


def run_tool(host: LabHost, script: str, *args: str, timeout: float) -> str:
    """Run tools/<script> on this machine with its docker CLI aimed at `host`'s dockerd
    (outside the host: the script may need the machine's network); its stdout back."""
    done = subprocess.run(
        ["bash", f"tools/{script}", *args],
        cwd=REPO,
        env=os.environ | host.docker_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"tools/{script} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def load_image(host: LabHost, tar: Path) -> str:
    """`docker load` the saved image into `host`'s dockerd; returns its tag."""
    loaded = host.docker("load", "-i", str(tar), timeout=300).stdout
    tags = [line.split(": ", 1)[1].strip() for line in loaded.splitlines() if "image:" in line]
    if not tags:
        raise LabError(f"[{host.name}] docker load named no image:\n{loaded}")
    return tags[0]


def run_plugin_container(
    host: LabHost, tag: str, state_dir: Path, *args: str, name: str = PLUGIN_CONTAINER
) -> str:
    """The README's `docker run` line (capabilities, not --privileged), except that the
    state dir is `state_dir` instead of the machine's /var/lib/vxlan-evt (a lab host shares
    the machine's /var). Extra `args` go to `vxlan-evt serve`. Returns the container ID."""
    state_dir.mkdir(parents=True, exist_ok=True)
    started = host.docker(
        "run", "-d", "--name", name, "--restart", "always", "--net", "host",
        "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
        "-v", "/run/docker/plugins:/run/docker/plugins",
        "-v", "/run/vxlan-evt:/run/vxlan-evt",
        "-v", f"{state_dir}:/var/lib/vxlan-evt",
        tag, "serve", *args,
    )  # fmt: skip
    return started.stdout.strip()


def create_managed_plugin(host: LabHost, image: str, name: str) -> str:
    """tools/build-plugin.sh against `host`'s dockerd (the image loaded there already);
    returns the plugin's ID. Like build_image_tar, the script runs outside the host."""
    run_tool(host, "build-plugin.sh", "--image", image, "--name", name, timeout=300)
    return host.docker("plugin", "inspect", name, "--format", "{{.Id}}").stdout.strip()


def enable_managed_plugin(
    host: LabHost, image_tar: Path, name: str, state_dir: Path, *settings: str
) -> float:
    """Load the image, make it plugin `name` (tools/build-plugin.sh), point its state mount
    at `state_dir`, apply `settings` (KEY=VALUE, as `docker plugin set` takes them) and
    enable it. Returns how long `docker plugin enable` took, in seconds."""
    create_managed_plugin(host, load_image(host, image_tar), name)
    state_dir.mkdir(parents=True, exist_ok=True)
    host.run(["mkdir", "-p", "/run/vxlan-evt"])  # the api mount's host side
    host.docker("plugin", "set", name, f"state.source={state_dir}", *settings)
    started = time.monotonic()
    host.docker("plugin", "enable", name)
    return time.monotonic() - started
