"""`vxlan-evt doctor`: what is wrong with a network, in plain words, from the observe API.

Pure: it reads the documents the API serves (networks, links, fdb, neigh,
peers, misses, endpoints) and returns findings, so every check is tested with
canned JSON. Each check is a small function in `CHECKS`, run per network in
order; what it says lives in the `SAY` table, so the advice can be read and
reviewed in one place. A check that cannot run (its link is missing) stays
silent: an earlier check reported the cause.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias, cast

from vxlan_evt.cli.views import format_findings as format_findings  # people's form of findings
from vxlan_evt.model.addresses import ZERO_MAC

Row: TypeAlias = Mapping[str, Any]
Level: TypeAlias = Literal["ok", "warn", "error"]
LEVELS = ("ok", "warn", "error")
LISTED = 8  # a finding names at most this many entries, then "and N more"

# `check.case  level  wording`; indented lines continue the wording. `{vx}`, `{br}`
# and `{vni}` are always there; `{{`/`}}` are literal braces.
_TABLE = """
degraded.found        error vxlan-evt could not rebuild this network: {problem}. It is retried
                            when links change (and every 30 s); fix the cause, e.g. bring up the
                            VtepDev or remove the foreign link, and it repairs itself
vxlan-link.missing    error the vxlan link {vx} is missing, so the network has no path to other
                            hosts; restart vxlan-evt (it rebuilds links from its state)
vxlan-link.kind       error {vx} is a {kind} link, not vxlan: another tool owns that name; delete
                            it and restart vxlan-evt
vxlan-link.vni        error {vx} carries VNI {found}, but the network was created with VNI {vni}:
                            its traffic goes to another segment
vxlan-link.down       error {vx} is down: nothing leaves this host; `ip link set {vx} up`
vxlan-link.ok         ok    {vx} (VNI {vni}) exists and is up
bridge.missing        error the bridge {br} is missing: containers are cut off; restart vxlan-evt
bridge.down           error {br} is down: containers are cut off; `ip link set {br} up`
bridge.ok             ok    {br} exists and is up
bridge.port           error {vx} is not a port of {br} (its master: {master}): remote traffic
                            never reaches the containers; `ip link set {vx} master {br}`
vtep-dev.none         ok    no VtepDev: the kernel routes to each VTEP (so the underlay MTU is not
                            checked)
vtep-dev.missing      error the underlay device (VtepDev) {dev} does not exist: VXLAN packets
                            cannot leave this host
vtep-dev.down         error the underlay device (VtepDev) {dev} is down: VXLAN packets cannot
                            leave this host; `ip link set {dev} up`
vtep-dev.ok           ok    the underlay device {dev} exists and is up
miss-flags.ok         ok    {vx} reports L2 and L3 misses
miss-flags.off        warn  {vx} does not report {which} ({flags} off): {why}. Vxlan flags are
                            fixed when the link is created: recreate the network with
                            `-o L2miss=true -o L3miss=true -o Proxy=true`
proxy.ok              ok    {vx} answers ARP/ND from its neighbour table (Proxy) and reports L3
                            misses
proxy.off             warn  {vx} has L3miss but not Proxy: the kernel reports L3 misses only in
                            proxy mode, so none will come. Vxlan flags are fixed when the link is
                            created: recreate the network with `-o Proxy=true`
mtu.changed           warn  {vx} has MTU {mtu}, but vxlan-evt created it with {created}: someone
                            changed it since
mtu.underlay          error {vx} MTU {mtu} plus {overhead} bytes of VXLAN header needs an underlay
                            MTU of at least {need}, but {dev} has {found}: large packets are
                            dropped. Recreate the network with `-o vxlanMTU={fits}` or raise
                            {dev}'s MTU
mtu.bridge            error {br} MTU {found} is above {vx} MTU {mtu}: larger frames are dropped at
                            the bridge; `ip link set {br} mtu {mtu}`
mtu.veth              warn  {veth} (endpoint {ep}) has MTU {found}, the bridge {br_mtu}: the
                            container should use the network's MTU; reconnect it
mtu.ok                ok    MTU chain is consistent: underlay {underlay} >= {vx} {mtu} +
                            {overhead}, bridge {br_mtu}
endpoints.gone        error endpoint {ep} is joined but its host interface {veth} is gone: that
                            container is cut off; restart it
