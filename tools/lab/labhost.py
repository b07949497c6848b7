#!/usr/bin/env python3
"""Lab hosts by hand (as root): the same rig as the e2e tests, kept alive between commands.

    tools/lab/labhost.py up a --fabric      # netns + private mounts + dockerd + local/busybox, eth1
    tools/lab/labhost.py up b --fabric      # a second host on the same underlay switch
    tools/lab/labhost.py exec a -- docker ps          # any command inside host a (DOCKER_HOST set)
    tools/lab/labhost.py exec a                       # a shell inside host a
    tools/lab/labhost.py list
    tools/lab/labhost.py down a             # or: down --all (hosts and the fabric)
    tools/lab/labhost.py cleanup            # remove what crashed test runs left behind

Inside a host, a plugin listening on /run/docker/plugins/vxlan.sock is found by that host's
dockerd only. Hosts made here are "persistent": test sessions never clean them up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vxlan_evt.testing.busybox import busybox_image
from vxlan_evt.testing.fabric import FABRIC_PREFIX, Fabric
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labowner import OwnerRecord, cleanup_stale
from vxlan_evt.testing.labsys import LAB_PREFIX, LabError, default_base_dir


def kept(prefix: str) -> list[Path]:
    """Persistent lab dirs whose netns name starts with `prefix`."""
    base = default_base_dir()
    dirs = sorted(base.glob(f"{prefix}*")) if base.is_dir() else []
    return [d for d in dirs if (r := OwnerRecord.load(d)) is not None and r.owner_pid is None]


def find_host(name: str) -> LabHost:
    dirs = kept(f"{LAB_PREFIX}{name}-")
    if len(dirs) != 1:
        raise LabError(f"expected one kept lab host named {name!r}, found {len(dirs)}")
    return LabHost.adopt(dirs[0])


def cmd_up(args: argparse.Namespace) -> None:
    if kept(f"{LAB_PREFIX}{args.name}-"):
        raise LabError(f"lab host {args.name!r} already exists")
    host = LabHost(args.name, persistent=True)
    try:
        if args.fabric:
            fabrics = kept(FABRIC_PREFIX)
            fabric = Fabric.adopt(fabrics[0]) if fabrics else Fabric(persistent=True)
            print(f"eth1 {fabric.attach(host)}/24 on fabric {fabric.netns}")
        if not args.no_dockerd:
            print(f"dockerd {host.start_dockerd()}  DOCKER_HOST={host.docker_host}")
            print(f"image {busybox_image(host)}")
    except BaseException:
        host.close()
        raise
    print(f"netns {host.netns}\ndir {host.dir}\nplugins {host.plugins_dir}")


def cmd_exec(args: argparse.Namespace) -> None:
    host = find_host(args.name)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    argv = argv or [os.environ.get("SHELL", "/bin/sh")]
    env = os.environ | host.docker_env() | {"VXEVT_LAB_HOST": host.name}
    command = host.command(argv)
    os.execvpe(command[0], command, env)


def cmd_list(args: argparse.Namespace) -> None:
    base = default_base_dir()
    for lab_dir in sorted(base.glob(f"{LAB_PREFIX}*")) if base.is_dir() else []:
        record = OwnerRecord.load(lab_dir)
        if record is None:
            print(f"{lab_dir.name}  (no owner record: stale)")
            continue
        owner = "kept" if record.owner_pid is None else f"owner pid {record.owner_pid}"
        state = "live" if record.owner_pid is None or record.owner_alive() else "stale"
        print(f"{lab_dir.name}  {owner}  {state}")


def cmd_down(args: argparse.Namespace) -> None:
    if not args.all and not args.name:
        raise LabError("down needs a host name or --all")
    prefix = f"{LAB_PREFIX}{args.name}-" if args.name else LAB_PREFIX
    for lab_dir in kept(prefix):
        if lab_dir.name.startswith(FABRIC_PREFIX):
            continue
        LabHost.adopt(lab_dir).close()
        print(f"removed {lab_dir.name}")
    if args.all:
        for lab_dir in kept(FABRIC_PREFIX):
            Fabric.adopt(lab_dir).close()
            print(f"removed {lab_dir.name}")


def cmd_cleanup(args: argparse.Namespace) -> None:
    for name in cleanup_stale(include_persistent=args.all):
        print(f"removed {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create a kept lab host with its dockerd")
    up.add_argument("name")
    up.add_argument("--fabric", action="store_true", help="plug eth1 into the shared underlay")
    up.add_argument("--no-dockerd", action="store_true")
    up.set_defaults(func=cmd_up)
    ex = sub.add_parser("exec", help="run a command (default: a shell) inside a host")
    ex.add_argument("name")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    sub.add_parser("list", help="lab namespaces and who owns them").set_defaults(func=cmd_list)
    down = sub.add_parser("down", help="stop and remove kept hosts")
    down.add_argument("name", nargs="?")
    down.add_argument("--all", action="store_true", help="every kept host and the fabric")
    down.set_defaults(func=cmd_down)
    clean = sub.add_parser("cleanup", help="remove lab namespaces of crashed test runs")
    clean.add_argument("--all", action="store_true", help="kept hosts too")
    clean.set_defaults(func=cmd_cleanup)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("labhost: needs root")
    try:
        args.func(args)
    except LabError as error:
        sys.exit(f"labhost: {error}")


if __name__ == "__main__":
    main()
