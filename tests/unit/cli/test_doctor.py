"""`diagnose` against canned observe-API documents: every check, passing and failing."""

from __future__ import annotations

from typing import Any

import pytest

from vxlan_evt.cli.doctor import (
    CHECKS,
    SAY,
    Finding,
    _parse,
    diagnose,
    exit_status,
    format_findings,
)
from vxlan_evt.testing.observe_samples import (
    EP,
    NET,
    Docs,
    fdb_row,
    healthy,
    neigh_row,
)


def run(docs: Docs, network: str | None = None) -> list[Finding]:
    return diagnose(
        docs["networks"],
        docs["links"],
        docs["fdb"],
        docs["neigh"],
        docs["peers"],
        docs["misses"],
        network=network,
        endpoints=docs["endpoints"],
    )


def of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def only(findings: list[Finding], check: str) -> Finding:
    found = of(findings, check)
    assert len(found) == 1, found
    return found[0]


def links(docs: Docs) -> dict[str, dict[str, Any]]:
    return {row["ifname"]: row for row in docs["links"]}


def test_a_healthy_network_passes_every_check() -> None:
    findings = run(healthy())
    assert {f.level for f in findings} == {"ok"}, format_findings(findings)
    assert {f.network_id for f in findings} == {NET}
    assert [f.check for f in findings] == [
        "vxlan-link",
        "bridge",
        "vtep-dev",
        "miss-flags",
        "proxy",
        "mtu",
        "peer-fdb",
        "peer-neigh",
        "misses",
        "foreign-entries",
    ]
    assert exit_status(findings) == 0
    assert "underlay 1500 >= vx-42 1450 + 50" in only(findings, "mtu").message


@pytest.mark.parametrize(
    ("change", "wanted"),
    [
        (lambda d: d["links"].remove(links(d)["vx-42"]), "the vxlan link vx-42 is missing"),
        (lambda d: links(d)["vx-42"].update(kind="veth"), "vx-42 is a veth link, not vxlan"),
        (
            lambda d: links(d)["vx-42"].update(vni=43),
            "carries VNI 43, but the network was created with VNI 42",
        ),
        (lambda d: links(d)["vx-42"].update(up=False), "`ip link set vx-42 up`"),
    ],
)
def test_vxlan_link_problems_are_errors(change: Any, wanted: str) -> None:
    docs = healthy()
    change(docs)
    finding = only(run(docs), "vxlan-link")
    assert finding.level == "error" and wanted in finding.message


def test_missing_vxlan_link_silences_the_checks_that_need_it() -> None:
    docs = healthy()
    docs["links"].remove(links(docs)["vx-42"])
    findings = run(docs)
    assert not of(findings, "miss-flags") and not of(findings, "peer-fdb")
    assert exit_status(findings) == 1


def test_a_degraded_network_says_why_and_that_it_is_retried() -> None:
    docs = healthy()
    docs["networks"][0]["degraded"] = "VtepDev: there is no device 'eth2' on this host (yet)"
    docs["links"].remove(links(docs)["vx-42"])
    degraded = only(run(docs), "degraded")
    assert degraded.level == "error" and "no device 'eth2'" in degraded.message
    assert "retried when links change" in degraded.message
    assert not of(run(healthy()), "degraded")


def test_bridge_missing_down_or_not_the_vxlan_master() -> None:
    docs = healthy()
    docs["links"].remove(links(docs)["br-42"])
    assert "bridge br-42 is missing" in only(run(docs), "bridge").message

    docs = healthy()
    links(docs)["br-42"]["up"] = False
    assert only(run(docs), "bridge").level == "error"

    docs = healthy()
    links(docs)["vx-42"]["master"] = None
    bridge = [f for f in of(run(docs), "bridge") if f.level == "error"]
    assert len(bridge) == 1 and "vx-42 is not a port of br-42" in bridge[0].message
    assert "`ip link set vx-42 master br-42`" in bridge[0].message


def test_vtep_dev_missing_down_or_not_pinned() -> None:
    docs = healthy()
    docs["links"].remove(links(docs)["eth1"])
    finding = only(run(docs), "vtep-dev")
    assert finding.level == "error" and "(VtepDev) eth1 does not exist" in finding.message

    docs = healthy()
    links(docs)["eth1"]["up"] = False
    assert "eth1 is down" in only(run(docs), "vtep-dev").message

    docs = healthy()
    links(docs)["vx-42"]["vxlan"]["dev"] = None
    del docs["networks"][0]["options"]["VtepDev"]
    findings = run(docs)
    assert only(findings, "vtep-dev").level == "ok" and "no VtepDev" in findings[2].message
    assert "underlay (unknown)" in only(findings, "mtu").message


