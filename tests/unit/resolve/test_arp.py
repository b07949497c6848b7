"""ARP reply / neighbour advertisement frames, byte for byte, and where they may be sent."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
import trio
import trio.testing

from vxlan_evt.cli.main import build_parser, daemon_config
from vxlan_evt.model.events import L2Miss, L3Miss
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.model.state import DriverState, EndpointRecord, NetworkRecord
from vxlan_evt.peers.table import PeerEndpoint, PeerTable
from vxlan_evt.resolve.answerer import ArpAnswerer
from vxlan_evt.resolve.arp import (
    ETH_P_ARP,
    ETH_P_IPV6,
    answer_frame,
    answer_ports,
    build_arp_reply,
    build_neighbor_advert,
    endpoint_ports,
    icmpv6_checksum,
    mac_bytes,
    multicast_mac,
)
from vxlan_evt.resolve.bus import EventBus
from vxlan_evt.resolve.engine import EngineSettings, EventEngine
from vxlan_evt.resolve.resolver import Answer
from vxlan_evt.testing.fake_netlink import FakeNetlink, FakeWorker, RecordingEntries

PEER_MAC = "02:42:c0:a8:2a:02"
PEER_IP = IPv4Address("192.168.42.2")
PEER_IP6 = IPv6Address("fd42::2")
NET = "n" * 64


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace("\n", " "))


# --- frames --------------------------------------------------------------------------------


def test_arp_reply_is_a_broadcast_gratuitous_reply_padded_to_60_bytes() -> None:
    expected = hexbytes(
        "ff ff ff ff ff ff  02 42 c0 a8 2a 02  08 06"  # Ethernet: broadcast, from the peer, ARP
        " 00 01  08 00  06  04  00 02"  # Ethernet/IPv4, lengths 6/4, op 2 = reply
        " 02 42 c0 a8 2a 02  c0 a8 2a 02"  # sender: the peer's MAC and IP
        " 02 42 c0 a8 2a 02  c0 a8 2a 02" + " 00" * 18  # target = sender: a gratuitous reply
    )
    frame = build_arp_reply(PEER_MAC, PEER_IP)
    assert frame == expected
    assert len(frame) == 60


def test_arp_reply_with_explicit_target_and_destination() -> None:
    frame = build_arp_reply(
        PEER_MAC,
        PEER_IP,
        target_mac="02:42:c0:a8:2a:01",
        target_ip=IPv4Address("192.168.42.1"),
        dst_mac="02:42:c0:a8:2a:01",
    )
    assert frame[:6] == hexbytes("02 42 c0 a8 2a 01")
    assert frame[32:42] == hexbytes("02 42 c0 a8 2a 01 c0 a8 2a 01")


def test_neighbour_advertisement_byte_for_byte() -> None:
    expected = hexbytes(
        "33 33 00 00 00 01  02 42 c0 a8 2a 02  86 dd"  # to all-nodes, from the peer, IPv6
        " 60 00 00 00  00 20  3a  ff"  # version 6, payload 32, ICMPv6, hop limit 255
        " fd 42 00 00 00 00 00 00 00 00 00 00 00 00 00 02"  # from the target address
        " ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01"  # to ff02::1
        " 88 00 6f 29  20 00 00 00"  # type 136, code 0, checksum, flags: override only
        " fd 42 00 00 00 00 00 00 00 00 00 00 00 00 00 02"  # target
        " 02 01 02 42 c0 a8 2a 02"  # option 2 (target link-layer address), 8 bytes
    )
    assert build_neighbor_advert(PEER_MAC, PEER_IP6) == expected


def test_neighbour_advertisement_checksum_verifies() -> None:
    """The receiver's check: the sum over pseudo-header and message (checksum in) is 0xffff."""
    frame = build_neighbor_advert(PEER_MAC, PEER_IP6, router=True, override=False)
    message = frame[54:]
    assert message[4] == 0x80  # router flag, no override
    assert icmpv6_checksum(PEER_IP6, IPv6Address("ff02::1"), message) == 0


