"""The exceptions of lockd_client, and how gRPC failures map to them.

    LockError                 base of everything below
    ├── LockConflict          CONFLICT (NO_WAIT), DIE (WAIT_DIE),
    │                         UPGRADE_CONFLICT: retry later or restart
    ├── LockTimeout           not granted within the timeout (WAIT_EXPIRED,
    │                         or the RPC deadline); the wait is cancelled
    ├── LockLost              a hold ended without its owner's release
    │                         (LEASE_EXPIRED, FORCE_RELEASED, lease not
    │                         renewed in time, client closed)
    ├── NoCapacity            NO_CAPACITY: the server has no room; QUOTA:
    │                         the client has its quota of holds and waits
    ├── NotHolder             NOT_HOLDER: release/renew of a lock not held
    ├── Unauthenticated       the daemon did not accept who is calling
    └── Unavailable           the daemon could not be reached or answer

Every error names the lock and the transaction, and keeps the gRPC code and
the daemon's exact reply status (the "lockd-reply-status" trailing metadata,
proto/lockd.proto) as attributes.
"""

from __future__ import annotations

import enum

import grpc

from lockd_client import ids

# Trailing metadata of a rejected lock call: the lockd.v1.ReplyStatus name.
REPLY_STATUS_METADATA_KEY = "lockd-reply-status"
_REPLY_STATUS_PREFIX = "REPLY_STATUS_"


class LossReason(str, enum.Enum):
    """Why a hold was lost (Lock.lost_reason, LockLost.reason, on_lost)."""

    # The daemon ended the hold because its lease ran out.
    LEASE_EXPIRED = "LEASE_EXPIRED"
    # An operator ended the hold (AdminService.ForceRelease).
    FORCE_RELEASED = "FORCE_RELEASED"
    # The daemon no longer knows the transaction as a holder.
    NOT_HOLDER = "NOT_HOLDER"
    # The client could not renew before the lease (counted conservatively
    # from when the request was sent) ran out: the daemon may have ended it.
    LEASE_RAN_OUT = "LEASE_RAN_OUT"
    # Client.close() released the hold while it was still held.
    CLIENT_CLOSED = "CLIENT_CLOSED"

    def __str__(self) -> str:
        return self.value


class LockError(Exception):
    """Base class of every error of a lock operation.

    Attributes:
        lock_name: The lock's name, or None when it was given as an id.
        lock_id: The 64-bit lock id, or None when unknown.
        txn_id: The transaction's id, or None when unknown.
        code: The gRPC status code of the failed call, or None.
        reply_status: The daemon's reply status without its prefix (e.g.
            "DIE"), or None when the daemon did not give one.
    """

    def __init__(self,
                 message: str,
                 *,
                 lock_name: str | None = None,
                 lock_id: int | None = None,
                 txn_id: int | None = None,
                 code: grpc.StatusCode | None = None,
                 reply_status: str | None = None) -> None:
        super().__init__(message)
        self.lock_name = lock_name
        self.lock_id = lock_id
        self.txn_id = txn_id
        self.code = code
        self.reply_status = reply_status


class LockConflict(LockError):
    """The lock is held or awaited in a conflicting way: not granted.

    reply_status says which: "CONFLICT" (NO_WAIT met a conflict), "DIE"
    (WAIT_DIE and younger than a member: restart with the same txn id, it
    ages), "UPGRADE_CONFLICT" (shared to exclusive while others hold).
    """


class LockTimeout(LockError):
    """Not granted within the timeout. The daemon has cancelled the wait."""