endpoints.unbridged   error {veth} (endpoint {ep}) is not a port of {br}: that container is cut
                            off; `ip link set {veth} master {br}`
peers.none            ok    the peer table has no remote endpoints for VNI {vni} yet
peer-fdb.wrong        error {mac} ({ip}) points at {found} on {vx}, but the peer table says VTEP
                            {vtep}: its traffic goes to the wrong host
peer-fdb.missing      warn  {n} of {count} peers have no FDB entry on {vx}: {items} ({how})
peer-fdb.ok           ok    all {count} peers have an FDB entry on {vx}
peer-neigh.wrong      error {ip} resolves to {found} on {vx}, but the peer table says {mac}
peer-neigh.missing    warn  {n} of {count} peers have no neighbour entry on {vx}: {items} ({how})
peer-neigh.ok         ok    all {count} peers have a neighbour entry on {vx}
flood.missing         warn  no all-zeros FDB entry on {vx} for VTEP {items}: broadcasts (ARP) are
                            not replicated there
misses.failed         error answering the {type} for {subject} on {vx} failed {n} times: the
                            kernel refused the entries; the daemon log says why
misses.unanswered     warn  {n} misses on {vx} nobody answered: {items}. The peer table does not
                            know them: add them to the peers file under "{vni}" as
                            {{"ip": ..., "mac": ..., "vtep": ...}}, or check that the daemon on
                            their host publishes them (etcd)
misses.ok             ok    no unanswered misses on {vx}
foreign-fdb.found     warn  FDB entries on {vx} that vxlan-evt did not write: {items}. Left by
                            hand or by another tool; `bridge fdb del MAC dev {vx}` removes a
                            wrong one
foreign-neigh.found   warn  neighbour entries on {vx} not from the peer table: {items};
                            `ip neigh del IP dev {vx}` removes a wrong one
foreign-entries.ok    ok    no foreign FDB or neighbour entries on {vx}
networks.none         warn  vxlan-evt has no networks on this host; create one with
                            `docker network create -d <driver> -o VxlanId=N ...`
networks.no-match     error no network matches {wanted!r}; known: {known}
"""


def _parse(table: str) -> dict[str, tuple[Level, str]]:
    said: dict[str, tuple[Level, str]] = {}
    key = ""
    for line in table.strip("\n").splitlines():
        if line.startswith(" "):
            said[key] = (said[key][0], f"{said[key][1]} {line.strip()}")
            continue
        key, level, text = line.split(None, 2)
        if level not in LEVELS:
            raise ValueError(f"doctor: {key} has level {level!r}")
        said[key] = (cast(Level, level), text)
    return said


SAY = _parse(_TABLE)


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    network_id: str | None
    check: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finding(key: str, network_id: str | None, level: Level | None = None, **values: Any) -> Finding:
    """The `SAY` entry `key` (`check.case`), worded with `values`; `level` overrides its level."""
    default, text = SAY[key]
    return Finding(level or default, network_id, key.split(".")[0], text.format(**values))


def _ip(text: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text))
    except ValueError:
        return None


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


@dataclass(frozen=True)
class NetworkView:
    """One network and the rows that concern it, gathered once for all checks."""

    record: Row
    links: Mapping[str, Row]  # every link, by ifname
    vx_fdb: list[Row]  # FDB entries on the vxlan device
    vx_neigh: list[Row]  # neighbour entries on the vxlan device
    remote_peers: list[Row]  # this VNI's peers behind other VTEPs
    misses: list[Row]
    endpoints: list[Row]
    findings: list[Finding] = field(default_factory=list)

    @property
    def vxlan(self) -> Row | None:
        return self.links.get(str(self.record.get("vxlan_name")))

    @property
    def bridge(self) -> Row | None:
        return self.links.get(str(self.record.get("bridge_name")))

    @property
    def settings(self) -> Row:
        """The vxlan link's `vxlan` block (dev, local, group, flags); empty if unknown."""
        return (self.vxlan or {}).get("vxlan") or {}

    @property
    def on_demand(self) -> bool:
        """Nothing is programmed up front, so missing entries are normal and misses vital."""
        return self.record.get("resolve") == "on-demand"

    def say(self, key: str, level: Level | None = None, **values: Any) -> None:
        r = self.record
        names = {"vx": r.get("vxlan_name"), "br": r.get("bridge_name"), "vni": r.get("vni")}
        self.findings.append(finding(key, str(r.get("network_id")), level, **names, **values))