def test_checksum_by_hand() -> None:
    """Between :: and ::, only the pseudo-header's length and next header (58) add up."""
    zero = IPv6Address("::")
    assert icmpv6_checksum(zero, zero, b"") == 0xFFFF - 58
    # An odd byte is padded with a zero on the right: 0x0100, plus length 1, plus 58.
    assert icmpv6_checksum(zero, zero, b"\x01") == 0xFFFF - (0x0100 + 1 + 58)


def test_unicast_neighbour_advertisement() -> None:
    dst = IPv6Address("fd42::1")
    frame = build_neighbor_advert(PEER_MAC, PEER_IP6, dst_ip=dst, dst_mac="02:42:c0:a8:2a:01")
    assert frame[:6] == hexbytes("02 42 c0 a8 2a 01")
    assert frame[38:54] == dst.packed


def test_multicast_mac_of_solicited_node_address() -> None:
    assert multicast_mac(IPv6Address("ff02::1:ff00:2")) == "33:33:ff:00:00:02"


@pytest.mark.parametrize("bad", ["", "02:42", "02:42:c0:a8:2a:02:00", "zz:42:c0:a8:2a:02"])
def test_mac_bytes_rejects_junk(bad: str) -> None:
    with pytest.raises(ValueError):
        mac_bytes(bad)


def test_answer_frame_picks_the_family() -> None:
    assert answer_frame(PEER_MAC, PEER_IP) == (ETH_P_ARP, build_arp_reply(PEER_MAC, PEER_IP))
    assert answer_frame(PEER_MAC, PEER_IP6)[0] == ETH_P_IPV6


# --- where answers go ------------------------------------------------------------------------


def link(
    ifindex: int,
    name: str,
    kind: str,
    master: int | None = None,
    *,
    up: bool = True,
    alias: str | None = None,
) -> LinkInfo:
    return LinkInfo(ifindex, name, kind, 42 if kind == "vxlan" else None, 1500, master, alias,
                    "UP", up, None)  # fmt: skip


LINKS = {
    1: link(1, "lo", "loopback"),
    2: link(2, "ul0", "veth"),  # the underlay: not a bridge port
    3: link(3, "vx-42", "vxlan", 4),
    4: link(4, "br-42", "bridge"),
    5: link(5, "ct0", "veth", 4),
    6: link(6, "ct1", "veth", 4),
    7: link(7, "ct2", "veth", 4, up=False),  # down: sending would fail
    8: link(8, "tap0", "tun", 4),  # a bridge port, but not a container veth
    9: link(9, "ct9", "veth", 10),  # another bridge's port
    10: link(10, "br-9", "bridge"),
    11: link(11, "vx-9", "vxlan", 10),
    12: link(12, "vx-nb", "vxlan"),  # not on a bridge
}


def test_every_up_veth_port_of_the_vxlan_devices_bridge() -> None:
    assert answer_ports(LINKS, 3) == ("ct0", "ct1")
    assert answer_ports(LINKS, 11) == ("ct9",)


def test_never_the_bridge_the_vxlan_device_or_the_underlay() -> None:
    chosen = {name for ifindex in LINKS for name in answer_ports(LINKS, ifindex)}
    assert chosen.isdisjoint({"br-42", "vx-42", "ul0", "br-9", "vx-9", "lo", "tap0"})


def test_no_ports_for_an_unbridged_or_unknown_device() -> None:
    assert answer_ports(LINKS, 12) == ()
    assert answer_ports(LINKS, 99) == ()


def test_endpoint_names_narrow_the_choice() -> None:
    assert answer_ports(LINKS, 3, ["ct1", "ct2", "ct9", "gone0"]) == ("ct1",)
    assert answer_ports(LINKS, 3, []) == ()


