"""Cluster-key authentication: AES-256-GCM over every packet and stream frame.

Like memberlist's keyring: several keys are accepted (so a key can be rotated in without a flag
day), the first one ("primary") is used to send. A sealed message is

    ENCRYPTED (1 byte) | nonce (12 random bytes) | ciphertext | GCM tag (16 bytes)

with the header byte as associated data, so it cannot be swapped for a plaintext marker.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCRYPTED = 0xE1
"""First byte of a sealed message; plaintext messages start with the protocol version (< 0x80)."""
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
_AAD = bytes([ENCRYPTED])


class AuthError(Exception):
    """A sealed message could not be opened: `reason` is "truncated" or "auth"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"a cluster key must be {KEY_BYTES} bytes")
    return bytes(key)


def decode_key(text: str) -> bytes:
    """A cluster key as given on a command line or in TASKMASTER_CLUSTER_KEY: base64 of 32 bytes
    (as `serf keygen` prints; make one with `python -c "import os,base64;
    print(base64.b64encode(os.urandom(32)).decode())"`)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a cluster key is base64 (of 32 random bytes)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"a cluster key decodes to {KEY_BYTES} bytes, this one to {len(key)}")
    return key


class Keyring:
    """The accepted keys, primary first. Mutable at run time for rotation:
    install the new key everywhere, `use` it everywhere, then `remove` the old one."""

    def __init__(self, keys: Iterable[bytes]):
        self._keys: list[bytes] = []
        self._ciphers: list[AESGCM] = []
        for key in keys:
            self.install(key)
        if not self._keys:
            raise ValueError("a keyring needs at least one key")

    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    def install(self, key: bytes) -> None:
        """Accept `key` (appended after the others; does not change the sending key)."""
        key = _check_key(key)
        if key not in self._keys:
            self._keys.append(key)
            self._ciphers.append(AESGCM(key))

    def use(self, key: bytes) -> None:
        """Send with `key` from now on (it must be installed)."""
        i = self._keys.index(_check_key(key))
        self._keys.insert(0, self._keys.pop(i))
        self._ciphers.insert(0, self._ciphers.pop(i))

    def remove(self, key: bytes) -> None:
        """Stop accepting `key`. The primary key cannot be removed (`use` another one first)."""
        i = self._keys.index(_check_key(key))
        if i == 0:
            raise ValueError("cannot remove the primary key; use() another key first")
        del self._keys[i], self._ciphers[i]

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _AAD + nonce + self._ciphers[0].encrypt(nonce, plaintext, _AAD)

    def open(self, data: bytes) -> bytes:
        """The plaintext of a sealed message, trying every accepted key; raises AuthError."""
        if len(data) < OVERHEAD:
            raise AuthError("truncated")
        if data[0] != ENCRYPTED:
            raise AuthError("auth")
        nonce, body = data[1:1 + NONCE_BYTES], data[1 + NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, _AAD)
            except InvalidTag:
                continue
        raise AuthError("auth")