def check_vxlan_link(v: NetworkView) -> None:
    link = v.vxlan
    if link is None:
        v.say("vxlan-link.missing")
    elif link.get("kind") != "vxlan":
        v.say("vxlan-link.kind", kind=link.get("kind"))
    elif link.get("vni") != v.record.get("vni"):
        v.say("vxlan-link.vni", found=link.get("vni"))
    else:
        v.say("vxlan-link.ok" if link.get("up") else "vxlan-link.down")


def check_bridge(v: NetworkView) -> None:
    if v.bridge is None:
        v.say("bridge.missing")
        return
    v.say("bridge.ok" if v.bridge.get("up") else "bridge.down")
    if v.vxlan is not None and v.vxlan.get("master") != v.record.get("bridge_name"):
        v.say("bridge.port", master=v.vxlan.get("master") or "none")


def check_vtep_dev(v: NetworkView) -> None:
    dev = v.settings.get("dev") or (v.record.get("options") or {}).get("VtepDev")
    link = v.links.get(dev) if dev else None
    if not dev:
        v.say("vtep-dev.none")
    elif link is None:
        v.say("vtep-dev.missing", dev=dev)
    else:
        v.say("vtep-dev.ok" if link.get("up") else "vtep-dev.down", dev=dev)


def check_miss_flags(v: NetworkView) -> None:
    if not v.settings:
        return
    off = [flag for flag in ("l2miss", "l3miss") if not v.settings.get(flag)]
    if not off:
        v.say("miss-flags.ok")
        return
    which = " or ".join(f"{flag[:2].upper()} misses" for flag in off)
    if v.on_demand:
        why = "this network resolves on demand, so nothing gets programmed"
    else:
        why = "pre-programmed peers still work, but nothing else is seen or answered"
    level: Level = "error" if v.on_demand else "warn"
    v.say("miss-flags.off", level, which=which, flags=", ".join(off), why=why)


def check_proxy(v: NetworkView) -> None:
    if not v.settings.get("l3miss"):
        return  # check_miss_flags already said so
    if v.settings.get("proxy"):
        v.say("proxy.ok")
    else:
        v.say("proxy.off", "error" if v.on_demand else "warn")


def _overhead(v: NetworkView) -> int:
    """VXLAN adds 50 bytes over an IPv4 underlay, 70 over IPv6."""
    addresses = [v.settings.get("group"), v.settings.get("local")]
    addresses += [p.get("vtep") for p in v.remote_peers]
    return 70 if any(a and ":" in str(a) for a in addresses) else 50


def check_mtu(v: NetworkView) -> None:
    if v.vxlan is None or v.vxlan.get("mtu") is None:
        return
    mtu, before = int(v.vxlan["mtu"]), len(v.findings)
    if v.record.get("vxlan_mtu") not in (None, mtu):
        v.say("mtu.changed", mtu=mtu, created=v.record.get("vxlan_mtu"))
    underlay = v.links.get(str(v.settings.get("dev"))) or {}
    overhead, found, dev = _overhead(v), underlay.get("mtu"), underlay.get("ifname")
    if found is not None and int(found) < mtu + overhead:
        fits, need = int(found) - overhead, mtu + overhead
        v.say(
            "mtu.underlay", mtu=mtu, overhead=overhead, need=need, dev=dev, found=found, fits=fits
        )
    br_mtu = (v.bridge or {}).get("mtu")
    if br_mtu is not None and int(br_mtu) > mtu:
        v.say("mtu.bridge", found=br_mtu, mtu=mtu)
    for veth in _host_veths(v):
        if br_mtu is None or veth.get("mtu") in (None, br_mtu):
            continue
        level: Level = "error" if int(veth["mtu"]) > mtu else "warn"
        ep = str(veth.get("endpoint_id") or "?")[:12]
        v.say("mtu.veth", level, veth=veth["ifname"], ep=ep, found=veth["mtu"], br_mtu=br_mtu)
    if len(v.findings) == before:
        unknown = "(unknown)"
        v.say(
            "mtu.ok",
            underlay=found or unknown,
            mtu=mtu,
            overhead=overhead,
            br_mtu=br_mtu or unknown,
        )