class LockLost(LockError):
    """A hold ended without its owner releasing it.

    Code that ran under the lock may have run without it: its writes must be
    fenced (pass the fence to the storage) or checked.

    Attributes:
        reason: A LossReason.
    """

    def __init__(self, message: str, *, reason: LossReason,
                 **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.reason = reason


class NoCapacity(LockError):
    """The daemon has no room for the request (NO_CAPACITY), or the client
    already has as many holds and waits as the daemon lets one client have
    (QUOTA, its --client_quota)."""


class NotHolder(LockError):
    """The transaction holds no such lock (NOT_HOLDER)."""


class Unauthenticated(LockError):
    """The daemon did not accept who is calling (UNAUTHENTICATED): an
    unsigned call from outside the daemon's --open_subnets, or a signed one
    whose client id is unknown, whose key is wrong, or whose sequence number
    the daemon saw already (another Client using the same client id)."""


class Unavailable(LockError):
    """The daemon could not be reached, or did not answer in time."""


_CONFLICTS = frozenset({"CONFLICT", "DIE", "UPGRADE_CONFLICT"})
_LOSSES = {
    "LEASE_EXPIRED": LossReason.LEASE_EXPIRED,
    "FORCE_RELEASED": LossReason.FORCE_RELEASED,
    "NOT_HOLDER": LossReason.NOT_HOLDER,
}

_EXPLANATIONS = {
    "CONFLICT": "the lock is held or awaited in a conflicting mode",
    "DIE": "WAIT_DIE: a member of the lock is older; restart with the "
           "same txn id",
    "UPGRADE_CONFLICT": "cannot upgrade to exclusive while others hold the "
                        "lock or wait for it",
    "NOT_HOLDER": "the txn does not hold the lock",
    "LEASE_EXPIRED": "the lease ran out before it was renewed",
    "NO_CAPACITY": "the server has no room for the request",
    "WAIT_EXPIRED": "not granted within the wait time; the wait is "
                    "cancelled",
    "FORCE_RELEASED": "an operator force-released the hold",
    "BAD_REQUEST": "the server refused the request as malformed",
    "QUOTA": "the client has its quota of holds and waits",
}


def reply_status_of(error: grpc.RpcError) -> str | None:
    """Returns the daemon's reply status of a failed call, e.g. "DIE".

    Args:
        error: The failed call.

    Returns:
        The ReplyStatus name without "REPLY_STATUS_", or None when the call
        carries none (transport errors, deadlines, other failures).
    """
    trailing = getattr(error, "trailing_metadata", None)
    if trailing is None:
        return None
    try:
        metadata = trailing() or ()
    except Exception:  # pylint: disable=broad-except
        return None
    for key, value in metadata:
        if key == REPLY_STATUS_METADATA_KEY:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value.startswith(_REPLY_STATUS_PREFIX):
                value = value[len(_REPLY_STATUS_PREFIX):]
            return value
    return None


def loss_reason_of(reply_status: str | None,
                   code: grpc.StatusCode | None) -> LossReason | None:
    """Whether a failed Renew or Release says the hold is gone, and why.

    Args:
        reply_status: The reply status (reply_status_of), or None.
        code: The call's gRPC code.

    Returns:
        The LossReason, or None when the failure says nothing about the
        hold (the daemon was not reached, or did not answer).
    """
    if reply_status is not None:
        return _LOSSES.get(reply_status)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return LossReason.NOT_HOLDER
    return None


def error_from_rpc(error: grpc.RpcError,
                   what: str,
                   *,
                   waiting: bool = False,
                   lock_name: str | None = None,
                   lock_id: int | None = None,
                   txn_id: int | None = None) -> LockError:
    """Maps a failed LockService call to a LockError.

    Args:
        error: The failed call.
        what: What was asked, naming the lock and txn (the message's start).
        waiting: The call was an Acquire that may wait, so a passed deadline
            means "not granted in time" rather than "no answer".
        lock_name: For the error's attributes.
        lock_id: For the error's attributes.
        txn_id: For the error's attributes.

    Returns:
        The LockError subclass instance to raise.
    """
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = (error.details()
               if callable(getattr(error, "details", None)) else None)
    status = reply_status_of(error)
    fields = dict(lock_name=lock_name,
                  lock_id=lock_id,
                  txn_id=txn_id,
                  code=code,
                  reply_status=status)
    code_name = code.name if code is not None else "UNKNOWN"
    server = f" (server: {details})" if details else ""
    if status is not None:
        explanation = _EXPLANATIONS.get(status, "rejected")
        message = f"{what}: {status}: {explanation}{server}"
        if status in _CONFLICTS:
            return LockConflict(message, **fields)
        if status in _LOSSES and status != "NOT_HOLDER":
            return LockLost(message, reason=_LOSSES[status], **fields)
        if status == "NOT_HOLDER":
            return NotHolder(message, **fields)
        if status in ("NO_CAPACITY", "QUOTA"):
            return NoCapacity(message, **fields)
        if status == "WAIT_EXPIRED":
            return LockTimeout(message, **fields)
        return LockError(message, **fields)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        if waiting:
            return LockTimeout(
                f"{what}: not granted before the deadline; the wait is "
                f"cancelled{server}", **fields)
        return Unavailable(f"{what}: no answer before the deadline{server}",
                           **fields)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(f"{what}: not authenticated{server}", **fields)
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"{what}: the server is unavailable{server}",
                           **fields)
    if code == grpc.StatusCode.ABORTED:
        return LockConflict(f"{what}: aborted{server}", **fields)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return NoCapacity(f"{what}: no capacity{server}", **fields)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return NotHolder(f"{what}: not the holder{server}", **fields)
    return LockError(f"{what}: failed with {code_name}{server}", **fields)


def describe(lock_name: str | None, lock_id: int, txn_id: int) -> str:
    """'txn 0x... on lock "name" (0x...)' for messages."""
    return (f"{ids.describe_txn(txn_id)} on "
            f"{ids.describe_lock(lock_name, lock_id)}")
