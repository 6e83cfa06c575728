"""Encryption at rest: the data keys, sealed records, keyed lookups.

What the store keeps about a young person — the conversation record (with the channel identity: phone number,
PSID, chat id, web chat session), transcript entries (texts, attachments, listeners' notes), outbox and inbox
payloads, notices, referrals and their evidence files — is *sealed* before it is written: AES-256-GCM from
``cryptography``, a random 96-bit nonce per record, the record kind as associated data (a sealed transcript entry
cannot be passed off as a conversation). The stored value is bytes (both stores are binary-safe)::

    ~g2 ‖ key id (4 bytes) ‖ nonce (12) ‖ ciphertext ‖ tag (16)

33 bytes more than the record's JSON as packed (:mod:`gateway.packing`, when that makes it shorter). The key id (a
hash of the key, never the key; 8 hex characters in messages) says which key opens it, so during a rotation the
current key seals and the old ones still open (``gateway data-key rotate`` reseals everything under the current key,
then the old keys can go). Records written by earlier versions are read as they are:
``~g1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`` (the same sealing in base64 text, a third larger) and JSON in
clear (before encryption existed); the rotation rewrites both in the form above. A record that a key missing from
this gateway sealed, or that fails authentication, raises :class:`~gateway.errors.DataKeyError` naming the key id
and the record kind, never the content.

Where the keys come from (:meth:`DataKeys.from_settings`):

* ``GATEWAY_DATA_KEY`` (the current key, as ``gateway data-key new`` prints it) and ``GATEWAY_DATA_KEYS_OLD``
  (comma-separated, read only). Lookups by identity are then keyed with ``GATEWAY_SECRET_KEY`` (as blocks and
  rate counters, :mod:`gateway.keyed`), which must be set and stay the same.
* Else, for the embedded SQLite store only: the file ``data-keys`` beside the SQLite file (``var/`` by default),
  generated once with mode 0600 in a directory created 0700; it holds the lookup secret too. A Redis store needs
  ``GATEWAY_DATA_KEY``: every instance must open what the others sealed.

Lookups (the active conversation of a channel identity, the inbox's order per sender) use a keyed hash
(:class:`~gateway.keyed.KeyedHash`): the store never holds an identity in clear, not even in a key name or an
index, and without the secret nobody can test a guessed phone number against a hash.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError, DataKeyError
from gateway.keyed import KeyedHash
from gateway.packing import pack, unpack

if TYPE_CHECKING:
    from gateway.settings import Settings

SEALED = "~g1:"  # records written by earlier versions: base64 text after the head and the key id
SEALED_BYTES = SEALED.encode()  # files (web chat uploads): the same head, then the nonce and ciphertext as bytes
SEALED_RECORD = b"~g2"  # records: the head, the key id's 4 bytes, then the nonce and ciphertext as bytes
KEY_FILE = "data-keys"
_NONCE = 12
_HEAD = len(SEALED_RECORD)
_FILE_HEADER = (
    "# helpline-gateway data keys: the first 'key' seals, the others only open. Keep this file private\n"
    "# (mode 0600) and back it up apart from the store: without it, the store cannot be read.\n"
)


class _Nonces:
    """Random 96-bit nonces, drawn from the operating system 512 at a time: a system call per seal was most of
    its cost on a loaded machine. Thread-safe (SQLite seals on its own thread); a forked child draws afresh, so
    parent and child never share a nonce."""

    _BATCH = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._pool, self._next = b"", 0

    def __call__(self) -> bytes:
        with self._lock:
            if self._next >= len(self._pool):
                self._pool, self._next = os.urandom(_NONCE * self._BATCH), 0
            start = self._next
            self._next += _NONCE
        return self._pool[start : start + _NONCE]


def new_key() -> str:
    """A fresh data key: 32 random bytes, base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def parse_key(text: str, variable: str) -> bytes:
    """The 32 bytes of a data key; ConfigError naming ``variable`` (never the value) when malformed."""
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{variable} must be 32 random bytes in base64url (`gateway data-key new` prints one)")
    return raw


def key_id(key: bytes) -> str:
    """8 hex characters that name a key without revealing it."""
    return hashlib.sha256(b"gateway-data-key-id\n" + key).hexdigest()[:8]


