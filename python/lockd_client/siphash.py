"""SipHash-2-4 (Aumasson and Bernstein, 2012) in pure Python.

The MAC of lockd's wire messages: abi/siphash.h is the C definition that the
datapath, the daemon and the C++ client run. This is the reference
algorithm over any number of bytes (lockd signs whole 64-bit words, where
both agree); it returns SipHash's 8 output bytes, which is how a MAC is
stored in a message.
"""

from __future__ import annotations

import struct

KEY_BYTES = 16
OUTPUT_BYTES = 8

_MASK64 = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def _rounds(v: list[int], count: int) -> None:
    v0, v1, v2, v3 = v
    for _ in range(count):
        v0 = (v0 + v1) & _MASK64
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK64
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK64
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK64
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    v[:] = [v0, v1, v2, v3]


def siphash24(key: bytes, data: bytes) -> bytes:
    """Returns SipHash-2-4 of `data` under the 128-bit `key`.

    Args:
        key: The 16 key bytes (k0 = the first 8 as a little-endian word, k1
            the rest), as a lockd key file spells them.
        data: The message, of any length.

    Returns:
        SipHash's 8 output bytes (its 64-bit result, little-endian).

    Raises:
        ValueError: The key is not 16 bytes.
    """
    if len(key) != KEY_BYTES:
        raise ValueError(f"a SipHash key is {KEY_BYTES} bytes, not {len(key)}")
    k0, k1 = struct.unpack("<QQ", key)
    v = [
        k0 ^ 0x736F6D6570736575,
        k1 ^ 0x646F72616E646F6D,
        k0 ^ 0x6C7967656E657261,
        k1 ^ 0x7465646279746573,
    ]
    data = bytes(data)
    whole = len(data) - len(data) % 8
    for (m,) in struct.iter_unpack("<Q", data[:whole]):
        v[3] ^= m
        _rounds(v, 2)
        v[0] ^= m
    # The last block: the bytes left over, and the length (mod 256) in the
    # top byte.
    last = (len(data) & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    v[3] ^= last
    _rounds(v, 2)
    v[0] ^= last
    v[2] ^= 0xFF
    _rounds(v, 4)
    return struct.pack("<Q", v[0] ^ v[1] ^ v[2] ^ v[3])
