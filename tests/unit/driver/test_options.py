"""Network option parsing: every option, its bounds, its messages, and the rules between them."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from vxlan_evt.driver.options import (
    DOCKER_MTU_OPTION,
    OPTION_NAMES,
    normalise_mac,
    parse_bool,
    parse_network_options,
    validate_ifname,
)
from vxlan_evt.model.errors import InvalidOption, UserError
from vxlan_evt.model.network import BridgeSpec, NetworkOptions, VxlanSpec

SEED_NAMES = (
    *("bridgeName", "bridgeMTU", "bridgeHardwareAddr", "bridgeTXQLen"),
    *("vxlanName", "vxlanMTU", "vxlanHardwareAddr", "vxlanTxQLen"),
    *("VxlanId", "VtepDev", "SrcAddr", "Group", "TTL", "TOS"),
    *("Learning", "Proxy", "RSC", "L2miss", "L3miss", "NoAge", "GBP"),
    *("Age", "Limit", "Port", "PortLow", "PortHigh"),
)

# option -> (section, field) for every option with a single-field value
WHERE = {
    "bridgeName": ("bridge", "name"),
    "bridgeMTU": ("bridge", "mtu"),
    "bridgeHardwareAddr": ("bridge", "hardware_addr"),
    "bridgeTXQLen": ("bridge", "txqlen"),
    "vxlanName": ("vxlan", "name"),
    "vxlanMTU": ("vxlan", "mtu"),
    "vxlanHardwareAddr": ("vxlan", "hardware_addr"),
    "vxlanTxQLen": ("vxlan", "txqlen"),
    "VxlanId": ("vxlan", "vni"),
    "VtepDev": ("vxlan", "vtep_dev"),
    "SrcAddr": ("vxlan", "src_addr"),
    "Group": ("vxlan", "group"),
    "TTL": ("vxlan", "ttl"),
    "TOS": ("vxlan", "tos"),
    "Learning": ("vxlan", "learning"),
    "Proxy": ("vxlan", "proxy"),
    "RSC": ("vxlan", "rsc"),
    "L2miss": ("vxlan", "l2miss"),
    "L3miss": ("vxlan", "l3miss"),
    "NoAge": ("vxlan", "noage"),
    "GBP": ("vxlan", "gbp"),
    "Age": ("vxlan", "age"),
    "Limit": ("vxlan", "limit"),
    "Port": ("vxlan", "port"),
    "PortLow": ("vxlan", "port_low"),
    "PortHigh": ("vxlan", "port_high"),
    "Resolve": ("network", "resolve"),
}

INT_RANGES = {
    "bridgeMTU": (68, 65535),
    "bridgeTXQLen": (0, 2**32 - 1),
    "vxlanMTU": (68, 65535),
    "vxlanTxQLen": (0, 2**32 - 1),
    "VxlanId": (0, 2**24 - 1),
    "TTL": (0, 255),
    "TOS": (0, 255),
    "Age": (0, 2**32 - 1),
    "Limit": (0, 2**32 - 1),
    "Port": (1, 65535),
    "PortLow": (1, 65535),
    "PortHigh": (1, 65535),
}
BOOL_OPTIONS = ("Learning", "Proxy", "RSC", "L2miss", "L3miss", "NoAge", "GBP")
IFNAME_OPTIONS = ("bridgeName", "vxlanName", "VtepDev")
MAC_OPTIONS = ("bridgeHardwareAddr", "vxlanHardwareAddr")
# Options that only make sense together with another one.
COMPANIONS: dict[str, dict[str, object]] = {
    "PortLow": {"PortHigh": "65535"},
    "PortHigh": {"PortLow": "1"},
}


def parse(**options: object) -> NetworkOptions:
    """Parse with VxlanId=42 unless the test gives its own."""
    return parse_network_options({"VxlanId": "42", **options})


def error_of(generic: dict[str, object], vtepdev_override: str | None = None) -> str:
    with pytest.raises(InvalidOption) as info:
        parse_network_options(generic, vtepdev_override=vtepdev_override)
    return str(info.value)


def field(options: NetworkOptions, option: str) -> object:
    section, name = WHERE[option]
    return getattr(options if section == "network" else getattr(options, section), name)


# --- the table itself ------------------------------------------------------------


def test_option_names_are_the_seed_names_in_seed_order_then_ours() -> None:
    assert (*SEED_NAMES, "Resolve") == OPTION_NAMES
    assert len(OPTION_NAMES) == 27


def test_every_option_is_covered_by_these_tests() -> None:
    assert set(WHERE) == set(OPTION_NAMES)
    covered = {*INT_RANGES, *BOOL_OPTIONS, *IFNAME_OPTIONS, *MAC_OPTIONS, "SrcAddr", "Group"}
    covered |= {"Resolve"}
    assert covered == set(OPTION_NAMES)


def test_invalid_option_is_a_user_error() -> None:
    assert issubclass(InvalidOption, UserError)


# --- defaults ----------------------------------------------------------------------


def test_defaults_with_only_vni() -> None:
    options = parse_network_options({"VxlanId": "42"})
    assert options.bridge == BridgeSpec(name="br-42", mtu=None, hardware_addr=None, txqlen=None)
    assert options.vxlan == VxlanSpec(
        name="vx-42",
        mtu=None,
        hardware_addr=None,
        txqlen=None,
        vni=42,
        vtep_dev=None,
        src_addr=None,
        group=None,
        ttl=None,
        tos=None,
    )
    vx = options.vxlan
    assert vx.learning is True
    assert (vx.proxy, vx.rsc, vx.l2miss, vx.l3miss, vx.noage, vx.gbp) == (False,) * 6
    assert (vx.age, vx.limit, vx.port_low, vx.port_high) == (None,) * 4
    assert vx.port == 4789
    assert options.underlay_is_ipv6 is False


def test_seed_walkthrough() -> None:
    options = parse_network_options({"Group": "239.1.1.1", "VxlanId": "42", "VtepDev": "eth1"})
    assert options.vxlan.group == IPv4Address("239.1.1.1")
    assert options.vxlan.vni == 42
    assert options.vxlan.vtep_dev == "eth1"


def test_every_option_at_once() -> None:
    generic: dict[str, object] = {
        "bridgeName": "br0",
        "bridgeMTU": "1400",
        "bridgeHardwareAddr": "02:42:AC:11:00:02",
        "bridgeTXQLen": "1000",
        "vxlanName": "vx0",
        "vxlanMTU": "1450",
        "vxlanHardwareAddr": "02-00-00-00-00-01",
        "vxlanTxQLen": "500",
        "VxlanId": "16777215",
        "VtepDev": "eth1",
        "SrcAddr": "2001:db8::1",
        "Group": "ff05::100",
        "TTL": "64",
        "TOS": "16",
        "Learning": "off",
        "Proxy": "on",
        "RSC": "yes",
        "L2miss": "1",
        "L3miss": "TRUE",
        "NoAge": "false",
        "GBP": "true",
        "Age": "300",
        "Limit": "1024",
        "Port": "8472",
        "PortLow": "32768",
        "PortHigh": "61000",
    }
    options = parse_network_options(generic)
    assert options.bridge == BridgeSpec("br0", 1400, "02:42:ac:11:00:02", 1000)
    assert options.vxlan == VxlanSpec(
        name="vx0",
        mtu=1450,
        hardware_addr="02:00:00:00:00:01",
        txqlen=500,
        vni=16777215,
        vtep_dev="eth1",
        src_addr=IPv6Address("2001:db8::1"),
        group=IPv6Address("ff05::100"),
        ttl=64,
        tos=16,
        learning=False,
        proxy=True,
        rsc=True,
        l2miss=True,
        l3miss=True,
        noage=False,
        gbp=True,
        age=300,
        limit=1024,
        port=8472,
        port_low=32768,
        port_high=61000,
    )
    assert options.underlay_is_ipv6 is True


@pytest.mark.parametrize("vni", ["0", "7", "16777215"])
def test_default_names_follow_the_vni(vni: str) -> None:
    options = parse_network_options({"VxlanId": vni})
    assert options.bridge.name == f"br-{int(vni)}"
    assert options.vxlan.name == f"vx-{int(vni)}"


# --- integers ------------------------------------------------------------------------


def int_cases() -> list[tuple[str, int]]:
    cases = []
    for option, (lo, hi) in INT_RANGES.items():
        cases += [(option, lo), (option, hi), (option, (lo + hi) // 2)]
    return cases


@pytest.mark.parametrize(("option", "value"), int_cases())
def test_integer_bounds_accepted(option: str, value: int) -> None:
    generic = {"VxlanId": "42", **COMPANIONS.get(option, {}), option: str(value)}
    assert field(parse_network_options(generic), option) == value


@pytest.mark.parametrize(("option", "value"), int_cases())
def test_integer_json_numbers_accepted(option: str, value: int) -> None:
    generic = {"VxlanId": 42, **COMPANIONS.get(option, {}), option: value}
    assert field(parse_network_options(generic), option) == value


@pytest.mark.parametrize("sign", ["+", ""])
def test_integer_with_plus_sign_or_leading_zero(sign: str) -> None:
    assert parse(TTL=f"{sign}064").vxlan.ttl == 64


def out_of_range_cases() -> list[tuple[str, str]]:
    cases = []
    for option, (lo, hi) in INT_RANGES.items():
        cases += [(option, str(lo - 1)), (option, str(hi + 1)), (option, "-1")]
    return list(dict.fromkeys(cases))


@pytest.mark.parametrize(("option", "text"), out_of_range_cases())
def test_integer_out_of_range(option: str, text: str) -> None:
    lo, hi = INT_RANGES[option]
    message = error_of({"VxlanId": "42", **COMPANIONS.get(option, {}), option: text})
    assert f"{option}: {text} is out of range; expected {lo}..{hi}" in message


@pytest.mark.parametrize("option", list(INT_RANGES))
@pytest.mark.parametrize("text", ["abc", "1.5", "0x10", "1e3", " 42", "42 ", "4_2", "١٢", "--1"])
def test_integer_not_an_integer(option: str, text: str) -> None:
    lo, hi = INT_RANGES[option]
    message = error_of({"VxlanId": "42", **COMPANIONS.get(option, {}), option: text})
    assert f"is not an integer; expected {lo}..{hi}" in message
    assert message.startswith(f"{option}: ") or f"; {option}: " in message


def test_integer_messages_match_the_brief() -> None:
    assert error_of({"VxlanId": "abc"}) == 'VxlanId: "abc" is not an integer; expected 0..16777215'
    assert error_of({"VxlanId": "1", "TTL": "300"}) == "TTL: 300 is out of range; expected 0..255"


def test_huge_integer_is_out_of_range_not_a_crash() -> None:
    message = error_of({"VxlanId": "9" * 5000})
    assert "VxlanId: 9999" in message
    assert "is out of range; expected 0..16777215" in message
    assert len(message) < 200


@pytest.mark.parametrize("option", list(INT_RANGES))
def test_integer_rejects_json_bool_and_float(option: str) -> None:
    assert "is not an integer" in error_of({"VxlanId": "42", option: True})
    assert "is not an integer" in error_of({"VxlanId": "42", option: 1.5})


# --- booleans ------------------------------------------------------------------------

TRUE_WORDS = ["true", "True", "TRUE", "1", "yes", "Yes", "on", "ON", 1, True]
FALSE_WORDS = ["false", "False", "0", "no", "NO", "off", "Off", 0, False]


@pytest.mark.parametrize("option", BOOL_OPTIONS)
@pytest.mark.parametrize("word", TRUE_WORDS)
def test_bool_true(option: str, word: object) -> None:
    assert field(parse(**{option: word}), option) is True


@pytest.mark.parametrize("option", BOOL_OPTIONS)
@pytest.mark.parametrize("word", FALSE_WORDS)
def test_bool_false(option: str, word: object) -> None:
    assert field(parse(**{option: word}), option) is False


@pytest.mark.parametrize("option", BOOL_OPTIONS)
@pytest.mark.parametrize("word", ["maybe", "2", "-1", "t", "y", " true", "enable", 2, 1.0])
def test_bool_invalid(option: str, word: object) -> None:
    message = error_of({"VxlanId": "42", option: word})
    assert message.startswith(f"{option}: ")
    assert "is not a boolean; expected true/false, 1/0, yes/no or on/off" in message


@pytest.mark.parametrize(
    ("value", "expected"), [("On", True), ("nO", False), (1, True), (0, False)]
)
def test_parse_bool_directly(value: object, expected: bool) -> None:
    assert parse_bool("X", value) is expected


@pytest.mark.parametrize("value", ["", None, [], "tru"])
def test_parse_bool_directly_rejects(value: object) -> None:
    with pytest.raises(InvalidOption, match=r"^X: .*expected true/false"):
        parse_bool("X", value)


# --- interface names ----------------------------------------------------------------


@pytest.mark.parametrize("option", IFNAME_OPTIONS)
@pytest.mark.parametrize("name", ["a", "eth1", "x" * 15, "bond0.100", "vx_evt-1", "ü" * 7, "42"])
def test_ifname_valid(option: str, name: str) -> None:
    assert field(parse(**{option: name}), option) == name


@pytest.mark.parametrize("option", IFNAME_OPTIONS)
@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("x" * 16, '"xxxxxxxxxxxxxxxx" is 16 bytes; Linux interface names are at most 15'),
        ("ü" * 8, "is 16 bytes; Linux interface names are at most 15"),
        (".", '"." is reserved'),
        ("..", '".." is reserved'),
        ("a/b", 'contains "/"'),
        ("a:b", 'contains ":"'),
        ("vx%d", 'contains "%"'),
        ("a b", "contains whitespace or a control character"),
        ("a\tb", "contains whitespace or a control character"),
        ("a\x00b", "contains whitespace or a control character"),
        ("a\nb", "contains whitespace or a control character"),
    ],
)
def test_ifname_invalid(option: str, name: str, fragment: str) -> None:
    message = error_of({"VxlanId": "42", option: name})
    assert message.startswith(f"{option}: ")
    assert fragment in message


def test_ifname_message_matches_the_brief() -> None:
    message = error_of({"VxlanId": "42", "vxlanName": "v" * 17})
    assert message == f'vxlanName: "{"v" * 17}" is 17 bytes; Linux interface names are at most 15'


@pytest.mark.parametrize("name", ["", "a b", "a/b"])
def test_validate_ifname_directly(name: str) -> None:
    with pytest.raises(InvalidOption, match=r"^opt: .*interface name of 1\.\.15 bytes"):
        validate_ifname("opt", name)


# --- MAC addresses --------------------------------------------------------------------


@pytest.mark.parametrize("option", MAC_OPTIONS)
@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("02:42:ac:11:00:02", "02:42:ac:11:00:02"),
        ("02:42:AC:11:00:02", "02:42:ac:11:00:02"),
        ("02-42-ac-11-00-02", "02:42:ac:11:00:02"),
        ("2:0:0:0:0:1", "02:00:00:00:00:01"),
        ("00:00:00:00:00:01", "00:00:00:00:00:01"),
        ("fe:ff:ff:ff:ff:ff", "fe:ff:ff:ff:ff:ff"),
    ],
)
def test_mac_valid(option: str, text: str, normal: str) -> None:
    assert field(parse(**{option: text}), option) == normal


@pytest.mark.parametrize("option", MAC_OPTIONS)
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("zz:42:ac:11:00:02", '"zz:42:ac:11:00:02" is not a MAC address'),
        ("02:42:ac:11:00", "is not a MAC address"),
        ("02:42:ac:11:00:02:03", "is not a MAC address"),
        ("02:42-ac:11:00:02", "is not a MAC address"),
        ("0242.ac11.0002", "is not a MAC address"),
        ("002:42:ac:11:00:02", "is not a MAC address"),
        ("01:00:5e:00:00:01", "01:00:5e:00:00:01 is a multicast address"),
        ("33:33:00:00:00:01", "33:33:00:00:00:01 is a multicast address"),
        ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is the broadcast address"),
        ("FF-FF-FF-FF-FF-FF", "ff:ff:ff:ff:ff:ff is the broadcast address"),
        ("00:00:00:00:00:00", "00:00:00:00:00:00 is all zeros"),
    ],
)
def test_mac_invalid(option: str, text: str, fragment: str) -> None:
    message = error_of({"VxlanId": "42", option: text})
    assert message.startswith(f"{option}: ")
    assert fragment in message
    assert "expected a unicast MAC address like 02:42:ac:11:00:02" in message


def test_normalise_mac_directly() -> None:
    assert normalise_mac("m", "0A:0B:0C:0D:0E:0F") == "0a:0b:0c:0d:0e:0f"
    with pytest.raises(InvalidOption, match=r"^m: empty value; expected a unicast MAC"):
        normalise_mac("m", "")


# --- IP addresses ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["10.0.0.1", "192.0.2.10", "2001:db8::1", "fe80::1", "::1"])
def test_src_addr_valid(text: str) -> None:
    assert parse(SrcAddr=text).vxlan.src_addr == ip_address(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.0.300", 'SrcAddr: "10.0.0.300" is not an IP address'),
        ("eth1", 'SrcAddr: "eth1" is not an IP address'),
        ("10.0.0.0/24", "is not an IP address"),
        ("fe80::1%eth1", "is not an IP address"),
        ("239.1.1.1", "SrcAddr: 239.1.1.1 is a multicast address"),
        ("ff02::1", "SrcAddr: ff02::1 is a multicast address"),
        ("0.0.0.0", "SrcAddr: 0.0.0.0 is the unspecified address"),
        ("::", "SrcAddr: :: is the unspecified address"),
    ],
)
def test_src_addr_invalid(text: str, fragment: str) -> None:
    message = error_of({"VxlanId": "42", "SrcAddr": text})
    assert fragment in message
    assert "expected" in message


@pytest.mark.parametrize("text", ["239.1.1.1", "224.0.0.1", "239.255.255.255", "ff05::100"])
def test_group_valid(text: str) -> None:
    assert parse(Group=text).vxlan.group == ip_address(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.0.1", "Group: 10.0.0.1 is not a multicast address"),
        ("240.0.0.1", "Group: 240.0.0.1 is not a multicast address"),
        ("2001:db8::1", "Group: 2001:db8::1 is not a multicast address"),
        ("239.1.1", 'Group: "239.1.1" is not an IP address'),
        ("ff05::100%eth1", "is not an IP address"),
    ],
)
def test_group_invalid(text: str, fragment: str) -> None:
    message = error_of({"VxlanId": "42", "Group": text})
    assert fragment in message
    assert "224.0.0.0/4 or ff00::/8" in message or "expected an IPv4 or IPv6 address" in message


@pytest.mark.parametrize(
    ("generic", "ipv6"),
    [
        ({}, False),
        ({"Group": "239.1.1.1"}, False),
        ({"SrcAddr": "10.0.0.1"}, False),
        ({"Group": "239.1.1.1", "SrcAddr": "10.0.0.1"}, False),
        ({"Group": "ff05::1"}, True),
        ({"SrcAddr": "2001:db8::1"}, True),
        ({"Group": "ff05::1", "SrcAddr": "2001:db8::1"}, True),
    ],
)
def test_underlay_is_ipv6(generic: dict[str, object], ipv6: bool) -> None:
    assert parse(**generic).underlay_is_ipv6 is ipv6


# --- values of the wrong shape -------------------------------------------------------------


@pytest.mark.parametrize("option", OPTION_NAMES)
def test_empty_value_is_an_error_for_every_option(option: str) -> None:
    generic: dict[str, object] = {"VxlanId": "42", **COMPANIONS.get(option, {}), option: ""}
    message = error_of(generic)
    assert f"{option}: empty value; expected " in message


@pytest.mark.parametrize("option", OPTION_NAMES)
@pytest.mark.parametrize("value", [None, [], {}, ["42"]])
def test_non_scalar_json_values_rejected(option: str, value: object) -> None:
    generic: dict[str, object] = {"VxlanId": "42", **COMPANIONS.get(option, {}), option: value}
    message = error_of(generic)
    assert f"{option}: " in message
    assert "expected" in message


def test_empty_ttl_message_matches_the_brief() -> None:
    assert error_of({"VxlanId": "1", "TTL": ""}) == "TTL: empty value; expected 0..255"


def test_long_junk_is_cut_short_in_messages() -> None:
    message = error_of({"VxlanId": "42", "Group": "x" * 10_000})
    assert len(message) < 200
    assert '..."' in message


def test_quotes_in_values_are_escaped() -> None:
    message = error_of({"VxlanId": 'a"b'})
    assert message.startswith('VxlanId: "a\\"b" is not an integer')


# --- unknown keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("vxlanid", "VxlanId"),
        ("VXLANID", "VxlanId"),
        ("VxlanID", "VxlanId"),
        ("VNIid", "VxlanId"),
        ("vtepdev", "VtepDev"),
        ("bridgeMtu", "bridgeMTU"),
        ("vxlanTXQLen", "vxlanTxQLen"),
        ("l2Miss", "L2miss"),
        ("Group ", "Group"),
        ("PortLo", "PortLow"),
        ("com.docker.network.driver.mut", DOCKER_MTU_OPTION),
    ],
)
def test_unknown_key_suggests_the_closest(key: str, suggestion: str) -> None:
    message = error_of({"VxlanId": "42", key: "1"})
    assert message == f'unknown option "{key}"; did you mean "{suggestion}"?'


def test_unknown_key_without_a_close_match_lists_the_valid_names() -> None:
    message = error_of({"VxlanId": "42", "com.example.zzz": "1"})
    assert message.startswith('unknown option "com.example.zzz"; valid options are bridgeName, ')
    for name in OPTION_NAMES:
        assert name in message
    assert DOCKER_MTU_OPTION in message


def test_misspelt_vni_also_says_vni_is_required() -> None:
    message = error_of({"vxlanid": "42"})
    assert message == (
        'unknown option "vxlanid"; did you mean "VxlanId"?; '
        "VxlanId is required (the VXLAN network identifier, an integer 0..16777215)"
    )


# --- required -------------------------------------------------------------------------------


def test_vni_is_required() -> None:
    assert error_of({}) == (
        "VxlanId is required (the VXLAN network identifier, an integer 0..16777215)"
    )


# --- the MTU alias -----------------------------------------------------------------------------


def test_docker_mtu_alias_sets_bridge_mtu() -> None:
    assert parse(**{DOCKER_MTU_OPTION: "1400"}).bridge.mtu == 1400


@pytest.mark.parametrize("alias_value", ["1400", 1400, "+1400"])
def test_docker_mtu_alias_agreeing_with_bridge_mtu(alias_value: object) -> None:
    assert parse(**{DOCKER_MTU_OPTION: alias_value, "bridgeMTU": "1400"}).bridge.mtu == 1400


def test_docker_mtu_alias_conflicting_with_bridge_mtu() -> None:
    message = error_of({"VxlanId": "42", "bridgeMTU": "1400", DOCKER_MTU_OPTION: "1450"})
    assert message == (
        f"bridgeMTU=1400 conflicts with {DOCKER_MTU_OPTION}=1450; "
        "give one of them, or the same value in both"
    )


@pytest.mark.parametrize(("value", "fragment"), [("abc", "is not an integer"), ("67", "67 is out")])
def test_docker_mtu_alias_errors_name_the_alias(value: str, fragment: str) -> None:
    message = error_of({"VxlanId": "42", DOCKER_MTU_OPTION: value})
    assert message.startswith(f"{DOCKER_MTU_OPTION}: ")
    assert fragment in message
    assert "expected 68..65535" in message


def test_bad_alias_beside_good_bridge_mtu_reports_only_the_alias() -> None:
    message = error_of({"VxlanId": "42", "bridgeMTU": "1400", DOCKER_MTU_OPTION: "x"})
    assert message == f'{DOCKER_MTU_OPTION}: "x" is not an integer; expected 68..65535'


# --- rules between options ----------------------------------------------------------------------


def test_bridge_mtu_above_vxlan_mtu() -> None:
    message = error_of({"VxlanId": "42", "bridgeMTU": "1500", "vxlanMTU": "1450"})
    assert "bridgeMTU=1500 is above vxlanMTU=1450" in message
    assert "would be dropped" in message
    assert "expected bridgeMTU <= vxlanMTU" in message


def test_bridge_mtu_from_alias_above_vxlan_mtu() -> None:
    message = error_of({"VxlanId": "42", DOCKER_MTU_OPTION: "1500", "vxlanMTU": "1450"})
    assert "is above vxlanMTU=1450" in message


@pytest.mark.parametrize(("bridge", "vxlan"), [("1450", "1450"), ("1400", "1450"), ("68", "65535")])
def test_bridge_mtu_at_or_below_vxlan_mtu(bridge: str, vxlan: str) -> None:
    options = parse(bridgeMTU=bridge, vxlanMTU=vxlan)
    assert (options.bridge.mtu, options.vxlan.mtu) == (int(bridge), int(vxlan))


@pytest.mark.parametrize(
    "generic",
    [
        {"bridgeName": "same", "vxlanName": "same"},
        {"bridgeName": "vx-42"},
        {"vxlanName": "br-42"},
    ],
)
def test_bridge_and_vxlan_names_must_differ(generic: dict[str, object]) -> None:
    message = error_of({"VxlanId": "42", **generic})
    assert "bridgeName and vxlanName are both" in message
    assert "need different names" in message


def test_swapped_default_names_are_fine() -> None:
    options = parse(bridgeName="vx-42", vxlanName="br-42")
    assert (options.bridge.name, options.vxlan.name) == ("vx-42", "br-42")


@pytest.mark.parametrize("vtep", ["br-42", "vx-42"])
def test_vtepdev_may_not_be_our_own_interface(vtep: str) -> None:
    message = error_of({"VxlanId": "42", "VtepDev": vtep})
    assert f'VtepDev "{vtep}" is an interface this network creates' in message


@pytest.mark.parametrize(("group", "src"), [("239.1.1.1", "2001:db8::1"), ("ff05::1", "10.0.0.1")])
def test_group_and_src_addr_families_must_match(group: str, src: str) -> None:
    message = error_of({"VxlanId": "42", "Group": group, "SrcAddr": src})
    assert message == (
        f"Group={group} and SrcAddr={src} are of different IP families; "
        "expected both IPv4 or both IPv6"
    )


def test_port_range() -> None:
    options = parse(PortLow="1000", PortHigh="1000")
    assert (options.vxlan.port_low, options.vxlan.port_high) == (1000, 1000)


def test_port_low_above_port_high() -> None:
    message = error_of({"VxlanId": "42", "PortLow": "2000", "PortHigh": "1000"})
    assert message == "PortLow=2000 is above PortHigh=1000; expected PortLow <= PortHigh"


@pytest.mark.parametrize(("given", "missing"), [("PortLow", "PortHigh"), ("PortHigh", "PortLow")])
def test_port_range_needs_both_ends(given: str, missing: str) -> None:
    message = error_of({"VxlanId": "42", given: "1000"})
    assert message == f"{given} needs {missing}; give both to set the UDP source port range"


def test_bad_port_high_is_not_also_reported_as_missing() -> None:
    message = error_of({"VxlanId": "42", "PortLow": "1000", "PortHigh": "x"})
    assert message == 'PortHigh: "x" is not an integer; expected 1..65535'


@pytest.mark.parametrize("noage", ["true", "on"])
def test_noage_conflicts_with_age(noage: str) -> None:
    message = error_of({"VxlanId": "42", "NoAge": noage, "Age": "300"})
    assert message == "NoAge=true conflicts with Age=300; give one of them"


def test_noage_false_with_age_is_fine() -> None:
    options = parse(NoAge="false", Age="300")
    assert (options.vxlan.noage, options.vxlan.age) == (False, 300)


# --- the --vtepdev daemon flag ----------------------------------------------------------------


def test_vtepdev_override_replaces_the_option() -> None:
    options = parse_network_options({"VxlanId": "1", "VtepDev": "eth1"}, vtepdev_override="bond0")
    assert options.vxlan.vtep_dev == "bond0"


def test_vtepdev_override_applies_without_the_option() -> None:
    options = parse_network_options({"VxlanId": "1"}, vtepdev_override="eth2")
    assert options.vxlan.vtep_dev == "eth2"


def test_no_override_keeps_the_option() -> None:
    assert parse_network_options({"VxlanId": "1", "VtepDev": "eth1"}).vxlan.vtep_dev == "eth1"


@pytest.mark.parametrize("bad", ["", "x" * 16, "a/b", "a b"])
def test_vtepdev_override_is_validated(bad: str) -> None:
    message = error_of({"VxlanId": "1"}, vtepdev_override=bad)
    assert message.startswith("--vtepdev: ")


def test_vtepdev_override_may_not_be_our_own_interface() -> None:
    message = error_of({"VxlanId": "1"}, vtepdev_override="br-1")
    assert 'VtepDev "br-1" is an interface this network creates' in message


# --- several problems at once ----------------------------------------------------------------


def test_all_problems_are_reported_together() -> None:
    generic: dict[str, object] = {
        "vxlanid": "1",
        "TTL": "300",
        "Group": "10.0.0.1",
        "Learning": "maybe",
        "vxlanName": "v" * 17,
        "PortLow": "5000",
        "NoAge": "yes",
        "Age": "10",
    }
    message = error_of(generic)
    parts = message.split("; ")
    expected_in_order = [
        'unknown option "vxlanid"',
        "vxlanName: ",
        "Group: 10.0.0.1 is not a multicast address",
        "TTL: 300 is out of range",
        'Learning: "maybe" is not a boolean',
        "VxlanId is required",
        "PortLow needs PortHigh",
        "NoAge=true conflicts with Age=10",
    ]
    starts = [next(i for i, p in enumerate(parts) if p.startswith(e)) for e in expected_in_order]
    assert starts == sorted(starts)


def test_rules_between_options_still_checked_when_the_vni_is_bad() -> None:
    message = error_of({"VxlanId": "x", "PortLow": "9", "PortHigh": "1"})
    assert message == (
        'VxlanId: "x" is not an integer; expected 0..16777215; '
        "PortLow=9 is above PortHigh=1; expected PortLow <= PortHigh"
    )


def test_name_rules_skipped_when_the_vni_is_unknown() -> None:
    # Default names would be placeholders: no spurious "both vx-0" complaint.
    message = error_of({"VxlanId": "x", "bridgeName": "vx-0"})
    assert message == 'VxlanId: "x" is not an integer; expected 0..16777215'


# --- the values themselves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "attr", "value"),
    [
        (BridgeSpec("b", None, None, None), "name", "c"),
        (parse().vxlan, "vni", 1),
        (parse().vxlan, "learning", False),
        (parse(), "bridge", None),
    ],
)
def test_frozen(obj: object, attr: str, value: object) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attr, value)


@pytest.mark.parametrize("obj", [parse(), parse().bridge, parse().vxlan])
def test_slots_no_stray_attributes(obj: object) -> None:
    assert not hasattr(obj, "__dict__")


def test_equal_options_are_equal_and_hashable() -> None:
    a = parse(Group="239.1.1.1", TTL="5")
    b = parse(Group="239.1.1.1", TTL=5)
    assert a == b
    assert hash(a) == hash(b)


def test_parsing_does_not_mutate_the_input() -> None:
    generic: dict[str, object] = {"VxlanId": "42", "TTL": "5"}
    parse_network_options(generic, vtepdev_override="eth1")
    assert generic == {"VxlanId": "42", "TTL": "5"}


# --- Resolve: how misses are answered (not a link attribute) -----------------------------


def test_resolve_defaults_to_the_daemon_flag() -> None:
    assert parse().resolve is None


@pytest.mark.parametrize(
    ("text", "mode"),
    [("preprogram", "preprogram"), ("on-demand", "on-demand"), ("On-Demand", "on-demand")],
)
def test_resolve_modes(text: str, mode: str) -> None:
    options = parse(Resolve=text)
    assert options.resolve == mode
    assert field(options, "Resolve") == mode


@pytest.mark.parametrize("text", ["ondemand", "lazy", "1", "true"])
def test_resolve_rejects_other_words(text: str) -> None:
    message = error_of({"VxlanId": "42", "Resolve": text})
    assert message == f'Resolve: "{text}" is not a mode; expected preprogram or on-demand'


def test_resolve_misspelt_key_is_suggested() -> None:
    message = error_of({"VxlanId": "42", "resolve": "on-demand"})
    assert message == 'unknown option "resolve"; did you mean "Resolve"?'


def test_many_unknown_keys_are_one_short_error() -> None:
    """A request with thousands of keys is not a typo: no suggestion per key."""
    generic = {f"junk{i}": "1" for i in range(5000)} | {"VxlanId": "42"}
    with pytest.raises(InvalidOption) as refused:
        parse_network_options(generic)
    message = str(refused.value)
    assert message.startswith('5000 unknown options ("junk0", "junk1", "junk2", ...)')
    assert "did you mean" not in message and len(message) < 1000


def test_a_few_unknown_keys_still_get_suggestions() -> None:
    with pytest.raises(InvalidOption, match='did you mean "VxlanId"'):
        parse_network_options({"VxlanID2": "42", "VxlanId": "42"})


def test_a_huge_key_gets_no_suggestion_and_a_cut_message() -> None:
    with pytest.raises(InvalidOption) as refused:
        parse_network_options({"V" * 500_000: "1", "VxlanId": "42"})
    assert "did you mean" not in str(refused.value) and len(str(refused.value)) < 2000
