"""Lock ids and transaction ids, computed exactly as the C++ client does.

Lock names hash to 64-bit lock ids with the protocol's LockIdForName
(abi/codec.h); transaction ids are time-ordered like Client::NewTxnId
(client/client.h), so WAIT_DIE treats Python and C++ transactions alike.
"""

from __future__ import annotations

import secrets
import threading
import time

_MASK64 = (1 << 64) - 1
_FNV_OFFSET_BASIS = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3

# Low bits of a txn id drawn at random once per generator (per Client).
TXN_RANDOM_BITS = 14
# 2024-01-01T00:00:00Z in microseconds since the Unix epoch.
TXN_EPOCH_MICROS = 1704067200 * 1_000_000

MAX_UINT64 = _MASK64


def lock_id_for_name(name: str | bytes) -> int:
    """Returns the lock id of a lock name, as every lockd client computes it.

    FNV-1a 64 over the name's bytes (UTF-8 for a str), then the splitmix64
    finalizer. The function is part of the protocol: the daemon hashes a
    request's lock_name with it, so names and ids address the same locks.

    Args:
        name: The lock name.

    Returns:
        The 64-bit lock id.
    """
    data = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    value = _FNV_OFFSET_BASIS
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


class TxnIdGenerator:
    """Makes strictly increasing, time-ordered 64-bit transaction ids.

    An id is the microseconds since 2024-01-01 UTC in the high 50 bits (so a
    smaller id is an older transaction, which WAIT_DIE favours) and a number
    drawn at random once per generator in the low 14 bits (so clients that
    start transactions in the same microsecond differ). Ids of one generator
    strictly increase even when the wall clock stands still or steps back.
    Thread-safe.
    """

    def __init__(self, random_bits: int | None = None) -> None:
        """Creates a generator.

        Args:
            random_bits: The low 14 bits of every id; None draws them at
                random (tests pin them).
        """
        if random_bits is None:
            random_bits = secrets.randbits(TXN_RANDOM_BITS)
        if not 0 <= random_bits < (1 << TXN_RANDOM_BITS):
            raise ValueError(f"random_bits {random_bits} does not fit in "
                             f"{TXN_RANDOM_BITS} bits")
        self._random_bits = random_bits
        self._last_micros = 0
        self._mu = threading.Lock()

    @property
    def random_bits(self) -> int:
        """The low bits that every id of this generator carries."""
        return self._random_bits

    def next(self) -> int:
        """Returns a new id, greater than every id returned before."""
        micros = time.time_ns() // 1000 - TXN_EPOCH_MICROS
        with self._mu:
            # Two transactions started in one microsecond still differ.
            self._last_micros = max(micros, self._last_micros + 1)
            return (self._last_micros << TXN_RANDOM_BITS) | self._random_bits


def txn_start_micros(txn_id: int) -> int:
    """Returns when a txn id was made: microseconds since 2024-01-01 UTC."""
    return txn_id >> TXN_RANDOM_BITS


def describe_txn(txn_id: int) -> str:
    """Formats a txn id the way lockd's C++ client does ("txn 0x...")."""
    return f"txn 0x{txn_id:016x}"


def describe_lock(name: str | None, lock_id: int) -> str:
    """Formats a lock for messages: 'lock "orders/42" (0x...)'."""
    if name is None:
        return f"lock 0x{lock_id:016x}"
    return f'lock "{name}" (0x{lock_id:016x})'
