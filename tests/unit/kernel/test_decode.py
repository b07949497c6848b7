"""The pure decoder against real kernel bytes (tests/unit/fixtures/netlink, see its README).

Host A of the capture rig: lo 1, ul0 2 (veth underlay), vx-42 3 (vxlan VNI 42, MAC
02:00:00:00:01:01, master br-42), br-42 4, ct0 5 (container veth, master br-42).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from vxlan_evt.kernel.decode import (
    NeighbourCounts,
    NetlinkDecoder,
    parse_addresses,
    parse_ifinfomsg,
    parse_links,
)
from vxlan_evt.kernel.wire import (
    IFINFOMSG,
    IFLA_MTU,
    NLMSGHDR,
    RTM_DELLINK,
    RTM_NEWLINK,
    TruncatedError,
    encode_attribute,
    ntf_flag_names,
    nud_state_name,
    split_messages,
)
from vxlan_evt.model.events import (
    AddrEvent,
    DecodeProblem,
    Event,
    FdbAction,
    FdbEvent,
    L2Miss,
    L3Miss,
    LinkEvent,
    NeighEvent,
    Resync,
    attribute,
)
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.testing.pyroute2_reference import pyroute2_links

FIXTURES = Path(__file__).parents[1] / "fixtures" / "netlink"
VX, BR, CT, UL = 3, 4, 5, 2
# Capture order after the link dump: each step's messages assume the ones before.
STEPS = [
    "link_mtu", "link_down", "link_up", "link_alias", "fdb", "neigh",
    "l3miss", "l3miss6", "l2miss", "link_nomaster", "link_del",
]  # fmt: skip


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.bin").read_bytes()


def replay(decoder: NetlinkDecoder, name: str) -> list[Event]:
    """Feed the steps captured before `name`, then return what `name` decodes to."""
    for step in STEPS[: STEPS.index(name)]:
        decoder.feed(load(step))
    return decoder.feed(load(name))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@pytest.fixture
def decoder() -> NetlinkDecoder:
    """A decoder seeded from the link dump taken right after setup."""
    d = NetlinkDecoder(clock=Clock())
    assert d.load_links([load("link_dump")]) == []
    return d


def links(events: list[Event]) -> list[tuple[str, int, tuple[str, ...]]]:
    return [(e.action, e.ifindex, e.changes) for e in events if isinstance(e, LinkEvent)]


def test_link_dump_seeds_the_table(decoder: NetlinkDecoder) -> None:
    table = decoder.links
    assert sorted(table) == [1, UL, VX, BR, CT]
    assert table[VX] == LinkInfo(
        ifindex=VX,
        ifname="vx-42",
        kind="vxlan",
        vni=42,
        mtu=1450,
        master=BR,
        ifalias=None,
        operstate="UNKNOWN",
        up=True,
        mac="02:00:00:00:01:01",
    )
    assert (table[BR].ifname, table[BR].kind, table[BR].master, table[BR].mtu) == (
        "br-42", "bridge", None, 1450,
    )  # fmt: skip
    assert (table[CT].ifname, table[CT].kind, table[CT].master) == ("ct0", "veth", BR)
    assert (table[UL].ifname, table[UL].kind, table[UL].vni) == ("ul0", "veth", None)
    assert table[1].kind is None  # lo has no IFLA_LINKINFO


def test_setup_reports_each_new_link_as_add_first() -> None:
    d = NetlinkDecoder()
    events = d.feed(load("setup"))
    first: dict[int, LinkEvent] = {}
    for e in events:
        if isinstance(e, LinkEvent):
            first.setdefault(e.ifindex, e)
    assert {i: (e.action, e.ifname, e.kind) for i, e in first.items()} == {
        UL: ("add", "ul0", "veth"),
        VX: ("add", "vx-42", "vxlan"),
        BR: ("add", "br-42", "bridge"),
        CT: ("add", "ct0", "veth"),
    }
    assert first[VX].vni == 42
    # Notifications alone rebuild what the dump says (AF_BRIDGE port messages ignored).
    dumped = NetlinkDecoder()
    dumped.load_links([load("link_dump")])
    assert {i: d.links[i] for i in (UL, VX, BR, CT)} == {
        i: dumped.links[i] for i in (UL, VX, BR, CT)
    }
    assert d.statistics().problems == 0


def test_mtu_change_on_vxlan_and_its_bridge(decoder: NetlinkDecoder) -> None:
    events = replay(decoder, "link_mtu")
    assert links(events) == [("mtu", VX, ("mtu",)), ("mtu", BR, ("mtu",))]
    assert [e.mtu for e in events if isinstance(e, LinkEvent)] == [1400, 1400]
    assert decoder.links[VX].mtu == 1400


def test_down_then_up(decoder: NetlinkDecoder) -> None:
    down = replay(decoder, "link_down")
    assert links(down) == [("down", VX, ("down", "change"))]
    event = down[0]
    assert isinstance(event, LinkEvent)
    assert (event.ifname, event.up, event.operstate, event.vni) == ("vx-42", False, "DOWN", 42)
    up = decoder.feed(load("link_up"))
    assert links(up) == [("up", VX, ("up", "change"))]
    assert decoder.links[VX].up and decoder.links[VX].operstate == "UNKNOWN"


def test_alias_is_a_plain_change(decoder: NetlinkDecoder) -> None:
    events = replay(decoder, "link_alias")
    assert links(events) == [("change", VX, ("change",))]
    assert isinstance(events[0], LinkEvent) and events[0].ifalias == "vxlan-evt:n1"


def test_nomaster_is_not_a_deletion(decoder: NetlinkDecoder) -> None:
    # The bridge says goodbye with an AF_BRIDGE RTM_DELLINK: the link must stay.
    events = replay(decoder, "link_nomaster")
    assert links(events) == [("master", CT, ("master",))]
    assert decoder.links[CT].master is None and decoder.links[CT].ifname == "ct0"
    fdb = [(e.action, e.mac, e.master, e.flags) for e in events if isinstance(e, FdbEvent)]
    # Captured bytes carry NDA_MASTER but not NTF_MASTER; the decoder names them "master".
    assert fdb == [
        ("del", "02:42:c0:a8:2a:01", BR, ("master",)),
        ("del", "02:00:00:00:01:03", BR, ("master",)),
    ]


def test_link_delete(decoder: NetlinkDecoder) -> None:
    events = replay(decoder, "link_del")
    assert links(events) == [("down", CT, ("down", "change")), ("del", CT, ("del",))]
    assert isinstance(events[-1], LinkEvent) and events[-1].ifname == "ct0"
    assert CT not in decoder.links


def vx_fdb(action: FdbAction, mac: str, dst: str, vni: int | None = None) -> FdbEvent:
    """A `self permanent` FDB entry on vx-42 as the kernel reports it."""
    return FdbEvent(
        action, VX, "vx-42", 42, mac,
        dst=IPv4Address(dst), remote_vni=vni, port=None if vni is None else 4790,
        flags=("self",), state="NOARP|PERMANENT",
    )  # fmt: skip


def test_vxlan_fdb_add_and_del(decoder: NetlinkDecoder) -> None:
    assert [strip(e) for e in replay(decoder, "fdb")] == [
        vx_fdb("add", "02:42:c0:a8:2a:02", "10.99.0.2"),
        vx_fdb("add", "02:42:c0:a8:2a:03", "10.99.0.3", vni=43),
        vx_fdb("del", "02:42:c0:a8:2a:03", "10.99.0.3", vni=43),
    ]


def strip(event: Event) -> Event:
    """Forget seq/timestamp so expected events can be written literally."""
    return replace(event, seq=0, timestamp=0.0)


def test_neigh_add_change_del(decoder: NetlinkDecoder) -> None:
    ip = IPv4Address("192.168.42.2")
    events = replay(decoder, "neigh")
    assert [(e.action, e.ip, e.mac, e.state) for e in events if isinstance(e, NeighEvent)] == [
        ("add", ip, "02:42:c0:a8:2a:02", "PERMANENT"),
        ("change", ip, "02:42:c0:a8:2a:22", "PERMANENT"),
        ("change", ip, None, "FAILED"),  # `ip neigh del` first marks it failed
        ("del", ip, None, "FAILED"),
    ]
    assert all(isinstance(e, NeighEvent) and (e.ifname, e.vni) == ("vx-42", 42) for e in events)


def test_a_neighbour_dump_resets_add_versus_change(decoder: NetlinkDecoder) -> None:
    first = next(split_messages(load("neigh"))).data
    assert [e.action for e in decoder.feed(first) if isinstance(e, NeighEvent)] == ["add"]
    assert [e.action for e in decoder.feed(first) if isinstance(e, NeighEvent)] == ["change"]
    # The dump (taken later) holds 192.168.42.3 but not .2: .2 is new again.
    assert decoder.load_neighbours([load("neigh_dump")]) == NeighbourCounts(neighbours=3, fdb=0)
    assert [e.action for e in decoder.feed(first) if isinstance(e, NeighEvent)] == ["add"]


def test_fdb_dump_is_counted_not_as_neighbours(decoder: NetlinkDecoder) -> None:
    counts = decoder.load_neighbours([load("neigh_dump"), load("fdb_dump")])
    assert counts == NeighbourCounts(neighbours=3, fdb=13)


def test_l3_miss_ipv4(decoder: NetlinkDecoder) -> None:
    events = replay(decoder, "l3miss")
    assert [strip(e) for e in events] == [
        L3Miss(VX, "vx-42", 42, IPv4Address("192.168.42.2")),
        L3Miss(VX, "vx-42", 42, IPv4Address("192.168.42.2")),  # ARP retry: no dedupe
    ]


def test_l3_miss_ipv6(decoder: NetlinkDecoder) -> None:
    events = replay(decoder, "l3miss6")
    assert all(isinstance(e, L3Miss) and e.vni == 42 for e in events)
    assert L3Miss(VX, "vx-42", 42, IPv6Address("fd42::2")) in [strip(e) for e in events]


def test_l2_miss(decoder: NetlinkDecoder) -> None:
    events = [strip(e) for e in replay(decoder, "l2miss")]
    assert events[0] == L2Miss(VX, "vx-42", 42, "02:42:c0:a8:2a:99")
    assert [e for e in events if isinstance(e, L2Miss)] == [events[0]]


def test_miss_on_an_unknown_link_still_decodes() -> None:
    events = NetlinkDecoder().feed(load("l2miss"))
    assert isinstance(events[0], L2Miss)
    assert (events[0].ifindex, events[0].ifname, events[0].vni) == (VX, None, None)


def test_events_are_stamped_in_order() -> None:
    d = NetlinkDecoder(clock=Clock())
    events = d.feed(load("l3miss")) + d.feed(load("l2miss"))
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.timestamp for e in events] == [1000.5, 1001.0, 1001.5, 1002.0]
    assert d.stamp(Resync(1, 1)).seq == 5


def test_all_fixture_events_are_json_safe(decoder: NetlinkDecoder) -> None:
    names = ["link_mtu", "link_down", "link_up", "link_alias", "fdb", "neigh", "l3miss"]
    names += ["l3miss6", "l2miss", "link_nomaster", "link_del"]
    for name in names:
        for event in decoder.feed(load(name)):
            document = json.loads(json.dumps(event.to_dict()))
            assert document["type"] == event.type and document["seq"] == event.seq
    assert decoder.statistics().problems == 0


def test_to_dict_shape() -> None:
    event = L3Miss(VX, "vx-42", 42, ip_address("fd42::2"), seq=7, timestamp=1.5)
    assert event.to_dict() == {
        "type": "l3miss", "seq": 7, "timestamp": 1.5, "network_id": None, "endpoint_id": None,
        "foreign": True, "ifindex": VX, "ifname": "vx-42", "vni": 42, "ip": "fd42::2",
    }  # fmt: skip
    link = LinkEvent("up", 1, "lo", None, None, 65536, None, None, "UNKNOWN", changes=("up",))
    assert link.to_dict()["changes"] == ["up"]


def bad_messages() -> Iterator[bytes]:
    header = struct.Struct("=IHHII")
    yield header.pack(16, 28, 0, 0, 0)  # RTM_NEWNEIGH without its ndmsg
    yield header.pack(20, 16, 0, 0, 0) + b"abcd"  # RTM_NEWLINK, ifinfomsg cut short
    yield header.pack(64, 30, 0, 0, 0) + bytes(8)  # claims more than there is
    ndmsg = struct.pack("=BxxxiHBB", 2, 3, 4, 0, 1)
    yield header.pack(36, 30, 0, 0, 0) + ndmsg + struct.pack("=HH", 99, 1) + bytes(4)  # bad NLA
    yield header.pack(36, 30, 0, 0, 0) + ndmsg + struct.pack("=HH", 7, 1) + bytes(4)  # 3-byte IP
    yield bytes(7)  # not even a header


@pytest.mark.parametrize("data", list(bad_messages()))
def test_garbage_becomes_a_counted_problem(data: bytes) -> None:
    d = NetlinkDecoder()
    events = d.feed(data)
    assert len(events) == 1 and isinstance(events[0], DecodeProblem)
    assert events[0].raw_hex and d.statistics().problems == 1


def test_good_messages_before_garbage_survive(decoder: NetlinkDecoder) -> None:
    events = decoder.feed(load("l3miss") + b"\x01\x02\x03")
    assert [type(e) for e in events] == [L3Miss, L3Miss, DecodeProblem]


def test_other_message_types_are_ignored() -> None:
    d = NetlinkDecoder()
    new_addr = struct.pack("=IHHII", 24, 20, 0, 0, 0) + struct.pack("=BBBBI", 2, 24, 0, 0, 3)
    assert d.feed(new_addr) == []
    assert d.statistics().ignored == 1


def test_split_messages_on_concatenated_datagrams() -> None:
    data = load("l3miss") + load("l2miss")
    assert [h.msg_type for h in split_messages(data)] == [30, 30, 30, 30]
    with pytest.raises(TruncatedError):
        list(split_messages(data[:-1]))


def test_resync_dump_reports_what_changed(decoder: NetlinkDecoder) -> None:
    view = decoder.links  # a live view, as the engine keeps it
    replay(decoder, "link_del")  # every step: MTU 1400, alias set, ct0 gone
    events = decoder.load_links([load("link_dump")], report_changes=True)
    assert sorted(links(events)) == [
        ("add", CT, ("add",)),
        ("mtu", VX, ("mtu", "change")),  # the alias is gone too
        ("mtu", BR, ("mtu",)),
    ]
    assert decoder.links[VX].ifalias is None and decoder.links[VX].mtu == 1450
    assert view[VX].mtu == 1450 and CT in view
    gone = decoder.load_links([], report_changes=True)
    assert sorted(e.ifindex for e in gone if isinstance(e, LinkEvent) and e.action == "del") == [
        1, UL, VX, BR, CT,
    ]  # fmt: skip
    assert decoder.links == {}


def test_state_and_flag_names() -> None:
    assert nud_state_name(0) == "NONE"
    assert nud_state_name(0x80) == "PERMANENT"
    assert nud_state_name(0x04) == "STALE"
    assert nud_state_name(0xC0) == "NOARP|PERMANENT"
    assert ntf_flag_names(0x02) == ("self",)
    assert ntf_flag_names(0x14) == ("master", "extern_learn")


def test_event_validation() -> None:
    with pytest.raises(ValueError, match="MAC"):
        L2Miss(3, "vx-42", 42, "02:42:C0:A8:2A:99")
    with pytest.raises(ValueError, match="action"):
        FdbEvent("replace", 3, "vx-42", 42, "02:42:c0:a8:2a:99")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="action"):
        LinkEvent("add", 1, "lo", None, None, None, None, None, None, changes=("moved",))


def test_attribute_marks_owned_links() -> None:
    miss = L3Miss(VX, "vx-42", 42, IPv4Address("192.168.42.2"))
    owned: dict[int | str, tuple[str, str | None]] = {VX: ("net1", None), "ct0": ("net1", "ep1")}
    assert attribute(miss, owned) == L3Miss(
        VX, "vx-42", 42, IPv4Address("192.168.42.2"), network_id="net1", foreign=False
    )
    by_name = attribute(
        NeighEvent("add", 99, "ct0", IPv4Address("192.168.42.1"), None, "STALE"), owned
    )
    assert (by_name.network_id, by_name.endpoint_id, by_name.foreign) == ("net1", "ep1", False)
    port = FdbEvent("add", 77, "veth9", None, "02:42:c0:a8:2a:01", master=VX)
    assert attribute(port, owned).network_id == "net1"  # via its master
    stranger = L2Miss(12, "vx-7", 7, "02:42:c0:a8:2a:99")
    assert attribute(stranger, owned) is stranger
    resync = Resync(1, 1)
    assert attribute(resync, owned) is resync


# --- addresses (captured by `tools/capture_netlink.py --addresses`) ----------------------------


def test_address_dump_then_add_add6_and_del_on_the_bridge(decoder: NetlinkDecoder) -> None:
    assert decoder.load_addresses([load("addr_dump")]) == []
    assert (ip_address("10.99.0.1"), 24) in decoder.addresses[UL]
    assert BR not in decoder.addresses or not any(
        ip.version == 4 for ip, _ in decoder.addresses[BR]
    )
    (added,) = decoder.feed(load("addr_add"))
    assert isinstance(added, AddrEvent)
    assert (added.action, added.ifindex, added.ifname, added.ip, added.prefixlen) == (
        "add", BR, "br-42", ip_address("192.168.42.200"), 24,
    )  # fmt: skip
    (added6,) = decoder.feed(load("addr_add6"))
    assert isinstance(added6, AddrEvent) and added6.ip == ip_address("fd42::200")
    assert decoder.feed(load("addr_add")) == []  # the same address again is no news
    (removed,) = decoder.feed(load("addr_del"))
    assert isinstance(removed, AddrEvent) and removed.action == "del"
    assert decoder.addresses[BR] == {(ip_address("fd42::200"), 64)}


def test_an_address_dump_after_losses_reports_the_differences(decoder: NetlinkDecoder) -> None:
    decoder.load_addresses([load("addr_dump")])
    decoder.feed(load("addr_add"))
    # The dump from before the add stands in for "the address went away while we lost events".
    events = decoder.load_addresses([load("addr_dump")], report_changes=True)
    assert [(e.action, e.ip) for e in events if isinstance(e, AddrEvent)] == [
        ("del", ip_address("192.168.42.200"))
    ]


def test_the_planner_reads_every_address_of_a_dump(decoder: NetlinkDecoder) -> None:
    decoder.load_addresses([load("addr_dump")])
    found = parse_addresses([load("addr_dump")])
    assert found == {k: set(v) for k, v in decoder.addresses.items() if v}
    assert (ip_address("10.99.0.1"), 24) in found[UL]


def addr_message(msg_type: int, ip: str, flags: int, ifindex: int = BR) -> bytes:
    """An RTM_NEWADDR/RTM_DELADDR for an IPv6 address, with IFA_FLAGS as the kernel sends."""
    body = struct.pack("=BBBBI", 10, 64, flags & 0xFF, 0, ifindex)
    body += struct.pack("=HH", 20, 1) + ip_address(ip).packed  # IFA_ADDRESS
    body += struct.pack("=HHI", 8, 8, flags)  # IFA_FLAGS
    return struct.pack("=IHHII", 16 + len(body), msg_type, 0, 0, 0) + body


def test_a_tentative_or_dad_failed_address_is_not_a_member(decoder: NetlinkDecoder) -> None:
    tentative, dadfailed, permanent = 0x40, 0x08, 0x80
    assert decoder.feed(addr_message(20, "fd42::7", tentative | permanent)) == []
    (added,) = decoder.feed(addr_message(20, "fd42::7", permanent))  # DAD done
    assert isinstance(added, AddrEvent) and added.action == "add"
    (failed,) = decoder.feed(addr_message(20, "fd42::7", dadfailed | permanent))
    assert isinstance(failed, AddrEvent) and failed.action == "del"
    assert (ip_address("fd42::7"), 64) not in decoder.addresses.get(BR, set())


LINK_FIXTURES = ["link_dump", "setup", "link_mtu", "link_alias", "link_down", "link_up",
                 "link_nomaster", "link_del"]  # fmt: skip


@pytest.mark.parametrize("name", LINK_FIXTURES)
def test_the_link_parser_reads_what_pyroute2_reads(name: str) -> None:
    data = (FIXTURES / f"{name}.bin").read_bytes()
    known = parse_links([(FIXTURES / "link_dump.bin").read_bytes()])
    ours = [
        parse_ifinfomsg(header.data, known)
        for header in split_messages(data)
        if header.msg_type in (RTM_NEWLINK, RTM_DELLINK)
    ]
    assert ours == pyroute2_links([data], known)
    assert any(link is not None for link in ours), "the fixture holds links"


def test_the_captured_vxlan_link() -> None:
    links = parse_links([(FIXTURES / "link_dump.bin").read_bytes()])
    vx, by_name = links[VX], {link.ifname: link for link in links.values()}
    assert (vx.ifname, vx.kind, vx.vni, vx.master) == ("vx-42", "vxlan", 42, BR)
    assert by_name["br-42"].kind == "bridge" and by_name["lo"].mtu == 65536


def test_a_link_without_a_name_is_refused() -> None:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 7, 0, 0) + encode_attribute(IFLA_MTU, b"\0\5\0\0")
    message = NLMSGHDR.pack(NLMSGHDR.size + len(body), RTM_NEWLINK, 0, 1, 0) + body
    with pytest.raises(ValueError, match="link 7 without IFLA_IFNAME"):
        parse_ifinfomsg(message)
    decoder = NetlinkDecoder()
    (problem,) = decoder.feed(message)
    assert isinstance(problem, DecodeProblem) and "IFLA_IFNAME" in problem.reason
