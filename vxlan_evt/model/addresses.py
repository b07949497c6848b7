"""Addresses: the one spelling of an IP address type, and link-layer addresses with a meaning."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

# An FDB entry for the all-zeros MAC floods broadcast and unknown traffic to its VTEP
# (head-end replication); FRR and `bridge fdb append` write it the same way.
ZERO_MAC = "00:00:00:00:00:00"
