"""Client keys: the key file, and signing wire messages (abi/keys.h).

A client authenticates by signing each request: the request as a lockd wire
message (wire.py) with its client id and a fresh sequence number, and the
SipHash-2-4 MAC of its first 64 bytes under the client's 128-bit key. The
daemon checks the MAC with the key it has for that id, and drops a sequence
number its replay window has seen or has left behind.

Key file: one client per line, "<client id> <32 hex digits>", the key's 16
bytes in order; blank lines and lines starting with '#' are ignored. Client
ids are 1..2^32-1 (0 is the unauthenticated sender).
"""

from __future__ import annotations

import dataclasses
import threading
import time

from lockd_client import siphash
from lockd_client import wire

KEY_BYTES = siphash.KEY_BYTES

def parse_key(text: str) -> bytes:
    """Returns the 16 bytes of a key written as 32 hex digits.

    Raises:
        ValueError: Not 32 hex digits, or all zero (not a key).
    """
    if len(text) != 2 * KEY_BYTES:
        raise ValueError(
            f"a key is {2 * KEY_BYTES} hex digits, not {len(text)}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError("a key is hex digits only") from None
    if len(key) != KEY_BYTES:  # fromhex skips whitespace
        raise ValueError("a key is hex digits only")
    if not any(key):
        raise ValueError("an all-zero key is not a key")
    return key


def _key_bytes(key: bytes | str) -> bytes:
    if isinstance(key, str):
        return parse_key(key)
    key = bytes(key)
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes, not {len(key)}")
    if not any(key):
        raise ValueError("an all-zero key is not a key")
    return key


def read_key_file(path: str) -> dict[int, bytes]:
    """Returns every client of a key file: {client id: 16 key bytes}.

    Raises:
        OSError: The file cannot be read.
        ValueError: A line is malformed, names client 0, or repeats an id;
            the message names the file and the line.
    """
    keys: dict[int, bytes] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{number}: "
            fields = text.split()
            if (len(fields) != 2 or not fields[0].isascii() or
                    not fields[0].isdigit() or
                    int(fields[0]) > wire.CLIENT_MAX):
                raise ValueError(
                    f'{where}expected "<client id> <32 hex digits>"')
            client_id = int(fields[0])
            if client_id == wire.CLIENT_NONE:
                raise ValueError(
                    f"{where}client id 0 is reserved (unauthenticated)")
            try:
                key = parse_key(fields[1])
            except ValueError as error:
                raise ValueError(f"{where}{error}") from None
            if client_id in keys:
                raise ValueError(f"{where}client {client_id} listed twice")
            keys[client_id] = key
    return keys


def read_client_key(path: str,
                    client_id: int | None = None) -> tuple[int, bytes]:
    """Returns (client id, key) of one client of a key file.

        client_id, key = lockd_client.read_client_key("/etc/lockd/client.key")
        client = lockd_client.Client(target, client_id=client_id, key=key)

    Args:
        path: The key file.
        client_id: The client to read; None = the file's only client.

    Raises:
        OSError: The file cannot be read.
        ValueError: The file is malformed, does not list `client_id`, or
            (client_id None) does not list exactly one client.
    """
    keys = read_key_file(path)
    if client_id is None:
        if len(keys) != 1:
            raise ValueError(f"key file {path} lists {len(keys)} clients; "
                             "say which one")
        return next(iter(keys.items()))
    if client_id not in keys:
        raise ValueError(f"key file {path} has no key for client {client_id}")
    return client_id, keys[client_id]


def message_mac(data: bytes, key: bytes) -> bytes:
    """The MAC of an encoded message: SipHash-2-4 of its first 64 bytes."""
    return siphash.siphash24(key, data[:wire.MAC_BYTES])


def encode_signed(message: wire.Message, key: bytes) -> bytes:
    """`message` encoded with its MAC under `key`."""
    head = wire.encode(message)[:wire.MAC_BYTES]
    return head + message_mac(head, key)


def mac_valid(data: bytes, key: bytes) -> bool:
    """Whether an encoded message's MAC is right under `key` (False if it
    is not a whole message)."""
    return (len(data) == wire.MESSAGE_SIZE and
            message_mac(data, key) == data[wire.MAC_BYTES:])


class Signer:
    """Signs one client's requests, each with a fresh sequence number.

    Sequence numbers start at the wall clock in nanoseconds and grow by one
    per request, as the C++ client's do, so that a later Signer of the same
    client starts above what an earlier one used. The daemon keeps one
    replay window per client id (the last 64 numbers): two Signers (or
    Clients, or processes) that use the same client id at the same time
    make each other's requests look replayed. Give each its own id.
    Thread-safe.
    """

    def __init__(self,
                 client_id: int,
                 key: bytes | str,
                 first_seq: int | None = None) -> None:
        """Makes a signer.

        Args:
            client_id: The client's id, 1..2^32-2.
            key: Its key: 16 bytes, or 32 hex digits as in a key file.
            first_seq: The first sequence number; None = time.time_ns().

        Raises:
            ValueError: A bad id or key.
        """
        if (not isinstance(client_id, int) or isinstance(client_id, bool) or
                not wire.CLIENT_NONE < client_id <= wire.CLIENT_MAX):
            raise ValueError(f"client_id must be an int in [1, "
                             f"{wire.CLIENT_MAX}], not {client_id!r}")
        self._client_id = client_id
        self._key = _key_bytes(key)
        self._next_seq = time.time_ns() if first_seq is None else first_seq
        self._mu = threading.Lock()

    @property
    def client_id(self) -> int:
        return self._client_id

    def next_seq(self) -> int:
        """A sequence number above every one handed out before."""
        with self._mu:
            seq = self._next_seq
            self._next_seq = seq + 1
        return seq

    def sign(self, message: wire.Message) -> bytes:
        """The 72 bytes of `message` as this client's request: its client
        id, a fresh sequence number, and the MAC."""
        return encode_signed(
            dataclasses.replace(message,
                                client_id=self._client_id,
                                seq=self.next_seq()), self._key)

    def __repr__(self) -> str:  # Never the key.
        return f"<lockd_client.keys.Signer client {self._client_id}>"
