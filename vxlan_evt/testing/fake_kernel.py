"""An in-memory stand-in for the kernel, for unit tests of the driver's logic only.

Real links are tested in tests/integration (netns) and tests/e2e (dockerd).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import trio

from vxlan_evt.model.errors import SystemFailure
from vxlan_evt.model.links import HostFacts, LinkInfo
from vxlan_evt.model.plan import (
    Action,
    AddAddress,
    CreateBridge,
    CreateVeth,
    CreateVxlan,
    DeleteLink,
    SetMaster,
    SetUp,
)


@dataclass
class FakeKernel:
    links: dict[str, LinkInfo] = field(default_factory=dict)
    addresses: dict[str, set[str]] = field(default_factory=dict)
    peers: dict[str, str] = field(default_factory=dict)
    applied: list[Action] = field(default_factory=list)
    fail_on: type | None = None  # refuse (and roll back) the first action of this type
    default_route_dev: str | None = None
    after_apply: Callable[[], None] | None = None  # e.g. cancel the caller mid-call

    def add_link(self, name: str, **kwargs: object) -> LinkInfo:
        link = LinkInfo(ifindex=len(self.links) + 100, ifname=name, **kwargs)  # type: ignore[arg-type]
        self.links[name] = link
        return link

    async def read_facts(self) -> HostFacts:
        return HostFacts(
            links=dict(self.links),
            addresses={name: frozenset(found) for name, found in self.addresses.items()},
            default_route_dev=self.default_route_dev,
        )

    async def apply(self, actions: Sequence[Action]) -> None:
        await trio.lowlevel.checkpoint()  # as the real one (a worker thread) does
        self._apply(actions)
        if self.after_apply is not None:
            self.after_apply()

    def _apply(self, actions: Sequence[Action]) -> None:
        created: list[str] = []
        for action in actions:
            if self.fail_on is not None and isinstance(action, self.fail_on):
                for name in created:
                    self._delete(name)
                raise SystemFailure(f"kernel refused {type(action).__name__}")
            self.applied.append(action)
            match action:
                case CreateBridge():
                    self.add_link(action.name, kind="bridge", ifalias=action.alias, mtu=action.mtu)
                    created.append(action.name)
                case CreateVxlan():
                    master = self.links[action.master].ifindex
                    self.add_link(
                        action.name,
                        kind="vxlan",
                        ifalias=action.alias,
                        mtu=action.mtu,
                        vni=action.spec.vni,
                        master=master,
                    )
                    created.append(action.name)
                case CreateVeth():
                    master = self.links[action.master].ifindex
                    self.add_link(
                        action.host_ifname,
                        kind="veth",
                        ifalias=action.alias,
                        mtu=action.mtu,
                        master=master,
                    )
                    self.add_link(action.container_ifname, kind="veth", mtu=action.mtu)
                    self.peers[action.host_ifname] = action.container_ifname
                    created.append(action.host_ifname)
                case AddAddress():
                    self.addresses.setdefault(action.ifname, set()).add(action.cidr)
                case SetMaster():
                    master = self.links[action.master].ifindex
                    self.links[action.ifname] = replace(self.links[action.ifname], master=master)
                case SetUp():
                    self.links[action.ifname] = replace(self.links[action.ifname], up=True)
                case DeleteLink():
                    link = self.links.get(action.ifname)
                    if link is not None and link.ifalias == action.alias:
                        self._delete(action.ifname)

    def _delete(self, name: str) -> None:
        self.links.pop(name, None)
        self.addresses.pop(name, None)
        peer = self.peers.pop(name, None)
        if peer is not None:
            self.links.pop(peer, None)

    def owned(self) -> set[str]:
        return {name for name, link in self.links.items() if link.ifalias}
