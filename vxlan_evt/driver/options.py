"""Parse and validate the network options of `docker network create -d vxlan -o KEY=VALUE`.

Pure: no I/O, no kernel facts. Docker shows our error message to the user
verbatim, so every message names the option and the allowed form, and one
parse reports every problem at once (joined by "; ") instead of making the
user fix them one `docker network create` at a time. What needs the host
(does VtepDev exist, is the VNI taken, MTU from the underlay) is the driver's job.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Literal

from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.errors import InvalidOption
from vxlan_evt.model.modes import RESOLVE_MODES, ResolveMode
from vxlan_evt.model.network import BridgeSpec, NetworkOptions, VxlanSpec

VNI_MAX = 2**24 - 1
U8_MAX = 2**8 - 1
U32_MAX = 2**32 - 1
MTU_MIN, MTU_MAX = 68, 65535
PORT_MIN, PORT_MAX = 1, 65535
IFNAMSIZ = 16  # kernel buffer size, NUL included: names are at most 15 bytes
DOCKER_MTU_OPTION = "com.docker.network.driver.mtu"

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True}
_BOOL_WORDS |= {"false": False, "0": False, "no": False, "off": False}
_BOOL_EXPECTED = "true/false, 1/0, yes/no or on/off"
_IFNAME_EXPECTED = 'an interface name of 1..15 bytes without "/", ":", "%" or whitespace'
_MAC_EXPECTED = "a unicast MAC address like 02:42:ac:11:00:02"
_IP_EXPECTED = "an IPv4 or IPv6 address like 192.0.2.10"
_GROUP_EXPECTED = "a multicast address (224.0.0.0/4 or ff00::/8) like 239.1.1.1"
_RESOLVE_EXPECTED = " or ".join(RESOLVE_MODES)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAC = re.compile(r"[0-9a-f]{1,2}([:-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){4}", re.IGNORECASE)


# --- value parsers: each takes (option, non-empty text), raises InvalidOption --


def _cut(text: str) -> str:
    """Cut a user's value short, so junk cannot flood the message."""
    return text if len(text) <= 40 else text[:40] + "..."


def _show(text: str) -> str:
    """Quote a user's value for a message, escaping what would garble it."""
    return json.dumps(_cut(text), ensure_ascii=False)


