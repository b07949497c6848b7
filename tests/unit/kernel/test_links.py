"""The hand-parsed link dump gives exactly the facts pyroute2's decoder gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from vxlan_evt.kernel.links import _link_fact, parse_link_facts

FIXTURES = Path(__file__).parents[1] / "fixtures" / "netlink"


@pytest.mark.parametrize("name", ["link_dump", "setup", "link_mtu", "link_alias", "link_down"])
def test_same_facts_as_pyroute2(name: str) -> None:
    data = (FIXTURES / f"{name}.bin").read_bytes()
    expected = {}
    for message in MarshalRtnl().parse(data):
        if message["header"]["type"] == 16 and message["family"] != 7:
            fact = _link_fact(message)
            expected[fact.name] = fact
    assert expected, "the fixture holds links"
    assert parse_link_facts([data]) == expected


def test_the_captured_vxlan_link() -> None:
    facts = parse_link_facts([(FIXTURES / "link_dump.bin").read_bytes()])
    vx = facts["vx-42"]
    assert (vx.kind, vx.vni, vx.index, vx.master) == ("vxlan", 42, 3, 4)
    assert facts["br-42"].kind == "bridge" and facts["lo"].mtu == 65536