def _host_veths(v: NetworkView) -> list[Row]:
    """The bridge's ports other than the vxlan device: the containers' host ends."""
    bridge, vx = v.record.get("bridge_name"), v.record.get("vxlan_name")
    return [
        link
        for link in v.links.values()
        if link.get("master") == bridge and link.get("ifname") != vx
    ]


def check_endpoints(v: NetworkView) -> None:
    for endpoint in v.endpoints:
        veth = endpoint.get("host_ifname")
        link, ep = v.links.get(str(veth)), str(endpoint.get("endpoint_id"))[:12]
        if endpoint.get("joined") and link is None:
            v.say("endpoints.gone", ep=ep, veth=veth)
        elif link is not None and link.get("master") != v.record.get("bridge_name"):
            v.say("endpoints.unbridged", ep=ep, veth=veth)


def check_peer_entries(v: NetworkView) -> None:
    if v.vxlan is None:
        return
    if not v.remote_peers:
        v.say("peers.none")
        return
    missing: dict[str, list[str]] = {"peer-fdb": [], "peer-neigh": []}
    for peer in v.remote_peers:
        mac, ip, vtep = peer.get("mac"), peer.get("ip"), peer.get("vtep")
        fdb = [str(e["dst"]) for e in v.vx_fdb if e.get("mac") == mac and e.get("dst")]
        if not fdb:
            missing["peer-fdb"].append(f"{mac} ({ip} via {vtep})")
        elif _ip(vtep) not in {_ip(dst) for dst in fdb}:
            v.say("peer-fdb.wrong", mac=mac, ip=ip, vtep=vtep, found=_listed(fdb))
        neigh = [e for e in v.vx_neigh if _ip(e.get("ip")) == _ip(ip)]
        if not neigh:
            missing["peer-neigh"].append(f"{ip} ({mac})")
        elif all(e.get("mac") != mac for e in neigh):
            found = f"{neigh[0].get('mac') or 'nothing'} ({neigh[0].get('state')})"
            v.say("peer-neigh.wrong", ip=ip, mac=mac, found=found)
    level: Level = "ok" if v.on_demand else "warn"
    if v.on_demand:
        how = "this network resolves on demand: entries appear at the first miss"
    else:
        how = "not programmed yet; the first packet will wait for a miss"
    count = len(v.remote_peers)
    for check, items in missing.items():
        if items:
            v.say(
                f"{check}.missing", level, n=len(items), count=count, items=_listed(items), how=how
            )
        else:
            v.say(f"{check}.ok", count=count)
    head_end = not v.settings.get("group") and not (v.record.get("options") or {}).get("Group")
    if head_end and not v.on_demand:
        flooded = {_ip(e.get("dst")) for e in v.vx_fdb if e.get("mac") == ZERO_MAC}
        vteps = sorted({str(p.get("vtep")) for p in v.remote_peers})
        unreached = [vtep for vtep in vteps if _ip(vtep) not in flooded]
        if unreached:
            v.say("flood.missing", items=_listed(unreached))


def check_misses(v: NetworkView) -> None:
    failed = [m for m in v.misses if m.get("failed")]
    for m in failed:
        v.say("misses.failed", type=m.get("type"), subject=m.get("subject"), n=m["failed"])
    unanswered = [m for m in v.misses if m.get("unanswered")]
    if unanswered:
        items = [f"{m.get('subject')} ({m.get('type')} x{m['unanswered']})" for m in unanswered]
        v.say("misses.unanswered", n=len(unanswered), items=_listed(items))
    elif not failed:
        v.say("misses.ok")


def _multicast(mac: object) -> bool:
    try:
        return bool(int(str(mac)[:2], 16) & 1)
    except ValueError:
        return False


