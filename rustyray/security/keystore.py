"""Persistence of the cluster key ring in the node's state dir (file mode 0600, atomic replace).

This is the I/O edge of ``encryption``: the ring itself is pure data.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

from rustyray.security.encryption import EncryptionConfig, KeyRing, RandomBytes
from rustyray.security.errors import KeyRingError

__all__ = ["load_key_ring", "load_or_create_key_ring", "save_key_ring"]


def _write_temp(ring: KeyRing, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(ring.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def save_key_ring(ring: KeyRing, path: Path) -> None:
    """Atomically replace ``path`` with the ring (mode 0600)."""
    path = Path(path)
    os.replace(_write_temp(ring, path), path)


def load_key_ring(path: Path) -> KeyRing:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise KeyRingError(f"cannot read key ring {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise KeyRingError(f"malformed key ring {path}")
    return KeyRing.from_dict(data)


def load_or_create_key_ring(
    state_dir: Path,
    now: float,
    config: EncryptionConfig | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> KeyRing:
    """Load ``state_dir/<config.key_ring_file>``, or create and persist a one-key ring if it is absent."""
    config = config or EncryptionConfig()
    config.validate()
    path = Path(state_dir) / config.key_ring_file
    if path.exists():
        return load_key_ring(path)
    ring = KeyRing.generate(now, random_bytes)
    tmp = _write_temp(ring, path)
    try:
        os.link(tmp, path)  # fails if another process created the ring first: theirs wins
    except FileExistsError:
        return load_key_ring(path)
    finally:
        os.unlink(tmp)
    return ring
