from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from vxlan_evt.kernel.tables import permanent_entries
from vxlan_evt.model.addresses import ZERO_MAC
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.peers.table import PeerEndpoint, PeerTable
from vxlan_evt.resolve.preprogram import Device, desired_entries, plan_sync
from vxlan_evt.resolve.resolver import answer_l2_miss, answer_l3_miss

A = PeerEndpoint(42, ip_address("10.42.0.2"), "02:42:0a:2a:00:02", ip_address("192.0.2.2"))
B = PeerEndpoint(42, ip_address("10.42.0.3"), "02:42:0a:2a:00:03", ip_address("192.0.2.3"))
LOCAL = PeerEndpoint(42, ip_address("10.42.0.1"), "02:42:0a:2a:00:01", ip_address("192.0.2.1"))
OTHER_VNI = PeerEndpoint(7, ip_address("10.7.0.2"), "02:42:0a:07:00:02", ip_address("192.0.2.2"))
TABLE = PeerTable.build([A, B, LOCAL, OTHER_VNI])
UNICAST = Device(42, ifindex=5, head_end_replication=True, local_vteps=frozenset({LOCAL.vtep}))


def test_each_remote_endpoint_gets_fdb_and_neigh_and_each_vtep_a_flood_entry() -> None:
    wanted = desired_entries(TABLE, [UNICAST])
    assert wanted == {
        FdbEntry(5, A.mac, A.vtep),
        NeighEntry(5, A.ip, A.mac),
        FdbEntry(5, B.mac, B.vtep),
        NeighEntry(5, B.ip, B.mac),
        FdbEntry(5, ZERO_MAC, A.vtep),
        FdbEntry(5, ZERO_MAC, B.vtep),
    }


def test_multicast_networks_get_no_flood_entries() -> None:
    multicast = Device(42, 5, head_end_replication=False, local_vteps=frozenset({LOCAL.vtep}))
    assert not any(e.mac == ZERO_MAC for e in desired_entries(TABLE, [multicast]))


def test_on_demand_devices_get_only_the_flood_entries() -> None:
    on_demand = Device(42, 5, True, frozenset({LOCAL.vtep}), per_endpoint=False)
    assert desired_entries(TABLE, [on_demand]) == {
        FdbEntry(5, ZERO_MAC, A.vtep),
        FdbEntry(5, ZERO_MAC, B.vtep),
    }


def test_minimal_writes_and_only_owned_deletes() -> None:
    wanted = desired_entries(PeerTable.build([A]), [UNICAST])
    stale = NeighEntry(5, B.ip, B.mac)  # we wrote it; B is gone from the table
    foreign = FdbEntry(5, "02:00:00:00:00:99", ip_address("192.0.2.99"))  # someone else's
    present: set[Entry] = {FdbEntry(5, A.mac, A.vtep), stale, foreign}
    plan = plan_sync(wanted, present, owned={FdbEntry(5, A.mac, A.vtep), stale})
    assert plan.write == wanted - present
    assert plan.delete == {stale}
    assert not plan_sync(wanted, wanted, owned=set(wanted))  # converged: nothing to do


def test_a_moved_ip_is_rewritten_not_deleted() -> None:
    moved = PeerEndpoint(42, A.ip, "02:42:0a:2a:00:99", A.vtep)
    wanted = desired_entries(PeerTable.build([moved]), [UNICAST])
    old = NeighEntry(5, A.ip, A.mac)
    plan = plan_sync(wanted, {old}, owned={old})
    assert NeighEntry(5, A.ip, moved.mac) in plan.write
    assert old not in plan.delete


def test_permanent_entries_of_our_devices_from_captured_dumps() -> None:
    fixtures = Path(__file__).parents[1] / "fixtures" / "netlink"
    dumps = [(fixtures / f"{name}.bin").read_bytes() for name in ("fdb_dump", "neigh_dump")]
    # vx-42 is ifindex 3; the bridge's own entries (no remote) and other devices are not ours.
    assert permanent_entries(dumps, {3}) == {
        FdbEntry(3, "02:42:c0:a8:2a:02", ip_address("10.99.0.2")),
        NeighEntry(3, ip_address("192.168.42.3"), "02:42:c0:a8:2a:03"),
    }
    assert permanent_entries(dumps, {2, 4, 5}) == set()
    assert permanent_entries([dumps[0][:-7]], {3}) <= permanent_entries(dumps, {3})


def test_our_own_endpoints_are_never_an_answer_to_a_miss() -> None:
    mine = PeerEndpoint(42, ip_address("10.42.0.9"), "02:42:0a:2a:00:09", LOCAL.vtep, "local")
    table = PeerTable.build([A, mine])
    assert answer_l3_miss(table, vni=42, ifindex=5, ip=mine.ip) is None
    assert answer_l2_miss(table, vni=42, ifindex=5, mac=mine.mac) is None
    answer = answer_l3_miss(table, vni=42, ifindex=5, ip=A.ip)
    assert answer is not None and FdbEntry(5, A.mac, A.vtep) in answer.writes


def test_a_peer_behind_our_own_vtep_is_never_an_answer() -> None:
    stale = PeerEndpoint(42, ip_address("10.42.0.8"), "02:42:0a:2a:00:08", LOCAL.vtep, "etcd")
    table = PeerTable.build([A, stale])
    own = (LOCAL.vtep,)
    assert answer_l3_miss(table, vni=42, ifindex=5, ip=stale.ip, local_vteps=own) is None
    assert answer_l2_miss(table, vni=42, ifindex=5, mac=stale.mac, local_vteps=own) is None
    assert answer_l3_miss(table, vni=42, ifindex=5, ip=A.ip, local_vteps=own) is not None
