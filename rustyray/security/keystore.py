"""Persistence of the cluster key ring in the node's state dir (file mode 0600, atomic replace).

This is the I/O edge of ``encryption``: the ring itself is pure data. ``ClusterKeyStore`` is the ring file
every node of a cluster shares, changed only under an inter-process file lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path

from rustyray.security.certificates import file_lock
from rustyray.security.encryption import EncryptionConfig, KeyRing, RandomBytes
from rustyray.security.errors import KeyRingError

__all__ = ["ClusterKeyStore", "load_key_ring", "load_or_create_key_ring", "merge_rings", "save_key_ring"]

log = logging.getLogger(__name__)


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


def merge_rings(mine: KeyRing, other: KeyRing) -> bool:
    """``KeyRing.merge``, logging the conflicts it skipped. True when ``mine`` changed."""
    changed, conflicts = mine.merge(other)
    for kid, why in conflicts:  # two nodes rotated at once without a shared disk
        log.error("key ring merge conflict on key %d: %s", kid, why)
    return changed


class ClusterKeyStore:
    """``state_dir/<file_name>``: the key ring file shared by the cluster, locked by ``.<file_name>.lock``."""

    def __init__(self, state_dir: Path, file_name: str) -> None:
        self.file_name = file_name
        self.path = Path(state_dir) / file_name
        self.lock_path = Path(state_dir) / f".{file_name}.lock"

    def open(self, now: float) -> KeyRing:
        """The shared ring, created (one key) by the first node to open it."""
        with file_lock(self.lock_path):
            return load_or_create_key_ring(self.path.parent, now, EncryptionConfig(key_ring_file=self.file_name))

    def rotate(self, current: KeyRing, now: float) -> tuple[KeyRing, int]:
        """Merge ``current`` into the shared ring, add a new primary key and save: (the new ring, its id)."""
        with file_lock(self.lock_path):
            ring = load_key_ring(self.path)
            merge_rings(ring, current)
            new_id = ring.rotate(now)
            save_key_ring(ring, self.path)
        return ring, new_id

    def reload_into(self, ring: KeyRing) -> bool:
        """Merge the shared ring into ``ring`` (keys another node added); True when ``ring`` changed."""
        try:
            disk = load_key_ring(self.path)
        except KeyRingError as exc:
            log.error("cannot reload key ring: %s", exc)
            return False
        return merge_rings(ring, disk)

    def save_merged(self, ring: KeyRing) -> None:
        """Merge ``ring`` into the shared ring (or replace an unreadable one) and save it if it changed."""
        with file_lock(self.lock_path):
            try:
                disk = load_key_ring(self.path)
            except KeyRingError:
                disk = None
            if disk is None or merge_rings(disk, ring):
                save_key_ring(disk or ring, self.path)

    def export(self, now: float) -> dict[str, object]:
        """The shared ring as a dict (created if absent): what the CA holder hands an enrolling node."""
        return self.open(now).to_dict()

    def adopt(self, ring: dict[str, object]) -> None:
        """Merge a ring received at enrolment into this host's file (created when absent).

        Why: a host without the launch machine's state directory would otherwise create its own one-key
        ring on first open, and ciphertext from its nodes would not open anywhere else.
        """
        self.save_merged(KeyRing.from_dict(ring))
