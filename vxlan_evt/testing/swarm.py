"""A Docker swarm of lab hosts over the lab fabric, and what a test asks of its services.

The first host inits the swarm as manager, the others join as workers, all advertising
their fabric address. Swarm's own overlay data path is moved to UDP 4790
(`--data-path-port`): 4789 is the VXLAN port of our networks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from vxlan_evt.testing.daemon import wait_for
from vxlan_evt.testing.fabric import Fabric
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labsys import LabError

SWARM_DATA_PATH_PORT = 4790


def form_swarm(hosts: Sequence[LabHost], fabric: Fabric) -> LabHost:
    """`docker swarm init` on hosts[0], `join` from the rest; returns the manager."""
    manager, *workers = hosts
    address = fabric.address_of(manager)
    manager.docker(
        "swarm", "init", "--advertise-addr", address,
        "--data-path-port", str(SWARM_DATA_PATH_PORT),
    )  # fmt: skip
    token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
    for worker in workers:
        worker.docker(
            "swarm", "join", "--token", token,
            "--advertise-addr", fabric.address_of(worker), f"{address}:2377",
        )  # fmt: skip
    wait_until(lambda: ready_nodes(manager) == len(hosts), f"{len(hosts)} ready swarm nodes")
    return manager


def ready_nodes(manager: LabHost) -> int:
    out = manager.docker("node", "ls", "--format", "{{.Status}}").stdout
    return sum(line.strip() == "Ready" for line in out.splitlines())


def running_tasks(manager: LabHost, service: str) -> list[dict[str, str]]:
    """The service's tasks whose current state is Running (as `docker service ps` says)."""
    out = manager.docker(
        "service", "ps", service, "--no-trunc", "--filter", "desired-state=running",
        "--format", "{{json .}}",
    ).stdout  # fmt: skip
    tasks = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [task for task in tasks if task["CurrentState"].startswith("Running")]


def task_container(host: LabHost, service: str) -> str:
    """The ID of the (one) container of `service` running on `host`."""
    ids = host.docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"
    ).stdout.split()
    if len(ids) != 1:
        raise LabError(f"[{host.name}] {len(ids)} containers of service {service}, not 1")
    return ids[0]


def wait_until(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll `check()` until it holds; LabError naming `what` after `timeout` seconds."""
    if not wait_for(check, timeout=timeout, interval=0.2):
        raise LabError(f"no {what} after {timeout:.0f} s")