def test_miss_flags_off_explains_how_to_enable_them() -> None:
    docs = healthy()
    links(docs)["vx-42"]["vxlan"].update(l2miss=False, l3miss=False)
    findings = run(docs)
    finding = only(findings, "miss-flags")
    assert finding.level == "warn"
    assert "does not report L2 misses or L3 misses (l2miss, l3miss off)" in finding.message
    assert "fixed when the link is created" in finding.message
    assert "`-o L2miss=true -o L3miss=true -o Proxy=true`" in finding.message
    assert not of(findings, "proxy")  # nothing to say about proxy without L3 misses
    assert exit_status(findings) == 0


def test_miss_flags_off_is_an_error_when_the_network_resolves_on_demand() -> None:
    docs = healthy()
    docs["networks"][0]["resolve"] = "on-demand"
    links(docs)["vx-42"]["vxlan"]["l2miss"] = False
    finding = only(run(docs), "miss-flags")
    assert finding.level == "error" and "(l2miss off)" in finding.message
    assert "resolves on demand" in finding.message


def test_l3miss_without_proxy() -> None:
    docs = healthy()
    links(docs)["vx-42"]["vxlan"]["proxy"] = False
    finding = only(run(docs), "proxy")
    assert finding.level == "warn"
    assert (
        "L3 misses only in proxy mode" in finding.message and "`-o Proxy=true`" in finding.message
    )
    docs["networks"][0]["resolve"] = "on-demand"
    assert only(run(docs), "proxy").level == "error"


def test_underlay_too_small_for_vxlan_ipv4() -> None:
    docs = healthy()
    links(docs)["eth1"]["mtu"] = 1480
    finding = only(run(docs), "mtu")
    assert finding.level == "error"
    assert "plus 50 bytes of VXLAN header needs an underlay MTU of at least 1500" in finding.message
    assert "eth1 has 1480" in finding.message and "`-o vxlanMTU=1430`" in finding.message


def test_ipv6_underlay_needs_70_bytes() -> None:
    docs = healthy()
    links(docs)["vx-42"]["vxlan"]["local"] = "fd00::1"
    for peer in docs["peers"]:
        peer["vtep"] = peer["vtep"].replace("10.0.0.", "fd00::")
    finding = only(run(docs), "mtu")
    assert finding.level == "error" and "plus 70 bytes" in finding.message
    assert "at least 1520" in finding.message and "vxlanMTU=1430" in finding.message


def test_bridge_mtu_above_vxlan_mtu() -> None:
    docs = healthy()
    links(docs)["br-42"]["mtu"] = 1500
    links(docs)["vethab12"]["mtu"] = 1500
    finding = only(run(docs), "mtu")
    assert finding.level == "error" and "br-42 MTU 1500 is above vx-42 MTU 1450" in finding.message


def test_endpoint_veth_mtu_must_match_the_bridge() -> None:
    docs = healthy()
    links(docs)["vethab12"]["mtu"] = 1400
    finding = only(run(docs), "mtu")
    assert finding.level == "warn"
    assert f"vethab12 (endpoint {EP[:12]}) has MTU 1400, the bridge 1450" in finding.message

    links(docs)["vethab12"]["mtu"] = 9000  # bigger than the vxlan port: frames get dropped
    assert only(run(docs), "mtu").level == "error"


def test_vxlan_mtu_changed_behind_our_back() -> None:
    docs = healthy()
    for name in ("vx-42", "br-42", "vethab12"):
        links(docs)[name]["mtu"] = 1400
    findings = of(run(docs), "mtu")
    assert [f.level for f in findings] == ["warn"]
    assert "vx-42 has MTU 1400, but vxlan-evt created it with 1450" in findings[0].message


def test_endpoints_whose_host_interface_is_gone_or_off_the_bridge() -> None:
    docs = healthy()
    docs["links"].remove(links(docs)["vethab12"])
    finding = only(run(docs), "endpoints")
    assert finding.level == "error" and "host interface vethab12 is gone" in finding.message

    docs = healthy()
    links(docs)["vethab12"]["master"] = None
    finding = only(run(docs), "endpoints")
    assert "vethab12 (endpoint e0e1e2e3e4e5) is not a port of br-42" in finding.message

    docs = healthy()
    docs["links"].remove(links(docs)["vethab12"])
    docs["endpoints"][0]["joined"] = False  # created, not joined yet: no veth is fine
    assert not of(run(docs), "endpoints")


