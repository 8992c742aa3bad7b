"""The node inventory: what a valid file gives, and one clear line per problem."""

from __future__ import annotations

import pytest

from sipwatch.deploy.nodes import InventoryError, attribution_map, load_inventory, parse_inventory

GOOD = """
[[node]]
name = "berlin"
site = "Berlin DC"
latitude = 52.52
longitude = 13.4
public = ["203.0.113.10", "203.0.113.11"]
tunnel = "vxlan"
id = 101
site_underlay = "198.51.100.2"
central_underlay = "198.51.100.1"
tunnel_subnet = "10.99.1.0/30"
central_tunnel = "10.99.1.2"

[[node]]
name = "paris"
public = "203.0.113.20"
id = 102
site_underlay = "198.51.100.6"
central_underlay = "198.51.100.1"
tunnel_subnet = "10.99.2.0/29"
central_tunnel = "10.99.2.1"
site_tunnel = "10.99.2.6"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as exc:
        parse_inventory(text, "nodes.toml")
    return exc.value.problems


def test_valid_inventory_and_defaults():
    inv = parse_inventory(GOOD)
    berlin, paris = inv.nodes
    assert inv.names() == ["berlin", "paris"]
    assert berlin.public == ("203.0.113.10", "203.0.113.11")
    assert (berlin.latitude, berlin.longitude) == (52.52, 13.4)
    assert berlin.tunnel == "vxlan" and berlin.site_tunnel == "10.99.1.1"  # first other host
    assert berlin.device == "sw-berlin" and berlin.table == 10101 and berlin.prefixlen == 30
    assert paris.tunnel == "gre" and paris.site == "paris"  # the defaults
    assert paris.public == ("203.0.113.20",) and paris.site_tunnel == "10.99.2.6"
    assert paris.latitude is None
    assert inv.node("paris") is paris


def test_unknown_node_name_is_one_clear_line():
    with pytest.raises(InventoryError, match="no node named 'rome'"):
        parse_inventory(GOOD).node("rome")


def test_attribution_map_has_the_mapped_ipv6_form_too():
    m = attribution_map(parse_inventory(GOOD))
    assert m == {
        "10.99.1.2": "berlin",
        "::ffff:10.99.1.2": "berlin",
        "10.99.2.1": "paris",
        "::ffff:10.99.2.1": "paris",
    }


def test_every_problem_in_one_pass():
    text = (
        GOOD.replace('name = "paris"', 'name = "Berlin"')
        .replace('"203.0.113.20"', '"203.0.113.11"')
        .replace("10.99.2.0/29", "10.99.0.0/16")
        .replace("id = 102", "id = 101")
    )
    text = text.replace('central_tunnel = "10.99.2.1"', 'central_tunnel = "10.99.1.2"')
    text = text.replace('site_tunnel = "10.99.2.6"', 'site_tunnel = "10.99.2.7"')
    got = problems(text)
    expected = [
        "node Berlin name: duplicate node name",
        "node Berlin id: 101 is already the id of node berlin",
        "node Berlin public: 203.0.113.11 is already used by node berlin public",
        "node Berlin central_tunnel: 10.99.1.2 is already used by node berlin central_tunnel",
        "node Berlin tunnel_subnet: 10.99.0.0/16 overlaps 10.99.1.0/30 of node berlin",
    ]
    for e in expected:
        assert any(e in p for p in got), (e, got)
    assert all(p.startswith("nodes.toml: ") and "\n" not in p for p in got)
    assert len(got) == len(expected)  # site_tunnel 10.99.2.7 is a host of the /16: no problem


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("id = 102\n", ""), "node paris id: missing"),
        (('name = "paris"', 'name = "a/b"'), "node a/b name: 1-12 letters"),
        (('name = "paris"', 'name = "averyveryverylongname"'), "name: 1-12 letters"),
        (('public = "203.0.113.20"', 'public = ["203.0.113.300"]'), "public: not an IP address"),
        (('public = "203.0.113.20"', 'public = ["2001:db8::1"]'), "only IPv4"),
        (('public = "203.0.113.20"', "public = []"), "public: expected a list"),
        (("id = 102", 'id = 102\ntunnel = "ipip"'), 'tunnel: expected "gre" or "vxlan"'),
        (("id = 102", "id = 0"), "id: expected a whole number 1-65535"),
        (("10.99.2.0/29", "10.99.2.1/29"), "tunnel_subnet: expected a network"),
        (("10.99.2.0/29", "10.99.2.0/31"), "/30 or larger"),
        (('site_tunnel = "10.99.2.6"', 'site_tunnel = "10.99.3.6"'), "is not a host address"),
        (('site_tunnel = "10.99.2.6"', 'site_tunnel = "10.99.2.1"'), "must differ"),
        (('name = "paris"', 'name = "paris"\ncolour = "red"'), "colour: unknown key"),
        (('name = "paris"', 'name = "paris"\nlatitude = 48.8'), "latitude and longitude"),
        (("latitude = 52.52", "latitude = 95"), "latitude: expected a number"),
        (('"198.51.100.6"', '"198.51.100.1"'), "site_underlay: must differ"),
        (('"198.51.100.6"', '"203.0.113.10"'), "203.0.113.10 is already used by node berlin"),
    ],
)
def test_one_clear_line_per_problem(change, expected):
    old, new = change
    assert old in GOOD
    got = problems(GOOD.replace(old, new, 1) if old != "id = 102\n" else _drop_id())
    assert len(got) == 1 and expected in got[0], got


def _drop_id() -> str:
    return GOOD.replace("id = 102\n", "")


def test_not_toml_empty_and_unreadable(tmp_path):
    assert "not valid TOML" in problems("[[node]\n")[0]
    assert "the inventory is empty" in problems("")[0]
    assert "unknown key" in problems('[[node]]\nname="x"\n[other]\n')[0]
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "missing.toml")
    f = tmp_path / "nodes.toml"
    f.write_text(GOOD)
    assert load_inventory(f).names() == ["berlin", "paris"]


def test_a_node_with_a_bad_field_still_shows_its_clashes():
    text = GOOD.replace("id = 102", "id = 101").replace("10.99.2.0/29", "10.99.1.0/29")
    got = problems(text)
    assert any("central_tunnel: 10.99.2.1 is not a host address of 10.99.1.0/29" in p for p in got)
    assert any("node paris id: 101 is already the id of node berlin" in p for p in got)
    assert any("10.99.1.0/29 overlaps 10.99.1.0/30 of node berlin" in p for p in got)
