"""The state file: atomic save, load of a missing file."""

from __future__ import annotations

from pathlib import Path

from vxlan_evt.driver.store import StateStore
from vxlan_evt.model.state import DriverState, NetworkRecord

NETWORK = NetworkRecord(
    network_id="n1",
    generic_options={"VxlanId": "42"},
    vni=42,
    vxlan_name="vx-42",
    bridge_name="br-42",
    vxlan_mtu=1450,
    bridge_mtu=1450,
)


def test_store_saves_atomically_and_loads(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load() == DriverState()
    state = DriverState().with_network(NETWORK)
    store.save(state)
    assert store.load() == state
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["state.json"]
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