def test_peers_without_entries_are_not_programmed_yet() -> None:
    docs = healthy()
    docs["fdb"] = [r for r in docs["fdb"] if r["mac"] != "02:42:c0:a8:2a:04"]
    docs["neigh"] = [r for r in docs["neigh"] if r["ip"] != "192.168.42.3"]
    findings = run(docs)
    fdb, neigh = only(findings, "peer-fdb"), only(findings, "peer-neigh")
    assert fdb.level == neigh.level == "warn"
    assert (
        "1 of 2 peers have no FDB entry on vx-42: 02:42:c0:a8:2a:04 (192.168.42.4 via 10.0.0.3)"
        in fdb.message
    )
    assert "not programmed yet; the first packet will wait for a miss" in fdb.message
    assert "192.168.42.3 (02:42:c0:a8:2a:03)" in neigh.message
    assert exit_status(findings) == 0


def test_on_demand_networks_expect_missing_entries() -> None:
    docs = healthy()
    docs["networks"][0]["resolve"] = "on-demand"
    docs["fdb"], docs["neigh"] = [], []
    findings = run(docs)
    assert only(findings, "peer-fdb").level == "ok"
    assert "entries appear at the first miss" in only(findings, "peer-neigh").message
    assert not of(findings, "flood")  # nothing floods ARP on demand: proxy answers it


def test_entries_pointing_elsewhere_are_errors() -> None:
    docs = healthy()
    docs["fdb"][0]["dst"] = "10.0.0.99"
    docs["neigh"][1]["mac"] = "02:42:c0:a8:2a:99"
    findings = run(docs)
    wrong_fdb = [f for f in of(findings, "peer-fdb") if f.level == "error"]
    assert "02:42:c0:a8:2a:03 (192.168.42.3) points at 10.0.0.99" in wrong_fdb[0].message
    assert "says VTEP 10.0.0.2" in wrong_fdb[0].message
    wrong_neigh = [f for f in of(findings, "peer-neigh") if f.level == "error"]
    assert "192.168.42.4 resolves to 02:42:c0:a8:2a:99 (PERMANENT)" in wrong_neigh[0].message


def test_no_remote_peers_is_fine() -> None:
    docs = healthy()
    docs["peers"] = [p for p in docs["peers"] if p["vtep"] == "10.0.0.1"]
    docs["fdb"] = docs["neigh"] = []
    findings = run(docs)
    assert "no remote endpoints for VNI 42" in only(findings, "peers").message
    assert {f.level for f in findings} == {"ok"}


def test_head_end_replication_needs_an_all_zeros_entry_per_vtep() -> None:
    docs = healthy()
    docs["fdb"] = [
        r for r in docs["fdb"] if r["dst"] != "10.0.0.3" or r["mac"] != "00:00:00:00:00:00"
    ]
    finding = only(run(docs), "flood")
    assert finding.level == "warn" and "for VTEP 10.0.0.3" in finding.message

    docs["networks"][0]["options"]["Group"] = "239.1.1.1"  # multicast floods instead
    assert not of(run(docs), "flood")


def test_unanswered_misses_are_listed_with_advice() -> None:
    docs = healthy()
    docs["misses"] = [
        {
            "type": "l3miss",
            "vni": 42,
            "ifname": "vx-42",
            "subject": "192.168.42.9",
            "count": 5,
            "answered": 0,
            "unanswered": 5,
            "failed": 0,
            "last_seen": 2.0,
        },
        {
            "type": "l2miss",
            "vni": 42,
            "ifname": "vx-42",
            "subject": "02:42:c0:a8:2a:09",
            "count": 1,
            "answered": 0,
            "unanswered": 1,
            "failed": 0,
            "last_seen": 2.0,
        },
        {
            "type": "l3miss",
            "vni": 7,
            "ifname": "vx-7",
            "subject": "10.7.0.9",
            "count": 1,
            "answered": 0,
            "unanswered": 1,
            "failed": 0,
            "last_seen": 2.0,
        },
    ]
    finding = only(run(docs), "misses")
    assert finding.level == "warn"
    assert "2 misses on vx-42 nobody answered" in finding.message
    assert "192.168.42.9 (l3miss x5), 02:42:c0:a8:2a:09 (l2miss x1)" in finding.message
    assert 'peers file under "42" as {"ip": ..., "mac": ..., "vtep": ...}' in finding.message
    assert "10.7.0.9" not in finding.message


def test_failed_answers_are_errors() -> None:
    docs = healthy()
    docs["misses"][0].update(failed=2)
    finding = only(run(docs), "misses")
    assert finding.level == "error" and "failed 2 times" in finding.message


