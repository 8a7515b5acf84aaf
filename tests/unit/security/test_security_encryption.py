from __future__ import annotations

import base64
import os
import random
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.encryption import (
    HEADER_SIZE,
    OVERHEAD,
    CipherAlgorithm,
    EncryptionConfig,
    KeyRing,
    MessageCipher,
    encrypt_response,
)
from rustyray.security.errors import DecryptionError, KeyRingError, SecurityError
from rustyray.security.keystore import load_key_ring, load_or_create_key_ring, save_key_ring


def _seeded(seed: int):
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def _cipher(seed: int = 1, alg: CipherAlgorithm = CipherAlgorithm.AES256GCM) -> MessageCipher:
    rb = _seeded(seed)
    return MessageCipher(KeyRing.generate(0.0, rb), EncryptionConfig(algorithm=alg), rb)


ALGS = st.sampled_from(list(CipherAlgorithm))


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64), alg=ALGS)
def test_round_trip(plaintext: bytes, aad: bytes, alg: CipherAlgorithm) -> None:
    cipher = _cipher(alg=alg)
    sealed = cipher.seal(plaintext, aad)
    assert len(sealed) == len(plaintext) + OVERHEAD
    assert cipher.open(sealed, aad) == plaintext


@settings(max_examples=80, deadline=None)
@given(data=st.data(), plaintext=st.binary(max_size=256), aad=st.binary(max_size=16), alg=ALGS)
def test_flipping_any_byte_is_detected(data, plaintext: bytes, aad: bytes, alg: CipherAlgorithm) -> None:
    cipher = _cipher(alg=alg)
    cipher.ring.rotate(1.0, _seeded(2))  # a second key id exists, so key-id flips may hit a real key
    sealed = bytearray(cipher.seal(plaintext, aad))
    i = data.draw(st.integers(0, len(sealed) - 1), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    sealed[i] ^= 1 << bit
    with pytest.raises(DecryptionError):
        cipher.open(bytes(sealed), aad)


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=128), aad=st.binary(min_size=1, max_size=16), cut=st.integers(0, 200))
def test_wrong_aad_and_truncation_are_detected(plaintext: bytes, aad: bytes, cut: int) -> None:
    cipher = _cipher()
    sealed = cipher.seal(plaintext, aad)
    with pytest.raises(DecryptionError):
        cipher.open(sealed, aad + b"x")
    with pytest.raises(DecryptionError):
        cipher.open(sealed, b"")
    with pytest.raises(DecryptionError):
        cipher.open(sealed[: min(cut, len(sealed) - 1)], aad)


def test_layout_matches_reference_aead() -> None:
    """The body is plain RFC 5116 output under header||aad; check against the library directly."""
    for alg, aead_cls, wire in (
        (CipherAlgorithm.AES256GCM, AESGCM, 1),
        (CipherAlgorithm.CHACHA20_POLY1305, ChaCha20Poly1305, 2),
    ):
        cipher = _cipher(alg=alg)
        sealed = cipher.seal(b"hello", b"hdr")
        assert sealed[:4] == (1).to_bytes(4, "big") and sealed[4] == wire
        nonce = sealed[5:HEADER_SIZE]
        key = cipher.ring.primary.key
        assert aead_cls(key).decrypt(nonce, sealed[HEADER_SIZE:], sealed[:5] + b"hdr") == b"hello"


def test_nonces_are_fresh() -> None:
    cipher = MessageCipher(KeyRing.generate(0.0))
    nonces = {cipher.seal(b"x")[5:HEADER_SIZE] for _ in range(200)}
    assert len(nonces) == 200


def test_rotation_keeps_old_keys_for_opening() -> None:
    cipher = _cipher()
    old = cipher.seal(b"before", b"h")
    new_id = cipher.ring.rotate(5.0, _seeded(9))
    assert new_id == 2 and cipher.ring.primary.key_id == 2 and cipher.ring.key_ids() == [1, 2]
    new = cipher.seal(b"after", b"h")
    assert int.from_bytes(new[:4], "big") == 2
    assert cipher.open(old, b"h") == b"before"
    assert cipher.open(new, b"h") == b"after"
    cipher.ring.retire(1)
    with pytest.raises(DecryptionError, match="unknown key id"):
        cipher.open(old, b"h")
    with pytest.raises(KeyRingError):
        cipher.ring.retire(2)  # primary
    assert cipher.ring.rotate(6.0, _seeded(3)) == 3  # ids are not reused after retire


def test_other_ring_cannot_open() -> None:
    a, b = _cipher(1), _cipher(2)
    with pytest.raises(DecryptionError):
        b.open(a.seal(b"secret"))


def test_algorithm_per_message_and_parse() -> None:
    cipher = _cipher(alg=CipherAlgorithm.AES256GCM)
    sealed = cipher.seal(b"m", algorithm="chacha20-poly1305")
    assert sealed[4] == 2 and cipher.open(sealed) == b"m"
    assert CipherAlgorithm.parse("AES256GCM") is CipherAlgorithm.AES256GCM
    assert CipherAlgorithm.parse("aes-256-gcm") is CipherAlgorithm.AES256GCM
    assert CipherAlgorithm("ChaCha20Poly1305") is CipherAlgorithm.CHACHA20_POLY1305
    with pytest.raises(ValueError, match="algorithm"):
        CipherAlgorithm.parse("DES")


def test_rotation_counter() -> None:
    rb = _seeded(4)
    cipher = MessageCipher(KeyRing.generate(0.0, rb), EncryptionConfig(max_messages_per_key=3), rb)
    for _ in range(3):
        assert not cipher.needs_rotation
        cipher.seal(b"x")
    assert cipher.needs_rotation and cipher.sealed_with_primary() == 3
    cipher.ring.rotate(1.0, rb)
    assert not cipher.needs_rotation


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("max_messages_per_key", {"max_messages_per_key": 0}), ("key_ring_file", {"key_ring_file": "a/b"})],
)
def test_config_validation(field: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=field):
        EncryptionConfig(**kwargs).validate()


def test_encrypt_response_body() -> None:
    cipher = _cipher()
    body = encrypt_response(cipher, b"sensitive information", "AES256GCM")
    assert body["encrypted"] is True and body["algorithm"] == "AES256GCM"
    assert cipher.open(base64.b64decode(body["ciphertext"])) == b"sensitive information"


def test_key_ring_persistence(tmp_path: Path) -> None:
    ring = load_or_create_key_ring(tmp_path / "state", now=1.0)
    path = tmp_path / "state" / "keyring.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cipher = MessageCipher(ring)
    sealed = cipher.seal(b"persist me", b"a")
    ring.rotate(2.0)
    save_key_ring(ring, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_or_create_key_ring(tmp_path / "state", now=3.0)
    assert loaded.key_ids() == [1, 2] and loaded.primary.key_id == 2
    assert MessageCipher(loaded).open(sealed, b"a") == b"persist me"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_key_ring_file(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text('{"version": 1, "primary": 1, "keys": [{"id": 1, "key": "AAAA"}]}')
    with pytest.raises(KeyRingError):
        load_key_ring(tmp_path / "k.json")
    (tmp_path / "k2.json").write_text("not json")
    with pytest.raises(SecurityError):
        load_key_ring(tmp_path / "k2.json")
    with pytest.raises(KeyRingError):
        _ = KeyRing().primary
