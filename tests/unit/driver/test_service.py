"""The Docker protocol handlers against a fake kernel: logic only, no root needed."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from vxlan_evt.driver.api import InFlight, create_plugin_app
from vxlan_evt.driver.protocol import PLUGIN_CONTENT_TYPE, implemented_interfaces
from vxlan_evt.driver.service import CurrentState, DriverService
from vxlan_evt.driver.store import StateStore
from vxlan_evt.model.errors import Conflict, InvalidOption, NotFound, SystemFailure, UserError
from vxlan_evt.model.ownership import endpoint_alias, network_alias
from vxlan_evt.model.plan import CreateVxlan
from vxlan_evt.model.state import NetworkRecord
from vxlan_evt.testing.fake_kernel import FakeKernel

NET = "n" * 64
NET2 = "m" * 64
EP = "e1" + "0" * 62
EP2 = "e2" + "0" * 62


def network_request(
    network_id: str = NET, gateway: str = "10.42.0.254/24", **options: str
) -> dict[str, Any]:
    generic = {"VxlanId": "42", "VtepDev": "eth1", **options}
    return {
        "NetworkID": network_id,
        "Options": {"com.docker.network.generic": generic},
        "IPv4Data": [{"AddressSpace": "", "Pool": "10.42.0.0/24", "Gateway": gateway}],
        "IPv6Data": [],
    }


def endpoint_request(endpoint_id: str = EP, mac: str = "") -> dict[str, Any]:
    return {
        "NetworkID": NET,
        "EndpointID": endpoint_id,
        "Interface": {"Address": "10.42.0.2/24", "AddressIPv6": "", "MacAddress": mac},
        "Options": {},
    }


@pytest.fixture
def kernel() -> FakeKernel:
    kernel = FakeKernel()
    kernel.add_link("eth1", kind="veth", mtu=9000, up=True)
    return kernel


def make_service(kernel: FakeKernel, state_dir: Path, **settings: Any) -> DriverService:
    return DriverService(kernel, StateStore(state_dir), **settings)


async def test_activate_and_capabilities(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path, scope="global")
    assert implemented_interfaces(service.handlers) == ["NetworkDriver"]
    # Data scope global would need a swarm manager (checked with dockerd in tests/e2e).
    assert await service.get_capabilities({}) == {"Scope": "local", "ConnectivityScope": "global"}


async def test_create_network_builds_links_and_persists(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    assert await service.create_network(network_request()) == {}
    assert kernel.links["vx-42"].vni == 42
    assert kernel.links["vx-42"].master == kernel.links["br-42"].ifindex
    # MTU rule: 9000 underlay - 50 bytes of VXLAN over IPv4.
    assert kernel.links["vx-42"].mtu == 8950
    assert kernel.links["br-42"].mtu == 8950
    assert kernel.links["br-42"].up and kernel.links["vx-42"].up
    assert kernel.addresses["br-42"] == {"10.42.0.254/24"}
    saved = StateStore(tmp_path).load()
    assert saved.networks[NET].vni == 42
    assert saved.networks[NET].generic_options["VtepDev"] == "eth1"


async def test_global_scope_keeps_gateway_off_the_host(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path, scope="global")
    await service.create_network(network_request())
    assert "br-42" not in kernel.addresses
    await service.create_endpoint(endpoint_request())
    join = await service.join({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"})
    assert join["Gateway"] == "10.42.0.254"


async def test_explicit_mtu_options_win(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(
        network_request(vxlanMTU="1400", bridgeMTU="1300", vxlanName="tun0", bridgeName="sw0")
    )
    assert kernel.links["tun0"].mtu == 1400
    assert kernel.links["sw0"].mtu == 1300


async def test_mtu_beyond_underlay_is_refused(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    with pytest.raises(InvalidOption, match=r"vxlanMTU: 9000 .* at most 8950"):
        await service.create_network(network_request(vxlanMTU="9000"))
    assert kernel.owned() == set()


async def test_missing_vtepdev_is_refused_and_creates_nothing(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    with pytest.raises(InvalidOption, match=r"VtepDev: there is no device 'eth9'"):
        await service.create_network(network_request(VtepDev="eth9"))
    assert kernel.owned() == set()
    assert StateStore(tmp_path).load().networks == {}


async def test_daemon_vtepdev_overrides_the_option(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path, vtepdev="eth1")
    await service.create_network(network_request(VtepDev="eth9"))
    vxlan = next(a for a in kernel.applied if isinstance(a, CreateVxlan))
    assert vxlan.vtep_dev == "eth1"


async def test_same_vni_twice_is_a_conflict(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    with pytest.raises(Conflict, match=r"VxlanId: 42 is already used by network nnnnnnnnnnnn"):
        await service.create_network(network_request(NET2, vxlanName="vx-b", bridgeName="br-b"))


async def test_network_guard_refuses_before_anything_is_created(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    asked: list[int] = []

    async def guard(record: NetworkRecord) -> str | None:
        asked.append(record.vni)
        return "VxlanId: 42 is used with other settings on host b" if record.vni == 42 else None

    changes: list[None] = []
    service = make_service(
        kernel, tmp_path, network_guard=guard, on_change=lambda: changes.append(None)
    )
    with pytest.raises(Conflict, match="on host b"):
        await service.create_network(network_request())
    assert (asked, kernel.owned(), changes) == ([42], set(), [])
    await service.create_network(network_request(VxlanId="43"))
    assert asked == [42, 43] and len(changes) == 1


async def test_the_state_in_force_is_shared_through_current_state(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """What the etcd backend reads: built before the service, replaced by every commit."""
    current = CurrentState()
    service = make_service(kernel, tmp_path, state=current)
    await service.create_network(network_request())
    assert service.current is current and current.value is service.state
    assert list(current.value.networks) == [NET]
    await make_service(kernel, tmp_path, state=current).load_and_reconcile()
    assert list(current.value.networks) == [NET]


async def test_foreign_link_names_are_not_taken(kernel: FakeKernel, tmp_path: Path) -> None:
    kernel.add_link("br-42", kind="bridge")
    service = make_service(kernel, tmp_path)
    with pytest.raises(Conflict, match=r"bridgeName: a link named 'br-42' already exists"):
        await service.create_network(network_request())
    assert kernel.owned() == set()
    assert "br-42" in kernel.links


async def test_foreign_vxlan_with_same_vni_is_a_conflict(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    kernel.add_link("mine", kind="vxlan", vni=42)
    service = make_service(kernel, tmp_path)
    with pytest.raises(Conflict, match=r"vxlan link 'mine'"):
        await service.create_network(network_request())


async def test_kernel_failure_rolls_back(kernel: FakeKernel, tmp_path: Path) -> None:
    kernel.fail_on = CreateVxlan
    service = make_service(kernel, tmp_path)
    with pytest.raises(Exception, match="kernel refused"):
        await service.create_network(network_request())
    assert kernel.owned() == set()
    assert service.state.networks == {}


async def test_endpoint_life_cycle(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    created = await service.create_endpoint(endpoint_request())
    assert created == {"Interface": {"MacAddress": "02:42:0a:2a:00:02"}}
    assert kernel.links["vh" + EP[:11]].master == kernel.links["br-42"].ifindex
    assert kernel.links["vh" + EP[:11]].mtu == 8950
    join = await service.join({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"})
    assert join["InterfaceName"] == {"SrcName": "vc" + EP[:11], "DstPrefix": "eth"}
    assert join["Gateway"] == "10.42.0.254"
    info = await service.endpoint_oper_info({"NetworkID": NET, "EndpointID": EP})
    assert info["Value"]["mac"] == "02:42:0a:2a:00:02"
    assert await service.leave({"NetworkID": NET, "EndpointID": EP}) == {}
    assert await service.leave({"NetworkID": NET, "EndpointID": EP}) == {}
    assert await service.delete_endpoint({"NetworkID": NET, "EndpointID": EP}) == {}
    assert await service.delete_endpoint({"NetworkID": NET, "EndpointID": EP}) == {}
    assert "vh" + EP[:11] not in kernel.links
    assert "vc" + EP[:11] not in kernel.links


async def test_mac_from_docker_is_used_and_not_returned(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    assert await service.create_endpoint(endpoint_request(mac="02:aa:bb:cc:dd:ee")) == {}
    assert service.state.endpoints[EP].mac == "02:aa:bb:cc:dd:ee"


async def test_unknown_network_and_endpoint_errors(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    with pytest.raises(NotFound, match="network nnnnnnnnnnnn is not known"):
        await service.create_endpoint(endpoint_request())
    await service.create_network(network_request())
    with pytest.raises(NotFound, match="endpoint e10000000000 is not known"):
        await service.join({"NetworkID": NET, "EndpointID": EP})


async def test_delete_network_is_idempotent_and_removes_everything(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    await service.create_endpoint(endpoint_request())
    await service.delete_network({"NetworkID": NET})
    await service.delete_network({"NetworkID": NET})
    assert kernel.owned() == set()
    assert set(kernel.links) == {"eth1"}
    assert StateStore(tmp_path).load().networks == {}


async def test_restart_rebuilds_without_flapping_and_cleans_orphans(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    await service.load_and_reconcile()
    await service.create_network(network_request())
    await service.create_endpoint(endpoint_request())
    bridge_before = kernel.links["br-42"]
    # While the daemon is down: the vxlan link disappears and a leaked link appears.
    del kernel.links["vx-42"]
    kernel.add_link(
        "br-leak", kind="bridge", ifalias=network_alias("z" * 64, service.state.instance)
    )
    kernel.applied.clear()

    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()
    assert kernel.links["br-42"].ifindex == bridge_before.ifindex  # kept, not recreated
    assert kernel.links["vx-42"].vni == 42  # recreated
    assert "br-leak" not in kernel.links
    # Docker never replays CreateNetwork: new endpoints must still work, and so must delete.
    await restarted.create_endpoint(endpoint_request(EP2))
    await restarted.delete_network({"NetworkID": NET})
    assert kernel.owned() == set()


async def test_every_link_carries_the_instance_that_made_it(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    await service.load_and_reconcile()
    instance = service.state.instance
    assert len(instance) == 16 and StateStore(tmp_path).load().instance == instance
    await service.create_network(network_request())
    await service.create_endpoint(endpoint_request())
    assert kernel.links["br-42"].ifalias == network_alias(NET, instance)
    assert kernel.links["vh" + EP[:11]].ifalias == endpoint_alias(NET, EP, instance)
    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()
    assert restarted.state.instance == instance  # kept, not renewed


async def test_an_empty_state_dir_deletes_no_link_of_another_instance(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """A mistyped --state-dir, or a second daemon: before, every marked link on the host
    was taken for a leak of ours and deleted."""
    first = make_service(kernel, tmp_path / "right")
    await first.load_and_reconcile()
    await first.create_network(network_request())
    await first.create_endpoint(endpoint_request())
    kernel.add_link("br-old", kind="bridge", ifalias=network_alias("z" * 64))  # 0.1.0 mark
    before = dict(kernel.links)
    mistyped = make_service(kernel, tmp_path / "wrong")
    await mistyped.load_and_reconcile()
    assert kernel.links == before
    assert mistyped.state.instance != first.state.instance
    await mistyped.delete_network({"NetworkID": NET})  # Docker of the other instance? still no
    assert kernel.links == before


async def test_links_marked_before_instances_are_still_ours_by_their_network(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """0.1.0 marks had no instance: a network the state knows proves them ours."""
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())  # no load: links in the old form
    await service.create_endpoint(endpoint_request())
    assert kernel.links["br-42"].ifalias == network_alias(NET)
    kernel.add_link("vh" + EP2[:11], kind="veth", ifalias=endpoint_alias(NET, EP2))  # a leak
    upgraded = make_service(kernel, tmp_path)
    await upgraded.load_and_reconcile()
    assert "vh" + EP2[:11] not in kernel.links  # an orphan of a known network
    assert kernel.links["vh" + EP[:11]].master == kernel.links["br-42"].ifindex
    await upgraded.delete_network({"NetworkID": NET})
    assert kernel.owned() == set()


async def test_a_damaged_state_file_falls_back_to_its_backup_and_deletes_nothing(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """The backup is one change behind: the second endpoint's veth is not in it, yet the
    container lives. Recovery rebuilds what the backup names and deletes no link."""
    service = make_service(kernel, tmp_path)
    await service.load_and_reconcile()
    await service.create_network(network_request())
    await service.create_endpoint(endpoint_request())
    await service.create_endpoint(endpoint_request(EP2))
    (tmp_path / "state.json").write_bytes(b'{"version": 1, "netw')  # a torn write by hand
    before = dict(kernel.links)

    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()

    assert restarted.store.recovered is not None
    assert set(restarted.state.endpoints) == {EP}  # what the backup held
    assert kernel.links == before  # the live veth of EP2 is left alone
    assert [n for n in os.listdir(tmp_path) if n.startswith("state.json.damaged-")]


async def test_a_damaged_state_file_without_backup_stops_with_what_to_do(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    (tmp_path / "state.json").write_bytes(b"[1]")
    with pytest.raises(SystemFailure, match=r"state file .* is damaged .* move it away"):
        await make_service(kernel, tmp_path).load_and_reconcile()
    assert (tmp_path / "state.json").read_bytes() == b"[1]"


async def test_reconcile_on_a_clean_host_does_nothing(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    kernel.applied.clear()
    await service.create_endpoint(endpoint_request())
    kernel.applied.clear()
    await make_service(kernel, tmp_path).load_and_reconcile()
    assert kernel.applied == []  # the gateway is on the bridge already: nothing to do


async def test_a_network_that_cannot_be_rebuilt_stops_no_other(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    kernel.add_link("eth2", kind="veth", mtu=1500, up=True)
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    await service.create_network(network_request(NET2, VxlanId="43", VtepDev="eth2"))
    # Boot: eth2 comes later than the daemon; both networks' links are gone.
    for name in ("vx-42", "br-42", "vx-43", "br-43", "eth2"):
        del kernel.links[name]
    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()
    assert {"vx-42", "br-42"} <= kernel.links.keys() and "vx-43" not in kernel.links
    assert restarted.degraded == {NET2: "VtepDev: there is no device 'eth2' on this host (yet)"}
    with pytest.raises(SystemFailure, match=r"network mmmmmmmmmmmm is degraded on this host"):
        await restarted.create_endpoint({**endpoint_request(), "NetworkID": NET2})
    await restarted.create_endpoint(endpoint_request())  # the healthy one serves
    kernel.add_link("eth2", kind="veth", mtu=1500, up=True)
    await restarted.repair_degraded()
    assert restarted.degraded == {}
    assert kernel.links["vx-43"].master == kernel.links["br-43"].ifindex


async def test_options_that_no_longer_parse_degrade_only_their_network(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    await service.create_network(network_request(NET2, VxlanId="43"))
    record = service.state.networks[NET2]
    broken = replace(record, generic_options={**record.generic_options, "TTL": "300"})
    StateStore(tmp_path).save(service.state.with_network(broken))
    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()
    assert list(restarted.degraded) == [NET2] and "TTL" in restarted.degraded[NET2]


async def test_an_endpoint_of_an_unknown_network_is_ignored(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    await service.create_endpoint(endpoint_request())
    stray = replace(service.state.endpoints[EP], network_id="x" * 64, endpoint_id=EP2)
    StateStore(tmp_path).save(service.state.with_endpoint(stray))
    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()  # was a KeyError: nothing served at all
    assert restarted.degraded == {}
    assert kernel.links["vh" + EP[:11]].master == kernel.links["br-42"].ifindex


async def test_reconcile_never_takes_over_a_foreign_link_of_our_name(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    del kernel.links["br-42"], kernel.links["vx-42"]
    foreign = kernel.add_link("br-42", kind="bridge")
    kernel.applied.clear()
    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()
    assert kernel.links["br-42"] == foreign and "vx-42" not in kernel.links
    assert kernel.applied == []
    assert "bridgeName: a link named 'br-42' already exists" in restarted.degraded[NET]


async def test_a_recreated_bridge_gets_its_ports_back(kernel: FakeKernel, tmp_path: Path) -> None:
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    await service.create_endpoint(endpoint_request())
    old_bridge = kernel.links.pop("br-42")
    restarted = make_service(kernel, tmp_path)
    await restarted.load_and_reconcile()
    bridge = kernel.links["br-42"]
    assert bridge.ifindex != old_bridge.ifindex
    assert kernel.links["vx-42"].master == bridge.ifindex
    assert kernel.links["vh" + EP[:11]].master == bridge.ifindex
    assert kernel.addresses["br-42"] == {"10.42.0.254/24"}


async def test_a_call_cancelled_half_way_leaves_kernel_and_state_agreeing(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """Docker hanging up (or shutdown) after the links were made: the call still ends in a
    state that names them (before: the rollback ran in the cancelled scope and did nothing,
    leaving marked links no state knew)."""
    service = make_service(kernel, tmp_path)
    with trio.CancelScope() as scope:
        kernel.after_apply = scope.cancel
        await service.create_network(network_request())
    kernel.after_apply = None
    assert scope.cancel_called
    assert {"br-42", "vx-42"} <= kernel.owned()
    assert list(StateStore(tmp_path).load().networks) == [NET]
    with trio.CancelScope() as scope:
        kernel.after_apply = scope.cancel
        await service.create_endpoint(endpoint_request())
    kernel.after_apply = None
    assert "vh" + EP[:11] in kernel.owned() and EP in StateStore(tmp_path).load().endpoints


async def test_a_failing_on_change_undoes_nothing(kernel: FakeKernel, tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("peer backend broke")

    service = make_service(kernel, tmp_path, on_change=broken)
    assert await service.create_network(network_request()) == {}
    assert {"br-42", "vx-42"} <= kernel.owned()
    assert list(StateStore(tmp_path).load().networks) == [NET]


# --- over HTTP -----------------------------------------------------------------


async def post(service: DriverService, path: str, body: bytes) -> tuple[int, Any, str]:
    client = create_plugin_app(service.handlers).test_client()
    response = await client.post(path, data=body)
    return (
        response.status_code,
        json.loads(await response.get_data()),
        response.headers["Content-Type"],
    )


async def test_http_empty_body_and_content_type(kernel: FakeKernel, tmp_path: Path) -> None:
    status, document, content_type = await post(
        make_service(kernel, tmp_path), "/Plugin.Activate", b""
    )
    assert (status, document) == (200, {"Implements": ["NetworkDriver"]})
    assert content_type == PLUGIN_CONTENT_TYPE


async def test_http_unknown_method_is_404(kernel: FakeKernel, tmp_path: Path) -> None:
    status, document, _ = await post(make_service(kernel, tmp_path), "/IpamDriver.Nope", b"{}")
    assert status == 404
    assert "IpamDriver.Nope" in document["Err"]


async def test_http_user_error_reaches_docker(kernel: FakeKernel, tmp_path: Path) -> None:
    body = json.dumps(network_request(vxlanid="42")).encode()
    status, document, _ = await post(
        make_service(kernel, tmp_path), "/NetworkDriver.CreateNetwork", body
    )
    assert status == 400
    assert 'did you mean "VxlanId"' in document["Err"]


async def test_http_bad_json(kernel: FakeKernel, tmp_path: Path) -> None:
    status, document, _ = await post(
        make_service(kernel, tmp_path), "/NetworkDriver.CreateNetwork", b"{nope"
    )
    assert status == 400
    assert "not valid JSON" in document["Err"]


async def test_http_system_failure_is_500(kernel: FakeKernel, tmp_path: Path) -> None:
    kernel.fail_on = CreateVxlan
    body = json.dumps(network_request()).encode()
    status, document, _ = await post(
        make_service(kernel, tmp_path), "/NetworkDriver.CreateNetwork", body
    )
    assert status == 500
    assert "CreateNetwork" in document["Err"]


def test_user_errors_are_user_errors() -> None:
    assert issubclass(Conflict, UserError) and issubclass(NotFound, UserError)


async def test_shutdown_waits_for_calls_in_flight_only() -> None:
    in_flight = InFlight()
    await in_flight.wait_idle()  # nothing running: returns at once
    finished = trio.Event()

    async def slow_call() -> None:
        with in_flight.call():
            await trio.sleep(0.05)
        finished.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_call)
        await trio.testing.wait_all_tasks_blocked()
        assert in_flight.active == 1
        await in_flight.wait_idle()
        assert finished.is_set() and in_flight.active == 0


async def test_an_endpoint_never_adopts_another_ones_veth(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    """Link names keep 11 characters of the ID: two IDs sharing them, or one ID in two
    networks, must be refused, not handed the other endpoint's interface."""
    service = make_service(kernel, tmp_path)
    await service.create_network(network_request())
    await service.create_network(network_request(NET2, VxlanId="43"))
    await service.create_endpoint(endpoint_request())
    twin = EP[:11] + "f" * 53
    with pytest.raises(Conflict, match=f"would take interface 'vh{EP[:11]}' of endpoint"):
        await service.create_endpoint(endpoint_request(twin))
    other_network = endpoint_request() | {"NetworkID": NET2}
    with pytest.raises(Conflict, match="already exists in network nnnnnnnnnnnn"):
        await service.create_endpoint(other_network)
    # A link of ours for another endpoint, whatever the state says, is not taken either.
    kernel.add_link("vh" + EP2[:11], kind="veth", ifalias=endpoint_alias(NET, "f" * 64))
    with pytest.raises(Conflict, match="belongs to vxlan-evt endpoint ffffffffffff of network"):
        await service.create_endpoint(endpoint_request(EP2))
    assert service.state.endpoints[EP].network_id == NET  # the first one is untouched
    assert EP2 not in service.state.endpoints