def test_foreign_fdb_entries_on_our_vxlan_device() -> None:
    docs = healthy()
    docs["fdb"] += [
        fdb_row("02:42:de:ad:be:ef", "10.9.9.9", source="other"),
        fdb_row("00:00:00:00:00:00", "10.8.8.8", source="other"),
        fdb_row("02:42:00:00:00:01", "10.0.0.2", source="learned", state="REACHABLE"),
    ]
    finding = only(run(docs), "foreign-fdb")
    assert finding.level == "warn"
    assert "02:42:de:ad:be:ef dst 10.9.9.9 (PERMANENT)" in finding.message
    assert "00:00:00:00:00:00 dst 10.8.8.8 (floods to an unknown VTEP)" in finding.message
    assert "02:42:00:00:00:01" not in finding.message  # learned is the kernel's job
    assert "`bridge fdb del MAC dev vx-42`" in finding.message


def test_the_devices_own_group_entry_is_not_foreign() -> None:
    docs = healthy()
    links(docs)["vx-42"]["vxlan"]["group"] = "239.1.1.1"
    docs["fdb"].append(fdb_row("00:00:00:00:00:00", "239.1.1.1", source="other"))
    assert only(run(docs), "foreign-entries").level == "ok"


def test_foreign_and_stale_neighbour_entries() -> None:
    docs = healthy()
    docs["neigh"] += [
        neigh_row("192.168.42.50", "02:42:00:00:00:50"),
        neigh_row("192.168.42.60", None, "INCOMPLETE"),
    ]
    finding = only(run(docs), "foreign-neigh")
    assert finding.level == "warn"
    assert "192.168.42.50 lladdr 02:42:00:00:00:50 (PERMANENT)" in finding.message
    assert "192.168.42.60 (INCOMPLETE: it suppresses L3 misses)" in finding.message


def test_choosing_a_network() -> None:
    docs = healthy()
    other = dict(
        docs["networks"][0], network_id="b" * 64, vni=7, vxlan_name="vx-7", bridge_name="br-7"
    )
    docs["networks"].append(other)
    everything = run(docs)
    assert {f.network_id for f in everything} == {NET, "b" * 64}
    assert {f.network_id for f in run(docs, NET[:6])} == {NET}
    assert {f.network_id for f in run(docs, "br-7")} == {"b" * 64}
    assert "the vxlan link vx-7 is missing" in only(run(docs, "vx-7"), "vxlan-link").message
    nothing = run(docs, "zzz")
    assert [(f.level, f.network_id) for f in nothing] == [("error", None)]
    assert nothing[0].message == "no network matches 'zzz'; known: a1b2c3d4e5f6, bbbbbbbbbbbb"


def test_no_networks_at_all() -> None:
    docs = healthy()
    docs["networks"] = []
    findings = run(docs)
    assert [(f.level, f.check) for f in findings] == [("warn", "networks")]
    assert exit_status(findings) == 0


def test_format_findings_groups_wraps_and_sums_up() -> None:
    docs = healthy()
    links(docs)["br-42"]["up"] = False
    links(docs)["vx-42"]["vxlan"]["proxy"] = False
    text = format_findings(run(docs))
    lines = text.splitlines()
    assert lines[0] == "network a1b2c3d4e5f6"
    assert lines[1].startswith("  ok     vxlan-link       vx-42 (VNI 42)")
    assert any(line.startswith("  ERROR  bridge           br-42 is down") for line in lines)
    assert any(line.startswith("  WARN   proxy") for line in lines)
    assert all(len(line) <= 100 for line in lines)
    continued = lines[lines.index(next(x for x in lines if "WARN   proxy" in x)) + 1]
    assert continued.startswith(" " * 26) and continued.strip()
    assert lines[-1] == "1 error, 1 warning"
    assert format_findings(run(healthy())).endswith("\n\nall checks passed")
    assert format_findings([]) == "all checks passed"


def test_findings_as_json() -> None:
    finding = run(healthy())[0]
    assert finding.to_dict() == {
        "level": "ok",
        "network_id": NET,
        "check": "vxlan-link",
        "message": "vx-42 (VNI 42) exists and is up",
    }


def test_every_check_has_its_wording_and_the_table_refuses_bad_levels() -> None:
    assert len(CHECKS) == 11
    assert all("." in key and level in ("ok", "warn", "error") for key, (level, _) in SAY.items())
    with pytest.raises(ValueError, match="has level 'fatal'"):
        _parse("x.y  fatal  words")
    assert _parse("a.b  ok  one\n     two") == {"a.b": ("ok", "one two")}
