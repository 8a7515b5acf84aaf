"""Parsing of source addresses and CIDRs shared by the ACL and the firewall.

IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``, what a dual-stack socket reports for an IPv4 peer) are
folded to plain IPv4 so that an IPv4 rule matches the peer however the socket was opened.
"""

from __future__ import annotations

import ipaddress

from rustyray.security.errors import InvalidRuleError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: object, field: str = "source_ip") -> IPAddress:
    try:
        addr = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRuleError(f"{field}: not an IP address: {value!r}") from exc
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_cidr(value: object, field: str = "source") -> IPNetwork:
    """A CIDR such as ``10.0.1.0/24`` or ``fd00::/8``; a bare address means a single host.

    Host bits must be zero (``10.0.1.5/24`` is rejected): such a rule is usually a typo.
    """
    if not isinstance(value, str):
        raise InvalidRuleError(f"{field}: expected a CIDR string, got {value!r}")
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise InvalidRuleError(f"{field}: malformed CIDR {value!r}: {exc}") from exc
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.network_address.ipv4_mapped:
        mapped = net.network_address.ipv4_mapped
        return ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
    return net