class DataKeys:
    """The keys that seal and open stored records, and the keyed hash for lookups by identity."""

    def __init__(self, keys: Sequence[bytes], lookup_secret: str, *, source: str) -> None:
        if not keys:
            raise ConfigError("no data key")
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.current_id = key_id(keys[0])
        self._current = self._ciphers[self.current_id]
        self._current_head = SEALED_RECORD + bytes.fromhex(self.current_id)
        self._hash = KeyedHash(lookup_secret)
        self._nonces = _Nonces()
        self.source = source  # where the keys came from, for messages: "GATEWAY_DATA_KEY" or the file's path

    @property
    def ids(self) -> list[str]:
        """The current key's id first, then the old ones'."""
        return list(self._ciphers)

    def seal(self, kind: str, text: str) -> bytes:
        """A record sealed with the current key: ``~g2`` ‖ key id ‖ nonce ‖ ciphertext ‖ tag, as bytes. Its text
        is packed first when that makes it shorter (:mod:`gateway.packing`)."""
        nonce, data = self._nonces(), pack(kind, text.encode())
        return self._current_head + nonce + self._current.encrypt(nonce, data, kind.encode())

    def open(self, kind: str, stored: str | bytes) -> str:
        """The text of a stored record: opened when sealed (either form), as it is when written before encryption.
        A ``str`` is taken as the store's client decoded it (Redis: UTF-8 with ``surrogateescape``, which gives
        the bytes back exactly)."""
        raw = stored.encode("utf-8", "surrogateescape") if isinstance(stored, str) else stored
        if raw.startswith(SEALED_RECORD):
            kid, body = raw[_HEAD : _HEAD + 4].hex(), raw[_HEAD + 4 :]
            cipher = self._cipher(kind, kid)
            try:
                data = cipher.decrypt(body[:_NONCE], body[_NONCE:], kind.encode())
                return unpack(kind, data).decode()
            except (InvalidTag, ValueError, zlib.error):
                raise self._unopened(kind, kid) from None
        if not raw.startswith(SEALED_BYTES):
            return raw.decode()
        kid, _, text = raw[len(SEALED_BYTES) :].decode("ascii", "replace").partition(":")
        cipher = self._cipher(kind, kid)
        try:
            data = binascii.a2b_base64(text)  # twice as fast as base64.urlsafe_b64decode (bench/sealing.py)
            return cipher.decrypt(data[:_NONCE], data[_NONCE:], kind.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise self._unopened(kind, kid) from None

    @staticmethod
    def _unopened(kind: str, kid: str) -> DataKeyError:
        return DataKeyError(
            f"a stored {kind} record does not open with data key {kid}: altered, or not a record of this kind"
        )

    def seal_bytes(self, kind: str, data: bytes) -> bytes:
        """A file sealed as bytes (no base64): ``~g1:<key id>:`` then nonce ‖ ciphertext ‖ tag."""
        nonce = self._nonces()
        sealed = self._current.encrypt(nonce, data, kind.encode())
        return b"%s%s:%s%s" % (SEALED_BYTES, self.current_id.encode(), nonce, sealed)

    def open_bytes(self, kind: str, stored: bytes) -> bytes:
        """A file stored by :meth:`seal_bytes`, or as it is when stored before encryption (an image never starts
        with the sealed head)."""
        if not stored.startswith(SEALED_BYTES):
            return stored
        head = len(SEALED_BYTES)
        kid, body = stored[head : head + 8].decode("ascii", "replace"), stored[head + 9 :]
        cipher = self._cipher(kind, kid)
        try:
            return cipher.decrypt(body[:_NONCE], body[_NONCE:], kind.encode())
        except InvalidTag:
            raise DataKeyError(f"a stored {kind} file does not open with data key {kid}: altered") from None

    def reseal_bytes(self, kind: str, stored: bytes) -> bytes | None:
        """The file sealed with the current key, or None when it already is."""
        if stored.startswith(b"%s%s:" % (SEALED_BYTES, self.current_id.encode())):
            return None
        return self.seal_bytes(kind, self.open_bytes(kind, stored))

    def _cipher(self, kind: str, kid: str) -> AESGCM:
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DataKeyError(
                f"a stored {kind} record is sealed with data key {kid}, which this gateway does not have"
                f" (its keys: {', '.join(self.ids)}, from {self.source})"
            )
        return cipher

    def is_current(self, stored: str | bytes) -> bool:
        """Sealed with the current key in the current form (nothing for a rotation to do)."""
        raw = stored.encode("utf-8", "surrogateescape") if isinstance(stored, str) else stored
        return raw.startswith(self._current_head)

    def reseal(self, kind: str, stored: str | bytes) -> bytes | None:
        """The record sealed with the current key in the current form, or None when it already is."""
        return None if self.is_current(stored) else self.seal(kind, self.open(kind, stored))

    def lookup(self, purpose: str, value: str) -> str:
        """The keyed hash that finds a record by an identifying value (32 hex characters)."""
        return self._hash(purpose, value)

    def identity(self, channel: str, sender: str) -> str:
        """The keyed hash of a channel identity: what the store indexes a conversation's sender by."""
        return self._hash("sender", f"{channel}\n{sender}")

    @classmethod
    def from_settings(cls, settings: Settings) -> DataKeys:
        current, old = settings.data_key.get_secret_value(), settings.data_keys_old.get_secret_value()
        secret_key = settings.secret_key.get_secret_value()
        if current:
            if not secret_key:
                raise ConfigError("GATEWAY_DATA_KEY needs GATEWAY_SECRET_KEY: lookups by identity are keyed with it")
            keys = [parse_key(current, "GATEWAY_DATA_KEY")]
            keys += [parse_key(k, "GATEWAY_DATA_KEYS_OLD") for k in old.split(",") if k.strip()]
            return cls(keys, secret_key, source="GATEWAY_DATA_KEY")
        if old:
            raise ConfigError("GATEWAY_DATA_KEYS_OLD is set without GATEWAY_DATA_KEY")
        return cls.for_store(settings.store)

    @classmethod
    def for_store(cls, url: str) -> DataKeys:
        """The embedded default: the key file beside the SQLite file (created on first use); Redis has none."""
        return KeyFile.of_store(url).load()


class KeyFile:
    """The embedded default's keys: ``index <secret>`` and ``key <key>`` lines (the first key seals)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_store(cls, url: str) -> KeyFile:
        """The key file of a SQLite store (beside its file); ConfigError for Redis, which needs GATEWAY_DATA_KEY."""
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                "GATEWAY_DATA_KEY is needed with a Redis store: every instance must open what the others sealed"
                " (`gateway data-key new` prints a key)"
            )
        from gateway.store.sqlite import path_from_url  # the store imports this module

        return cls(path_from_url(url).parent / KEY_FILE)

    def load(self) -> DataKeys:
        """The file's keys; a new file (0600, in a directory created 0700) when there is none."""
        if not self.path.exists():
            private_directory(self.path.parent)
            self._create(secrets.token_urlsafe(32), [new_key()])
        lookup, keys = self._read()
        return DataKeys([parse_key(k, str(self.path)) for k in keys], lookup, source=str(self.path))

    def rotate(self) -> str:
        """Put a new current key in front of the file's keys (the old ones still open); its id."""
        lookup, keys = self._read()
        key = new_key()
        self._write(lookup, [key, *keys])
        return key_id(parse_key(key, str(self.path)))

    def forget_old(self) -> list[str]:
        """Keep only the current key; the ids of the keys dropped."""
        lookup, keys = self._read()
        self._write(lookup, keys[:1])
        return [key_id(parse_key(k, str(self.path))) for k in keys[1:]]

    def _read(self) -> tuple[str, list[str]]:
        if self.path.stat().st_mode & 0o077:
            self.path.chmod(0o600)  # a copy restored with a loose mode
        lookup, keys = "", []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            label, _, value = line.strip().partition(" ")
            if label == "index":
                lookup = value.strip()
            elif label == "key":
                keys.append(value.strip())
        if not lookup or not keys:
            raise ConfigError(f"{self.path}: needs an 'index' line and at least one 'key' line")
        return lookup, keys

    def _text(self, lookup: str, keys: list[str]) -> str:
        return _FILE_HEADER + f"index {lookup}\n" + "".join(f"key {k}\n" for k in keys)

    def _create(self, lookup: str, keys: list[str]) -> None:
        """Written aside then linked in place: of two processes creating it at once, one file wins whole."""
        temporary = self._temporary(lookup, keys)
        try:
            with contextlib.suppress(FileExistsError):  # another process created it first: theirs is kept
                os.link(temporary, self.path)
        finally:
            temporary.unlink()

    def _write(self, lookup: str, keys: list[str]) -> None:
        os.replace(self._temporary(lookup, keys), self.path)

    def _temporary(self, lookup: str, keys: list[str]) -> Path:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(self._text(lookup, keys))
            file.flush()
            os.fsync(file.fileno())
        return temporary


def private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) for the owner only (0700); an existing directory is left as it is."""
    if path.is_dir():
        return
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty for the owner only (0600), or take an existing one's group and world access away."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
