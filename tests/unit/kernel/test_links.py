"""Carrying out a plan: whatever fails, the links this plan created are deleted again."""

from __future__ import annotations

from typing import Any

import pytest

from vxlan_evt.kernel.links import apply_actions
from vxlan_evt.model.errors import SystemFailure
from vxlan_evt.model.plan import CreateBridge


class RecordingRoute:
    """Stands in for pyroute2's IPRoute: records link calls, knows the links it added."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.added: dict[str, int] = {}

    def link(self, command: str, **kwargs: Any) -> None:
        self.calls.append((command, kwargs))
        if command == "add":
            self.added[kwargs["ifname"]] = 100 + len(self.added)

    def link_lookup(self, *, ifname: str) -> list[int]:
        return [self.added[ifname]] if ifname in self.added else []


def bridge(name: str) -> CreateBridge:
    return CreateBridge(name=name, mtu=1450, hardware_addr=None, txqlen=None, alias="vxlan-evt")


def test_an_unexpected_error_still_rolls_back() -> None:
    """A NUL in a name makes if_nametoindex raise ValueError, not OSError: before, nothing
    was deleted and an unmarked bridge stayed behind."""
    route = RecordingRoute()
    with pytest.raises(ValueError, match="null"):
        apply_actions(route, [bridge("br\0evil")])
    assert ("del", {"index": 100}) in route.calls


def test_a_vanished_link_is_a_system_failure_and_rolls_back() -> None:
    route = RecordingRoute()
    with pytest.raises(SystemFailure, match="vanished while being configured"):
        apply_actions(route, [bridge("vxevt-nosuch0")])
    assert ("del", {"index": 100}) in route.calls
