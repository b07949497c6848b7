"""The mark vxlan-evt writes into the ifalias of every link it creates.

Cleanup, attribution of events and the choice of ARP answer ports all go by this mark,
never by names alone, so a link vxlan-evt did not create is never touched. The mark
names the daemon instance too (`inst=`, kept in its state file): a start with an empty
or mistyped state dir, or a second daemon on the host, sees another instance's links and
leaves them alone instead of taking them for its own leaks.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIAS_PREFIX = "vxlan-evt"


@dataclass(frozen=True, slots=True)
class Ownership:
    """Decoded ifalias of a link we created."""

    network_id: str
    endpoint_id: str | None = None
    instance: str | None = None  # None: marked before instances existed (0.1.0)


def _instance_field(instance: str | None) -> str:
    return f" inst={instance}" if instance else ""


def network_alias(network_id: str, instance: str | None = None) -> str:
    return f"{ALIAS_PREFIX} net={network_id}{_instance_field(instance)}"


def endpoint_alias(network_id: str, endpoint_id: str, instance: str | None = None) -> str:
    return f"{ALIAS_PREFIX} net={network_id} ep={endpoint_id}{_instance_field(instance)}"


def parse_alias(alias: str | None) -> Ownership | None:
    """The owner written in a link's ifalias, or None for links we did not create."""
    if not alias or not alias.startswith(ALIAS_PREFIX + " "):
        return None
    fields = dict(
        part.split("=", 1) for part in alias[len(ALIAS_PREFIX) + 1 :].split() if "=" in part
    )
    if "net" not in fields:
        return None
    return Ownership(
        network_id=fields["net"], endpoint_id=fields.get("ep"), instance=fields.get("inst")
    )
