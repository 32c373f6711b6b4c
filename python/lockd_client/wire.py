"""lockd's wire message (struct lockd_msg in abi/lockd_abi.h), in Python.

The 72-byte message that UDP clients send and that a signed LockService
call carries in `signed_request`. Every field is big-endian except the MAC,
which holds SipHash's 8 output bytes as they are (keys.py signs). Encode and
decode mirror abi/codec.h: Encode writes the current magic and version and
every field as given; decode checks the length, magic and version only.
"""

from __future__ import annotations

import dataclasses
import struct

MAGIC = 0x4C4B  # "LK"
VERSION = 3
MESSAGE_SIZE = 72
# The bytes the MAC covers: everything before it.
MAC_BYTES = 64

# Client ids: NONE is every unauthenticated sender (served only from the
# daemon's --open_subnets); the others are 32-bit ids of keys.
CLIENT_NONE = 0
CLIENT_MAX = 0xFFFFFFFF

# enum lockd_opcode: requests below 0x80, replies with the high bit set.
# Request flags: a copy of a request that may have been served already (the
# server then answers from the owner's record).
FLAG_RETRANSMIT = 0x01

OP_ACQUIRE = 0x01
OP_RELEASE = 0x02
OP_RENEW = 0x03
OP_GRANTED = 0x81
OP_QUEUED = 0x82
OP_REJECTED = 0x83
OP_RELEASED = 0x84
OP_RENEWED = 0x85

# Everything before the MAC: magic, version, opcode, mode, policy, status,
# flags, client_id, lease_ms, wait_ms, queue_pos, seq, lock_id, txn_id,
# fence, ticket.
_HEAD = struct.Struct(">HBBBBBBIIIIQQQQQ")
assert _HEAD.size == MAC_BYTES


@dataclasses.dataclass(frozen=True)
class Message:
    """One wire message, every field a host int (enum values as in the
    ABI: lockd_pb2's Mode, Policy and ReplyStatus have the same numbers).
    `mac` is the 8 MAC bytes as on the wire."""

    opcode: int = 0
    mode: int = 0
    policy: int = 0
    status: int = 0
    flags: int = 0
    client_id: int = CLIENT_NONE
    lease_ms: int = 0
    wait_ms: int = 0
    queue_pos: int = 0
    seq: int = 0
    lock_id: int = 0
    txn_id: int = 0
    fence: int = 0
    ticket: int = 0
    mac: bytes = bytes(8)


def encode(message: Message) -> bytes:
    """The message's 72 bytes, with its MAC as given.

    Raises:
        ValueError: A field does not fit its width.
    """
    if len(message.mac) != 8:
        raise ValueError(f"a MAC is 8 bytes, not {len(message.mac)}")
    try:
        head = _HEAD.pack(MAGIC, VERSION, message.opcode, message.mode,
                          message.policy, message.status, message.flags,
                          message.client_id, message.lease_ms, message.wait_ms,
                          message.queue_pos, message.seq, message.lock_id,
                          message.txn_id, message.fence, message.ticket)
    except struct.error as error:
        raise ValueError(f"a field does not fit: {error}: {message}") from None
    return head + bytes(message.mac)


def decode(data: bytes) -> Message:
    """Parses one message.

    Raises:
        ValueError: Not 72 bytes, or the wrong magic or version.
    """
    if len(data) != MESSAGE_SIZE:
        raise ValueError(f"a message is {MESSAGE_SIZE} bytes, not {len(data)}")
    (magic, version, opcode, mode, policy, status, flags, client_id, lease_ms,
     wait_ms, queue_pos, seq, lock_id, txn_id, fence,
     ticket) = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"bad magic: 0x{magic:04x}, need 0x{MAGIC:04x}")
    if version != VERSION:
        raise ValueError(f"bad version: {version}, need {VERSION}")
    return Message(opcode=opcode,
                   mode=mode,
                   policy=policy,
                   status=status,
                   flags=flags,
                   client_id=client_id,
                   lease_ms=lease_ms,
                   wait_ms=wait_ms,
                   queue_pos=queue_pos,
                   seq=seq,
                   lock_id=lock_id,
                   txn_id=txn_id,
                   fence=fence,
                   ticket=ticket,
                   mac=bytes(data[MAC_BYTES:]))
