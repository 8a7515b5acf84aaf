"""Which addresses a node may dial (pure).

Why: the management API takes addresses from callers (connect, join seeds, health
checks), and a node that dials whatever it is told is a server-side request
forgery tool, and on a shared network a way to send traffic where it must not go.
By default a node dials only loopback; an operator widens that with
``[transport] allowed_networks`` (``launch --host auto`` adds the Ray nodes' own
addresses). Host names other than ``localhost`` are refused unless listed in
``allowed_hosts``, so no lookup is made for an arbitrary name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_ALLOWED_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class DialPolicy:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    hosts: frozenset[str]

    @classmethod
    def build(cls, networks: Iterable[str] = DEFAULT_ALLOWED_NETWORKS, hosts: Iterable[str] = ()) -> DialPolicy:
        nets = []
        for n in networks:
            try:
                nets.append(ipaddress.ip_network(n, strict=False))
            except ValueError as exc:
                raise ValueError(f"transport.allowed_networks: {n!r} is not a network ({exc})") from None
        return cls(tuple(nets), frozenset(h.lower() for h in hosts) | {"localhost"})

    def refusal(self, host: str) -> str | None:
        """None when ``host`` may be dialled, else the reason it may not."""
        h = host.strip().strip("[]").lower()
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            if h in self.hosts:
                return None
            return (f"host {host!r} is not an allowed host name; list it in [transport] allowed_hosts "
                    f"or use an address in the allowed networks")
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.networks if net.version == ip.version):
            return None
        allowed = ", ".join(str(n) for n in self.networks)
        return (f"{host} is outside the networks this node may dial ({allowed}); "
                f"widen [transport] allowed_networks to reach it")