def test_endpoint_ports_come_from_the_state_for_our_networks() -> None:
    links = {**LINKS, 3: link(3, "vx-42", "vxlan", 4, alias=f"vxlan-evt net={NET}")}
    network = NetworkRecord(NET, {"VxlanId": "42"}, 42, "vx-42", "br-42", 1450, 1450)
    endpoint = EndpointRecord(NET, "e" * 64, "vheeeeeeeeeee", "vceeeeeeeeeee", PEER_MAC)
    other = EndpointRecord("m" * 64, "f" * 64, "vhfffffffffff", "vcfffffffffff", PEER_MAC)
    state = DriverState({NET: network}, {endpoint.endpoint_id: endpoint, "f" * 64: other})
    assert endpoint_ports(3, links, state) == ["vheeeeeeeeeee"]
    assert endpoint_ports(3, LINKS, state) is None  # hand-made: every veth port
    assert endpoint_ports(3, links, DriverState()) is None  # alias of a forgotten network


# --- the answerer and the engine hook ----------------------------------------------------------


class RecordingSender:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.sent: list[tuple[str, int, bytes]] = []
        self.fail = fail or set()

    async def send(self, ifname: str, ethertype: int, frame: bytes) -> None:
        if ifname in self.fail:
            raise OSError(100, "Network is down")
        self.sent.append((ifname, ethertype, frame))


PEER = PeerEndpoint(42, PEER_IP, PEER_MAC, IPv4Address("10.99.0.2"))


def answerer(sender: RecordingSender, metrics: Metrics) -> ArpAnswerer:
    return ArpAnswerer(sender, lambda: LINKS, lambda _ifindex: None, metrics)  # type: ignore[arg-type]


async def test_answerer_sends_on_each_port_and_counts() -> None:
    sender, metrics = RecordingSender(fail={"ct1"}), Metrics()
    miss = L3Miss(3, "vx-42", 42, PEER_IP)
    await answerer(sender, metrics)([(miss, Answer(PEER, ()))])
    assert sender.sent == [("ct0", ETH_P_ARP, build_arp_reply(PEER_MAC, PEER_IP))]
    text = metrics.render().decode()
    assert 'vxlan_evt_arp_answers_total{family="ipv4",result="sent"} 1.0' in text
    assert 'vxlan_evt_arp_answers_total{family="ipv4",result="failed"} 1.0' in text


async def test_answerer_ignores_l2_misses_and_counts_missing_ports() -> None:
    sender, metrics = RecordingSender(), Metrics()
    hook = answerer(sender, metrics)
    await hook([(L2Miss(3, "vx-42", 42, PEER_MAC), Answer(PEER, ()))])
    await hook([(L3Miss(12, "vx-nb", 42, PEER_IP), Answer(PEER, ()))])
    assert sender.sent == []
    assert hook.stats.no_port == 1


@pytest.mark.parametrize(("fail", "called"), [(False, 1), (True, 0)])
async def test_engine_calls_hooks_only_for_written_answers(fail: bool, called: int) -> None:
    calls: list[list[tuple[Any, Answer]]] = []

    async def hook(answered: Any) -> None:
        calls.append(list(answered))

    async def broken(answered: Any) -> None:
        raise RuntimeError("a hook bug must not stop the resolver")

    engine = EventEngine(
        EventBus(),
        FakeWorker(
            FakeNetlink(entries=RecordingEntries(refuse_writes="refused" if fail else None))
        ),  # type: ignore[arg-type]
        Metrics(),
        lambda: PeerTable.build([PEER]),
        EngineSettings(log_events=False),
        hooks=[broken, hook],
    )
    engine.on_event(L3Miss(3, "vx-42", 42, PEER_IP))
    engine.on_event(L3Miss(3, "vx-42", 42, ipaddress.ip_address("192.168.42.77")))  # unknown
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run_resolver)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert len(calls) == called
    if called:
        ((miss, answer),) = calls[0]
        assert miss.ip == PEER_IP and answer.peer == PEER


@pytest.mark.parametrize(("argv", "on"), [([], True), (["--no-arp-answer"], False)])
def test_arp_answer_flag(argv: list[str], on: bool) -> None:
    args = build_parser().parse_args(["serve", *argv])
    assert daemon_config(args).arp_answer is on