def _int_parser(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(option: str, text: str) -> int:
        if not _INTEGER.fullmatch(text):
            raise InvalidOption(f"{option}: {_show(text)} is not an integer; expected {lo}..{hi}")
        # A very long digit string is out of range anyway (and int() refuses > 4300 digits).
        value = int(text) if len(text) <= 30 else None
        if value is None or not lo <= value <= hi:
            raise InvalidOption(f"{option}: {_cut(text)} is out of range; expected {lo}..{hi}")
        return value

    return parse


def parse_bool(option: str, value: object) -> bool:
    """Read a switch the way people write it: true/false, 1/0, yes/no, on/off, any case."""
    if isinstance(value, bool):
        return value
    text = str(value) if isinstance(value, int | str) else None
    if text == "":
        raise InvalidOption(f"{option}: empty value; expected {_BOOL_EXPECTED}")
    if text is None or text.lower() not in _BOOL_WORDS:
        shown = _show(text) if text is not None else type(value).__name__
        raise InvalidOption(f"{option}: {shown} is not a boolean; expected {_BOOL_EXPECTED}")
    return _BOOL_WORDS[text.lower()]


def validate_ifname(option: str, name: str) -> str:
    """Apply the kernel's dev_valid_name() rules, plus no "%" (the kernel would
    expand "%d" into a number, so the link would not get the name we track)."""
    size = len(name.encode())
    rule = f"Linux interface names are at most {IFNAMSIZ - 1}"
    if size == 0:
        raise InvalidOption(f"{option}: empty value; expected {_IFNAME_EXPECTED}")
    if size >= IFNAMSIZ:
        raise InvalidOption(f"{option}: {_show(name)} is {size} bytes; {rule}")
    if name in (".", ".."):
        raise InvalidOption(f"{option}: {_show(name)} is reserved; expected {_IFNAME_EXPECTED}")
    bad = next((c for c in name if c in "/:%" or c.isspace() or not c.isprintable()), None)
    if bad is not None:
        what = f'"{bad}"' if bad in "/:%" else "whitespace or a control character"
        raise InvalidOption(f"{option}: {_show(name)} contains {what}; expected {_IFNAME_EXPECTED}")
    return name


def normalise_mac(option: str, value: str) -> str:
    """Accept aa:bb:.. or aa-bb-.. in any case; return lower-case colon form.

    A link address must be unicast and non-zero: the kernel refuses otherwise.
    """
    if value == "":
        raise InvalidOption(f"{option}: empty value; expected {_MAC_EXPECTED}")
    if not _MAC.fullmatch(value):
        raise InvalidOption(
            f"{option}: {_show(value)} is not a MAC address; expected {_MAC_EXPECTED}"
        )
    octets = [int(part, 16) for part in re.split("[:-]", value)]
    mac = ":".join(f"{o:02x}" for o in octets)
    if octets[0] & 1:
        kind = "the broadcast" if all(o == 0xFF for o in octets) else "a multicast"
        raise InvalidOption(f"{option}: {mac} is {kind} address; expected {_MAC_EXPECTED}")
    if not any(octets):
        raise InvalidOption(f"{option}: {mac} is all zeros; expected {_MAC_EXPECTED}")
    return mac


def _parse_ip(option: str, text: str) -> IPAddress:
    try:
        # A zone ("fe80::1%eth1") means nothing to the vxlan link: refuse it.
        address = ip_address(text) if "%" not in text else None
    except ValueError:
        address = None
    if address is None:
        raise InvalidOption(
            f"{option}: {_show(text)} is not an IP address; expected {_IP_EXPECTED}"
        )
    return address


def _parse_src_addr(option: str, text: str) -> IPAddress:
    address = _parse_ip(option, text)
    if address.is_multicast or address.is_unspecified:
        kind = "a multicast" if address.is_multicast else "the unspecified"
        raise InvalidOption(
            f"{option}: {address} is {kind} address; expected a unicast address of this host"
        )
    return address


def _parse_group(option: str, text: str) -> IPAddress:
    address = _parse_ip(option, text)
    if not address.is_multicast:
        raise InvalidOption(
            f"{option}: {address} is not a multicast address; expected {_GROUP_EXPECTED}"
        )
    return address


def parse_resolve_mode(option: str, text: str) -> ResolveMode:
    """preprogram (entries from the peer table, kept) or on-demand (from misses, evicted idle)."""
    if text.lower() not in RESOLVE_MODES:
        raise InvalidOption(f"{option}: {_show(text)} is not a mode; expected {_RESOLVE_EXPECTED}")
    return RESOLVE_MODES[RESOLVE_MODES.index(text.lower())]


# --- the table -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Option:
    """Where an option lands and how its text is read."""

    section: Literal["bridge", "vxlan", "network"]  # "network": a field of NetworkOptions
    field: str
    parse: Callable[[str, str], object]
    expected: str  # the allowed form, for the "empty value" message


def _ints(section: Literal["bridge", "vxlan"], field: str, lo: int, hi: int) -> _Option:
    return _Option(section, field, _int_parser(lo, hi), f"{lo}..{hi}")


def _flag(field: str) -> _Option:
    return _Option("vxlan", field, parse_bool, _BOOL_EXPECTED)


_OPTIONS: dict[str, _Option] = {
    "bridgeName": _Option("bridge", "name", validate_ifname, _IFNAME_EXPECTED),
    "bridgeMTU": _ints("bridge", "mtu", MTU_MIN, MTU_MAX),
    "bridgeHardwareAddr": _Option("bridge", "hardware_addr", normalise_mac, _MAC_EXPECTED),
    "bridgeTXQLen": _ints("bridge", "txqlen", 0, U32_MAX),
    "vxlanName": _Option("vxlan", "name", validate_ifname, _IFNAME_EXPECTED),
    "vxlanMTU": _ints("vxlan", "mtu", MTU_MIN, MTU_MAX),
    "vxlanHardwareAddr": _Option("vxlan", "hardware_addr", normalise_mac, _MAC_EXPECTED),
    "vxlanTxQLen": _ints("vxlan", "txqlen", 0, U32_MAX),
    "VxlanId": _ints("vxlan", "vni", 0, VNI_MAX),
    "VtepDev": _Option("vxlan", "vtep_dev", validate_ifname, _IFNAME_EXPECTED),
    "SrcAddr": _Option("vxlan", "src_addr", _parse_src_addr, _IP_EXPECTED),
    "Group": _Option("vxlan", "group", _parse_group, _GROUP_EXPECTED),
    "TTL": _ints("vxlan", "ttl", 0, U8_MAX),
    "TOS": _ints("vxlan", "tos", 0, U8_MAX),
    "Learning": _flag("learning"),
    "Proxy": _flag("proxy"),
    "RSC": _flag("rsc"),
    "L2miss": _flag("l2miss"),
    "L3miss": _flag("l3miss"),
    "NoAge": _flag("noage"),
    "GBP": _flag("gbp"),
    "Age": _ints("vxlan", "age", 0, U32_MAX),
    "Limit": _ints("vxlan", "limit", 0, U32_MAX),
    "Port": _ints("vxlan", "port", PORT_MIN, PORT_MAX),
    "PortLow": _ints("vxlan", "port_low", PORT_MIN, PORT_MAX),
    "PortHigh": _ints("vxlan", "port_high", PORT_MIN, PORT_MAX),
    "Resolve": _Option("network", "resolve", parse_resolve_mode, _RESOLVE_EXPECTED),
}
OPTION_NAMES: tuple[str, ...] = tuple(_OPTIONS)
# Docker's conventional MTU option; an alias of bridgeMTU (checked for conflicts).
_ALIASES: dict[str, _Option] = {DOCKER_MTU_OPTION: _OPTIONS["bridgeMTU"]}


def _text(option: str, value: object, expected: str) -> str:
    """Docker sends strings; API clients may send JSON numbers or booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = str(value)
        if text:
            return text
    elif value is not None:
        raise InvalidOption(
            f"{option}: a JSON {type(value).__name__} is not allowed; expected {expected}"
        )
    raise InvalidOption(f"{option}: empty value; expected {expected}")


# Past this many unknown keys a request is not a typo: one short error, no suggestions
# (difflib per key would let one big request hold the event loop).
MAX_SUGGESTED_KEYS = 8
# Longer keys are not a misspelt option name either.
MAX_SUGGESTED_KEY_LENGTH = 64


def _unknown(key: str) -> str:
    known = [*OPTION_NAMES, *_ALIASES]
    by_lower = {name.lower(): name for name in known}
    if len(key) <= MAX_SUGGESTED_KEY_LENGTH:
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        if close:
            return f"unknown option {_show(key)}; did you mean {_show(by_lower[close[0]])}?"
    return f"unknown option {_show(key)}; valid options are {', '.join(known)}"


def _unknown_errors(keys: list[str]) -> list[str]:
    if len(keys) <= MAX_SUGGESTED_KEYS:
        return [_unknown(key) for key in keys]
    shown = ", ".join(_show(key) for key in keys[:3])
    known = ", ".join([*OPTION_NAMES, *_ALIASES])
    return [f"{len(keys)} unknown options ({shown}, ...); valid options are {known}"]


def _combination_errors(
    opts: NetworkOptions, alias_mtu: int | None, given: set[str], names_known: bool
) -> list[str]:
    """Rules between options; run on values that parsed, so no error is double-counted.

    Without a valid VNI the default names are placeholders: skip the name rules then.
    """
    bridge, vx = opts.bridge, opts.vxlan
    errors = []
    if alias_mtu is not None and "bridgeMTU" in given and alias_mtu != bridge.mtu:
        errors.append(
            f"bridgeMTU={bridge.mtu} conflicts with {DOCKER_MTU_OPTION}={alias_mtu}; "
            "give one of them, or the same value in both"
        )
    if bridge.mtu is not None and vx.mtu is not None and bridge.mtu > vx.mtu:
        errors.append(
            f"bridgeMTU={bridge.mtu} is above vxlanMTU={vx.mtu}: frames larger than the "
            "VXLAN port's MTU would be dropped at the bridge; expected bridgeMTU <= vxlanMTU"
        )
    if names_known and bridge.name == vx.name:
        errors.append(
            f"bridgeName and vxlanName are both {_show(bridge.name)}; "
            "the bridge and the VXLAN interface need different names"
        )
    if names_known and vx.vtep_dev is not None and vx.vtep_dev in (bridge.name, vx.name):
        errors.append(
            f"VtepDev {_show(vx.vtep_dev)} is an interface this network creates; "
            "expected the underlay device (e.g. eth1)"
        )
    if vx.group is not None and vx.src_addr is not None and vx.group.version != vx.src_addr.version:
        errors.append(
            f"Group={vx.group} and SrcAddr={vx.src_addr} are of different IP families; "
            "expected both IPv4 or both IPv6"
        )
    if (vx.port_low is None) != (vx.port_high is None):
        have, lack = ("PortLow", "PortHigh") if vx.port_high is None else ("PortHigh", "PortLow")
        if lack not in given:  # a bad value already has its own message
            errors.append(f"{have} needs {lack}; give both to set the UDP source port range")
    elif vx.port_low is not None and vx.port_high is not None and vx.port_low > vx.port_high:
        errors.append(
            f"PortLow={vx.port_low} is above PortHigh={vx.port_high}; expected PortLow <= PortHigh"
        )
    if vx.noage and vx.age is not None:
        errors.append(f"NoAge=true conflicts with Age={vx.age}; give one of them")
    return errors


def parse_network_options(
    generic: Mapping[str, object], *, vtepdev_override: str | None = None
) -> NetworkOptions:
    """Turn Docker's `com.docker.network.generic` dict into `NetworkOptions`.

    `vtepdev_override` is the daemon's --vtepdev flag: it wins over VtepDev.
    Raises one `InvalidOption` listing every problem found, "; "-separated.
    """
    errors = _unknown_errors(
        [key for key in generic if key not in _OPTIONS and key not in _ALIASES]
    )
    fields: dict[str, dict[str, Any]] = {"bridge": {}, "vxlan": {}, "network": {}}
    alias_mtu: int | None = None
    failed: set[str] = set()
    for name, option in (*_OPTIONS.items(), *_ALIASES.items()):
        if name not in generic:
            continue
        try:
            value = option.parse(name, _text(name, generic[name], option.expected))
        except InvalidOption as exc:
            errors.append(str(exc))
            failed.add(option.field)
            continue
        if name in _ALIASES:
            alias_mtu = value if isinstance(value, int) else None
            fields[option.section].setdefault(option.field, value)
        else:
            fields[option.section][option.field] = value
    if vtepdev_override is not None:
        try:
            fields["vxlan"]["vtep_dev"] = validate_ifname("--vtepdev", vtepdev_override)
        except InvalidOption as exc:
            errors.append(str(exc))
    if "VxlanId" not in generic:
        errors.append(
            f"VxlanId is required (the VXLAN network identifier, an integer 0..{VNI_MAX})"
        )
    # Build even when VxlanId is bad, so the rules between options still get checked.
    vni = fields["vxlan"].setdefault("vni", 0)
    names_known = "VxlanId" in generic and "vni" not in failed
    bridge_kw = {"name": f"br-{vni}", "mtu": None, "hardware_addr": None, "txqlen": None}
    vxlan_kw = {"name": f"vx-{vni}", "vtep_dev": None, "src_addr": None, "group": None}
    vxlan_kw |= {"mtu": None, "hardware_addr": None, "txqlen": None, "ttl": None, "tos": None}
    options = NetworkOptions(
        bridge=BridgeSpec(**(bridge_kw | fields["bridge"])),
        vxlan=VxlanSpec(**(vxlan_kw | fields["vxlan"])),
        **fields["network"],
    )
    errors += _combination_errors(options, alias_mtu, set(generic), names_known)
    if errors:
        raise InvalidOption("; ".join(errors))
    return options