def check_foreign_entries(v: NetworkView) -> None:
    if v.vxlan is None:
        return
    # Where an all-zeros (flood) entry may point: remote VTEPs, or the link's own group/remote.
    floods = {_ip(p.get("vtep")) for p in v.remote_peers} | {_ip(v.settings.get("group"))}
    fdb: list[str] = []
    for entry in v.vx_fdb:
        mac, dst = entry.get("mac"), entry.get("dst")
        if "master" in (entry.get("flags") or ()) or _multicast(mac):
            continue  # the bridge's own entries for this port, and multicast groups
        if mac == ZERO_MAC:
            if dst and _ip(dst) not in floods:
                fdb.append(f"{mac} dst {dst} (floods to an unknown VTEP)")
        elif entry.get("foreign") is True or entry.get("source") == "other":
            fdb.append(f"{mac} dst {dst or '-'} ({entry.get('state')})")
    known = {_ip(p.get("ip")) for p in v.remote_peers}
    neigh: list[str] = []
    for entry in v.vx_neigh:
        state = str(entry.get("state") or "")
        if "PERMANENT" not in state and "NOARP" not in state:
            neigh.append(f"{entry.get('ip')} ({state or 'no state'}: it suppresses L3 misses)")
        elif entry.get("foreign") is True or _ip(entry.get("ip")) not in known:
            neigh.append(f"{entry.get('ip')} lladdr {entry.get('mac')} ({state})")
    if fdb:
        v.say("foreign-fdb.found", items=_listed(fdb))
    if neigh:
        v.say("foreign-neigh.found", items=_listed(neigh))
    if not fdb and not neigh:
        v.say("foreign-entries.ok")


def check_degraded(v: NetworkView) -> None:
    problem = v.record.get("degraded")
    if problem:
        v.say("degraded.found", problem=problem)


Check: TypeAlias = Callable[[NetworkView], None]
CHECKS: tuple[Check, ...] = (
    check_degraded,
    check_vxlan_link,
    check_bridge,
    check_vtep_dev,
    check_miss_flags,
    check_proxy,
    check_mtu,
    check_endpoints,
    check_peer_entries,
    check_misses,
    check_foreign_entries,
)


def _select(networks: Sequence[Row], wanted: str | None) -> list[Row]:
    """By ID prefix, or by the name of the network's vxlan device or bridge."""
    if wanted is None:
        return list(networks)
    names = ("vxlan_name", "bridge_name")
    return [
        n
        for n in networks
        if str(n.get("network_id", "")).startswith(wanted) or wanted in map(n.get, names)
    ]


def diagnose(
    networks: Sequence[Row],
    links: Sequence[Row],
    fdb: Sequence[Row],
    neigh: Sequence[Row],
    peers: Sequence[Row],
    misses: Sequence[Row],
    *,
    network: str | None = None,
    endpoints: Sequence[Row] = (),
) -> list[Finding]:
    """Run every check on each network (or the one `network` names), in `CHECKS` order.

    `endpoints` (from /endpoints) is optional: with it, joined endpoints whose
    host interface vanished are reported, and their MACs are not taken for peers.
    """
    if not networks:
        return [finding("networks.none", None)]
    selected = _select(networks, network)
    if not selected:
        known = ", ".join(str(n.get("network_id"))[:12] for n in networks)
        return [finding("networks.no-match", None, wanted=network, known=known)]
    by_name = {str(link.get("ifname")): link for link in links}
    findings: list[Finding] = []
    for record in selected:
        vx, vni = record.get("vxlan_name"), record.get("vni")
        settings = (by_name.get(str(vx)) or {}).get("vxlan") or {}
        options = record.get("options") or {}
        own = [e for e in endpoints if e.get("network_id") == record.get("network_id")]
        local_vteps = {_ip(settings.get("local")), _ip(options.get("SrcAddr"))}
        local_macs = {e.get("mac") for e in own}
        view = NetworkView(
            record=record,
            links=by_name,
            vx_fdb=[e for e in fdb if e.get("ifname") == vx],
            vx_neigh=[e for e in neigh if e.get("ifname") == vx],
            remote_peers=[
                p
                for p in peers
                if p.get("vni") == vni
                and _ip(p.get("vtep")) not in local_vteps
                and p.get("mac") not in local_macs
            ],
            misses=[m for m in misses if m.get("vni") == vni or m.get("ifname") == vx],
            endpoints=own,
        )
        for check in CHECKS:
            check(view)
        findings += view.findings
    return findings


def exit_status(findings: Iterable[Finding]) -> int:
    """0 when nothing is an error (warnings are advice), 1 otherwise."""
    return 1 if any(f.level == "error" for f in findings) else 0
