"""``host:port`` text, parsed and formatted (pure: the handshake core validates advertised addresses)."""

from __future__ import annotations


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(address: str, *, field: str = "address") -> tuple[str, int]:
    """Parse ``host:port`` or ``[v6]:port``; raise ValueError naming the field."""
    address = address.strip()
    try:
        if address.startswith("["):
            host, _, rest = address[1:].partition("]")
            port = int(rest.lstrip(":"))
        else:
            host, _, p = address.rpartition(":")
            port = int(p)
    except ValueError:
        raise ValueError(f"{field}: expected host:port, got {address!r}") from None
    if not host or not 0 <= port <= 65535:
        raise ValueError(f"{field}: expected host:port, got {address!r}")
    return host, port
