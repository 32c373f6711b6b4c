"""A Python client of lockd's gRPC LockService.

    client = lockd_client.Client("198.18.0.1:7451")
    with client.lock("orders/42") as fence:
        ...  # write, passing `fence` to the storage so it rejects stale writers

Lock semantics are those of docs/semantics.md: shared and exclusive locks,
strict FIFO queues, fencing tokens that only grow, and leases. This client
talks to one lockd over gRPC; the C++ client library (client/client.h) also
speaks the UDP fast path and spreads locks over many servers.

Authentication: a Client made with a client id and key signs every request
(keys.Signer: the request as a lockd wire message with a fresh sequence
number and its SipHash-2-4 MAC, sent as `signed_request`); the daemon acts
for that client only. Without them, calls are unsigned, which the daemon
serves only from its --open_subnets (labs).

Leases: while a lock is held, a background thread of the Client renews it
every third of the lease the server granted. The client counts a lease
conservatively from the moment its request was sent (the server started it
later), so it never believes in a lease the server has already ended. When
the server rejects a renewal (LEASE_EXPIRED, FORCE_RELEASED, NOT_HOLDER), or
the lease runs out before a renewal succeeded, the hold is *lost*: its
`lost` turns true, its `on_lost` callback runs, and leaving its `with` block
raises LockLost.

Thread safety: a Client is shared by threads. A Lock may be released from
any thread; its state is read from any thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import logging
import math
import threading
import time
from typing import Callable, Iterator

import grpc

from lockd_client import errors
from lockd_client import ids
from lockd_client import keys
from lockd_client import lockd_pb2
from lockd_client import lockd_pb2_grpc
from lockd_client import wire

_LOG = logging.getLogger("lockd_client")

_MAX_UINT32 = (1 << 32) - 1

# How much longer than `timeout` the RPC of a timed wait may take: the
# daemon's own wait_ms ends the wait at `timeout` and says so
# (WAIT_EXPIRED), which is a definite answer; the RPC deadline only ends a
# call whose answer does not come.
_WAIT_DEADLINE_GRACE_S = 0.5

OnLost = Callable[[errors.LossReason], None]


class Policy(enum.IntEnum):
    """What an acquire does when the lock is held in a conflicting mode or
    others already wait for it (docs/semantics.md, ACQUIRE)."""

    # Join the FIFO queue and wait to be granted.
    WAIT = lockd_pb2.POLICY_WAIT
    # Fail at once with LockConflict (a try-lock).
    NO_WAIT = lockd_pb2.POLICY_NO_WAIT
    # Wait if older (smaller txn id) than every holder and waiter, else
    # fail at once with LockConflict (reply_status "DIE").
    WAIT_DIE = lockd_pb2.POLICY_WAIT_DIE


class _State(enum.Enum):
    HELD = "held"
    RELEASING = "releasing"
    RELEASED = "released"
    LOST = "lost"


@dataclasses.dataclass(frozen=True)
class _Target:
    """A lock as the caller named it."""

    name: str | None
    lock_id: int

    @classmethod
    def of(cls, lock: str | int) -> _Target:
        if isinstance(lock, str):
            if not lock:
                raise ValueError("a lock name must not be empty")
            return cls(lock, ids.lock_id_for_name(lock))
        if isinstance(lock, int) and not isinstance(lock, bool):
            if not 0 <= lock <= ids.MAX_UINT64:
                raise ValueError(f"lock id {lock} is not a 64-bit unsigned")
            return cls(None, lock)
        raise TypeError(
            f"a lock is a name (str) or a 64-bit id (int), not {lock!r}")

    def describe(self) -> str:
        return ids.describe_lock(self.name, self.lock_id)


class Lock:
    """One hold of one lock by one transaction; made by Client.acquire().

    A Lock is a context manager: leaving its `with` block releases it, and
    raises LockLost if the hold was lost meanwhile.

        lock = client.acquire("orders/42", lease_ms=5000, on_lost=alert)
        with lock:
            store.write(key, value, fence=lock.fence)
    """

    def __init__(self, client: Client, target: _Target, txn_id: int,
                 shared: bool, fence: int, lease_ms: int, lease_start: float,
                 on_lost: OnLost | None) -> None:
        self._client = client
        self._target = target
        self._txn_id = txn_id
        self._shared = shared
        self._fence = fence
        self._on_lost = on_lost
        # Guarded by client._mu.
        self._state = _State.HELD
        self._lost_reason: errors.LossReason | None = None
        self._lost_reported = False
        self._owner_done = False  # release() or __exit__ ran
        self._renewing = False
        self._lease_ms = lease_ms
        self._expires_at = 0.0
        self._next_renew_at = 0.0
        self._set_lease(lease_start, lease_ms)

    # --- What it is -------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The lock's name, or None when it was given as an id."""
        return self._target.name

    @property
    def lock_id(self) -> int:
        """The 64-bit lock id."""
        return self._target.lock_id

    @property
    def txn_id(self) -> int:
        """The transaction id the lock is held by."""
        return self._txn_id

    @property
    def shared(self) -> bool:
        """True for a shared hold, False for an exclusive one."""
        return self._shared

    @property
    def fence(self) -> int:
        """The fencing token of this hold: greater than every earlier one."""
        return self._fence

    @property
    def lease_ms(self) -> int:
        """The lease the server granted last, in milliseconds."""
        with self._client._mu:
            return self._lease_ms

    # --- Whether it is still held -----------------------------------------

    @property
    def lost(self) -> bool:
        """True once the hold is lost (see LossReason); it stays true.

        Also true as soon as the lease, counted conservatively, has run out
        without a renewal, even before the renewal thread noticed.
        """
        with self._client._mu:
            self._client._expire_if_due_locked(self, time.monotonic())
            return self._state is _State.LOST or self._lost_reason is not None

    @property
    def lost_reason(self) -> errors.LossReason | None:
        """Why the hold was lost, or None while it is not."""
        with self._client._mu:
            self._client._expire_if_due_locked(self, time.monotonic())
            return self._lost_reason

    @property
    def held(self) -> bool:
        """True while neither released nor lost."""
        with self._client._mu:
            self._client._expire_if_due_locked(self, time.monotonic())
            return self._state is _State.HELD

    @property
    def lease_remaining(self) -> float:
        """Seconds the lease surely lasts without another renewal; 0 when
        not held. Counted from when the last renewal (or the acquire) was
        sent, so the server's view is never shorter."""
        with self._client._mu:
            if self._state is not _State.HELD:
                return 0.0
            return max(0.0, self._expires_at - time.monotonic())

    def check(self) -> None:
        """Raises LockLost if the hold is lost; use before a commit.

        Raises:
            LockLost: The hold is lost.
            LockError: The lock was released.
        """
        with self._client._mu:
            self._client._expire_if_due_locked(self, time.monotonic())
            state, reason = self._state, self._lost_reason
        if reason is not None:
            self._client._report_losses([self])
            raise self._lost_error(reason)
        if state is not _State.HELD:
            raise errors.LockError(f"{self._describe()}: already released",
                                   **self._fields())

    # --- Ending it --------------------------------------------------------

    def release(self) -> None:
        """Releases the hold. A second call does nothing.

        If the hold was lost, the release is still sent (best effort, it may
        end a hold the server still has) and LockLost is raised, so the
        caller learns that its work may have run without the lock.

        Raises:
            LockLost: The hold had been lost.
            Unavailable: The server could not be reached; the hold ends when
                its lease runs out (it is no longer renewed).
            LockError: Another failure of the Release call.
        """
        self._client._release(self, quiet_transport_errors=False)

    def __enter__(self) -> Lock:
        if self.lost:
            # Raises LockLost, after releasing what the server may still
            # hold.
            self._client._release(self, quiet_transport_errors=True)
        self.check()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, traceback: object) -> None:
        # A release the server did not answer must not hide the body's
        # result: the hold then ends with its lease. A lost hold must be
        # reported: LockLost replaces the body's exception, which stays
        # chained as its __context__.
        self._client._release(self, quiet_transport_errors=True)

    def __repr__(self) -> str:
        with self._client._mu:
            state = self._state.value
            if self._lost_reason is not None:
                state = f"lost ({self._lost_reason.value})"
        mode = "shared" if self._shared else "exclusive"
        return (f"<lockd_client.Lock {self._target.describe()} "
                f"{ids.describe_txn(self._txn_id)} {mode} fence "
                f"{self._fence} {state}>")

    # --- Internals (under client._mu unless said otherwise) ---------------

    def _set_lease(self, start: float, lease_ms: int) -> None:
        self._lease_ms = lease_ms
        self._expires_at = start + lease_ms / 1000.0
        self._next_renew_at = start + lease_ms / 3000.0

    def _describe(self) -> str:
        return errors.describe(self._target.name, self._target.lock_id,
                               self._txn_id)

    def _fields(self) -> dict[str, object]:
        return dict(lock_name=self._target.name,
                    lock_id=self._target.lock_id,
                    txn_id=self._txn_id)

    def _lost_error(self, reason: errors.LossReason) -> errors.LockLost:
        explanations = {
            errors.LossReason.LEASE_EXPIRED:
                "the server ended the hold when its lease ran out",
            errors.LossReason.FORCE_RELEASED:
                "an operator force-released the hold",
            errors.LossReason.NOT_HOLDER:
                "the server no longer knows the txn as a holder",
            errors.LossReason.LEASE_RAN_OUT:
                "the lease ran out before a renewal succeeded",
            errors.LossReason.CLIENT_CLOSED:
                "the client was closed while the lock was held",
        }
        return errors.LockLost(
            f"{self._describe()} (fence {self._fence}): hold lost: "
            f"{reason.value}: {explanations[reason]}; work done under the "
            f"lock may have run without it",
            reason=reason,
            **self._fields())


class Client:
    """A connection to one lockd's LockService, shared by threads.

    Also a context manager: leaving its `with` block closes it.

        with lockd_client.Client("198.18.0.1:7451") as client:
            with client.lock("orders/42") as fence:
                ...
    """

    def __init__(self,
                 target: str,
                 *,
                 client_id: int | None = None,
                 key: bytes | str | None = None,
                 credentials: grpc.ChannelCredentials | None = None,
                 channel_options: list[tuple[str, object]] | None = None,
                 lease_ms: int = 0,
                 rpc_timeout: float = 5.0) -> None:
        """Opens a channel to a lockd and starts the lease renewal thread.

        The channel connects lazily, on the first call.

        Args:
            target: The gRPC target of the LockService, e.g.
                "198.18.0.1:7451" (any gRPC target string).
            client_id: The client id this client signs its requests as, as
                the daemon's key file lists it (read_client_key reads both
                from a key file). None, with key None: unsigned requests,
                served only from the daemon's --open_subnets. One client id
                serves one Client at a time: the daemon's replay window
                refuses the requests of a second one.
            key: The client's key: its 16 bytes, or 32 hex digits.
            credentials: For a TLS channel; None = insecure (plaintext).
            channel_options: gRPC channel arguments.
            lease_ms: The lease that acquires ask for by default; 0 = the
                daemon's default (it clamps to its maximum).
            rpc_timeout: Deadline in seconds of the calls that do not wait
                for a lock: Release, Renew, NO_WAIT acquires.
        """
        _check_uint32("lease_ms", lease_ms)
        if (client_id is None) != (key is None):
            raise ValueError(
                "give both client_id and key (signed requests), or neither "
                "(unsigned, for a daemon's --open_subnets)")
        self._signer: keys.Signer | None = None
        if client_id is not None and key is not None:
            self._signer = keys.Signer(client_id, key)
        if not rpc_timeout > 0:
            raise ValueError(f"rpc_timeout must be positive, not "
                             f"{rpc_timeout}")
        self._target = target
        self._default_lease_ms = lease_ms
        self._rpc_timeout = float(rpc_timeout)
        if credentials is None:
            self._channel = grpc.insecure_channel(target,
                                                  options=channel_options)
        else:
            self._channel = grpc.secure_channel(target,
                                                credentials,
                                                options=channel_options)
        self._stub = lockd_pb2_grpc.LockServiceStub(self._channel)
        self._txn_ids = ids.TxnIdGenerator()

        self._mu = threading.Lock()
        self._wake = threading.Condition(self._mu)
        # Guarded by _mu.
        self._holds: dict[tuple[int, int], Lock] = {}
        self._pending: set[grpc.Future] = set()
        self._unreported: list[Lock] = []
        self._closed = False
        self._renewals_paused = False

        self._renewer = threading.Thread(target=self._renew_loop,
                                         name="lockd-client-renewer",
                                         daemon=True)
        self._renewer.start()

    # --- Public API -------------------------------------------------------

    @property
    def target(self) -> str:
        """The gRPC target this client talks to."""
        return self._target

    @property
    def client_id(self) -> int | None:
        """The client id requests are signed as; None when unsigned."""
        return None if self._signer is None else self._signer.client_id

    def new_txn_id(self) -> int:
        """Returns a new transaction id (see ids.TxnIdGenerator).

        Ids are time-ordered: a smaller id is an older transaction, which
        WAIT_DIE lets wait where a younger one dies. A transaction that died
        should retry with the SAME id, so that it ages and eventually wins.
        """
        return self._txn_ids.next()

    def acquire(self,
                lock: str | int,
                *,
                shared: bool = False,
                timeout: float | None = None,
                policy: Policy = Policy.WAIT,
                lease_ms: int | None = None,
                on_lost: OnLost | None = None,
                txn_id: int | None = None) -> Lock:
        """Acquires a lock and keeps renewing it until it is released.

        Args:
            lock: The lock's name, or its 64-bit id.
            shared: True for a shared hold, False for an exclusive one.
            timeout: Longest wait in seconds (it becomes the request's
                wait_ms and bounds the RPC); None = no limit. Must be
                positive: not to wait at all, use try_lock() or NO_WAIT.
            policy: What to do when the lock is not free (Policy).
            lease_ms: The lease to ask for; None = the Client's lease_ms.
            on_lost: Called with a LossReason, once, if the hold is lost;
                from the renewal thread (or the thread that notices the
                loss), so it should return quickly. Its exceptions are
                logged.
            txn_id: The transaction's id; None = a new one. Reuse the id of
                a transaction that died to retry it (WAIT_DIE).

        Returns:
            The held Lock.

        Raises:
            LockConflict: NO_WAIT met a conflict, or WAIT_DIE died.
            LockTimeout: Not granted within `timeout`; the wait is
                cancelled.
            LockLost: Granted, but the hold ended before it could be
                confirmed (a long wait ate the lease); on_lost is not
                called, as the hold was never handed out.
            NoCapacity: The server has no room, or the client has its
                quota of holds and waits.
            Unauthenticated: The server did not accept the client (see
                Client's client_id).
            Unavailable: The server could not be reached.
            LockError: The client is closed, or another failure.
            ValueError, TypeError: Bad arguments.
        """
        target = _Target.of(lock)
        if not isinstance(policy, Policy):
            policy = Policy(policy)
        if lease_ms is None:
            lease_ms = self._default_lease_ms
        _check_uint32("lease_ms", lease_ms)
        if timeout is not None and not timeout > 0:
            raise ValueError(
                f"timeout must be positive or None, not {timeout}; not to "
                "wait at all, use try_lock() or Policy.NO_WAIT")
        if txn_id is None:
            txn_id = self.new_txn_id()
        elif not 0 < txn_id <= ids.MAX_UINT64:
            raise ValueError(f"txn_id {txn_id} is not a 64-bit unsigned "
                             "above 0")
        mode = lockd_pb2.MODE_SHARED if shared else lockd_pb2.MODE_EXCLUSIVE
        mode_name = "shared" if shared else "exclusive"
        what = (f"{ids.describe_txn(txn_id)} acquiring {target.describe()} "
                f"{mode_name} ({policy.name})")
        fields = dict(lock_name=target.name,
                      lock_id=target.lock_id,
                      txn_id=txn_id)

        waits = policy is not Policy.NO_WAIT
        wait_ms = 0
        rpc_deadline = self._rpc_timeout
        if waits:
            rpc_deadline = None
            if timeout is not None:
                wait_ms = min(_MAX_UINT32, max(1, math.ceil(timeout * 1000)))
                rpc_deadline = timeout + _WAIT_DEADLINE_GRACE_S
        elif timeout is not None:
            rpc_deadline = min(timeout, self._rpc_timeout)

        request = lockd_pb2.AcquireRequest(
            txn_id=txn_id,
            mode=mode,
            policy=int(policy),
            lease_ms=lease_ms,
            wait_ms=wait_ms,
            # A retry of the same (lock, txn) finds the record the first
            # call made, as with an unsigned call.
            signed_request=self._sign(wire.OP_ACQUIRE,
                                      target.lock_id,
                                      txn_id,
                                      flags=wire.FLAG_RETRANSMIT,
                                      mode=mode,
                                      policy=int(policy),
                                      lease_ms=lease_ms,
                                      wait_ms=wait_ms))
        if target.name is not None:
            request.lock_name = target.name
        else:
            request.lock_id = target.lock_id

        with self._mu:
            self._check_open_locked(what, fields)
            if (target.lock_id, txn_id) in self._holds:
                raise ValueError(
                    f"{what}: the txn already holds the lock through this "
                    "client; release it first")
            sent = time.monotonic()
            future = self._stub.Acquire.future(request, timeout=rpc_deadline)
            self._pending.add(future)
        try:
            response = future.result()
        except grpc.FutureCancelledError:
            # close() cancelled the call; the daemon cancels the wait.
            self._cancel_wait(target, txn_id)
            raise errors.LockError(f"{what}: the client was closed",
                                   **fields) from None
        except grpc.RpcError as rpc_error:
            error = errors.error_from_rpc(rpc_error,
                                          what,
                                          waiting=waits,
                                          **fields)
            if (error.reply_status is None and
                    not isinstance(error, errors.Unauthenticated)):
                # No answer from the daemon: it may have granted just as
                # the call ended. Release whatever it decided, before the
                # caller may retry with the same txn id.
                self._cancel_wait(target, txn_id)
            raise error from None
        except BaseException:
            # KeyboardInterrupt and the like: leave no wait behind.
            future.cancel()
            self._cancel_wait(target, txn_id)
            raise
        finally:
            with self._mu:
                self._pending.discard(future)
                self._wake.notify_all()  # close() waits for waits to end

        if response.lock_id:
            target = dataclasses.replace(target, lock_id=response.lock_id)
        granted_lease_ms = response.lease_ms or lease_ms
        held = Lock(self, target, txn_id, shared, response.fence,
                    granted_lease_ms, sent, on_lost)
        return self._adopt(held)

    def try_lock(self,
                 lock: str | int,
                 *,
                 shared: bool = False,
                 lease_ms: int | None = None,
                 on_lost: OnLost | None = None,
                 txn_id: int | None = None) -> Lock | None:
        """Acquires a lock if it can be granted at once (policy NO_WAIT).

        Args:
            lock: The lock's name, or its 64-bit id.
            shared: True for a shared hold, False for an exclusive one.
            lease_ms: The lease to ask for; None = the Client's lease_ms.
            on_lost: As for acquire().
            txn_id: As for acquire().

        Returns:
            The held Lock, or None when the lock is held in a conflicting
            mode or others wait for it.

        Raises:
            As acquire(), except LockConflict and LockTimeout.
        """
        try:
            return self.acquire(lock,
                                shared=shared,
                                policy=Policy.NO_WAIT,
                                lease_ms=lease_ms,
                                on_lost=on_lost,
                                txn_id=txn_id)
        except errors.LockConflict:
            return None

    @contextlib.contextmanager
    def lock(self,
             lock: str | int,
             *,
             shared: bool = False,
             timeout: float | None = None,
             policy: Policy = Policy.WAIT,
             lease_ms: int | None = None,
             on_lost: OnLost | None = None,
             txn_id: int | None = None) -> Iterator[int]:
        """Holds a lock for the `with` block; yields its fencing token.

            with client.lock("orders/42", timeout=2.0) as fence:
                store.write(key, value, fence=fence)

        The lock is acquired on entering (as acquire()), renewed while the
        block runs, and released on leaving it, also on an exception.

        Args:
            As acquire().

        Yields:
            The fencing token (int) of the hold.

        Raises:
            As acquire() on entering. On leaving: LockLost if the hold was
            lost while the block ran (the block's own exception, if any, is
            its __context__).
        """
        held = self.acquire(lock,
                            shared=shared,
                            timeout=timeout,
                            policy=policy,
                            lease_ms=lease_ms,
                            on_lost=on_lost,
                            txn_id=txn_id)
        with held:
            yield held.fence

    def close(self) -> None:
        """Stops renewing, cancels waits, releases what is still held.

        Holds still held are released and count as lost
        (LossReason.CLIENT_CLOSED): code still running under them in other
        threads learns so when it leaves its `with` block, and their
        on_lost runs. Acquires still waiting fail with LockError. Idempotent.
        """
        with self._mu:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
            holds = [h for h in self._holds.values() if h._state is _State.HELD]
            for held in holds:
                held._state = _State.RELEASING
                held._lost_reason = errors.LossReason.CLIENT_CLOSED
            self._holds.clear()
            self._wake.notify_all()
        for future in pending:
            future.cancel()
        if self._renewer is not threading.current_thread():
            self._renewer.join()
        releases = [(held, self._send_release(held)) for held in holds]
        for held, future in releases:
            try:
                future.result()
            except grpc.RpcError as rpc_error:
                _LOG.warning("%s: release on close failed: %s",
                             held._describe(),
                             rpc_error.details() or rpc_error.code())
            with self._mu:
                held._state = _State.RELEASED
        with self._mu:
            # Let cancelled acquires send their clean-up releases.
            self._wake.wait_for(lambda: not self._pending,
                                timeout=self._rpc_timeout)
        self._report_losses(holds)
        self._report_pending_losses()
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, traceback: object) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._mu:
            state = "closed" if self._closed else f"{len(self._holds)} held"
        who = ("unsigned" if self._signer is None else
               f"client {self._signer.client_id}")
        return f"<lockd_client.Client {self._target} {who} {state}>"

    def _pause_renewals_for_testing(self, paused: bool) -> None:
        """Test hook: while paused, leases are not renewed; they run out
        and their holds are reported lost as if the server were
        unreachable."""
        with self._mu:
            self._renewals_paused = paused
            self._wake.notify_all()

    # --- Requests ---------------------------------------------------------

    def _sign(self, opcode: int, lock_id: int, txn_id: int,
              **fields: int) -> bytes:
        """A request's `signed_request`: the request as a wire message,
        signed with a fresh seq; b"" (none) for an unsigned client."""
        if self._signer is None:
            return b""
        return self._signer.sign(
            wire.Message(opcode=opcode,
                         lock_id=lock_id,
                         txn_id=txn_id,
                         **fields))  # type: ignore[arg-type]

    def _release_request(self, lock_id: int,
                         txn_id: int) -> lockd_pb2.ReleaseRequest:
        signed = self._sign(wire.OP_RELEASE, lock_id, txn_id)
        return lockd_pb2.ReleaseRequest(lock_id=lock_id,
                                        txn_id=txn_id,
                                        signed_request=signed)

    # --- Acquire helpers --------------------------------------------------

    def _adopt(self, held: Lock) -> Lock:
        """Registers a granted hold for renewal and returns it."""
        if time.monotonic() >= held._next_renew_at:
            self._pin_lease(held)
        with self._mu:
            closed = self._closed
            if not closed:
                self._holds[(held.lock_id, held.txn_id)] = held
                self._wake.notify_all()
        if closed:
            self._cancel_wait(held._target, held.txn_id)
            raise errors.LockError(
                f"{held._describe()}: granted, but the client was closed "
                "meanwhile; released", **held._fields())
        return held

    def _pin_lease(self, held: Lock) -> None:
        """Renews a hold that is not yet handed out, at once.

        A grant that came after a wait may have started at any moment of the
        call, so a lease counted from the sending of the Acquire may already
        be due for renewal, or over. Renewing pins it down from the renewal's
        own sending. Only the caller knows the hold yet: no locking needed.

        Raises:
            LockLost: The renewal was rejected, or failed and the lease
                counted from the Acquire is over; the hold is released.
        """
        sent = time.monotonic()
        try:
            response = self._send_renew(held, sent,
                                        timeout=self._rpc_timeout).result()
        except grpc.RpcError as rpc_error:
            reason = errors.loss_reason_of(errors.reply_status_of(rpc_error),
                                           rpc_error.code())
            if reason is None and time.monotonic() < held._expires_at:
                return  # Still surely held; the renewal thread retries.
            self._cancel_wait(held._target, held.txn_id)
            reason = reason or errors.LossReason.LEASE_RAN_OUT
            with self._mu:
                held._state = _State.RELEASED
                held._lost_reason = reason
                held._lost_reported = True  # Raised, not called back.
                held._owner_done = True
            raise held._lost_error(reason) from None
        with self._mu:
            held._set_lease(sent, response.lease_ms or held._lease_ms)

    def _cancel_wait(self, target: _Target, txn_id: int) -> None:
        """Best effort: ends a wait or hold the daemon may still have."""
        request = self._release_request(target.lock_id, txn_id)
        try:
            self._stub.Release(request, timeout=self._rpc_timeout)
        except grpc.RpcError:
            pass  # Not holding or waiting (the usual case), or unreachable.
        except ValueError:
            pass  # The channel is closed: the cancelled call ends the wait.

    # --- Release ----------------------------------------------------------

    def _send_release(self, held: Lock) -> grpc.Future:
        request = self._release_request(held.lock_id, held.txn_id)
        return self._stub.Release.future(request, timeout=self._rpc_timeout)

    def _release(self, held: Lock, *, quiet_transport_errors: bool) -> None:
        """Ends a hold for its owner (release() or leaving `with`).

        Sends the Release unless the hold is known to be gone already, and
        raises LockLost once if the hold was lost before or by it.
        """
        with self._mu:
            if held._owner_done:
                return
            held._owner_done = True
            self._expire_if_due_locked(held, time.monotonic())
            state = held._state
            # A hold that ran out on our count may still be held by the
            # server (its count started later): release it there too.
            send = (state is _State.HELD or
                    (state is _State.LOST and
                     held._lost_reason is errors.LossReason.LEASE_RAN_OUT))
            if state is _State.HELD:
                held._state = _State.RELEASING
                self._holds.pop((held.lock_id, held.txn_id), None)
        error: errors.LockError | None = None
        if send:
            try:
                self._send_release(held).result()
            except grpc.RpcError as rpc_error:
                error = errors.error_from_rpc(rpc_error,
                                              f"{held._describe()}: release",
                                              **held._fields())
                reason = errors.loss_reason_of(error.reply_status, error.code)
                with self._mu:
                    if reason is not None and held._lost_reason is None:
                        held._lost_reason = reason
                if reason is not None or state is _State.LOST:
                    error = None  # Reported as LockLost below.
            except ValueError:  # The channel was closed (by close()).
                pass
        with self._mu:
            if held._state is _State.RELEASING and state is _State.HELD:
                held._state = _State.RELEASED
            elif held._state is _State.LOST:
                held._state = _State.RELEASED
            reason = held._lost_reason
        if reason is not None:
            self._report_losses([held])
            raise held._lost_error(reason)
        if error is not None:
            if quiet_transport_errors:
                _LOG.warning("%s; the hold ends when its lease runs out", error)
            else:
                raise error

    # --- Leases -----------------------------------------------------------

    def _send_renew(self,
                    held: Lock,
                    sent: float,
                    timeout: float | None = None) -> grpc.Future:
        """Sends a Renew; by default its deadline is the lease's end."""
        with self._mu:
            lease_ms = held._lease_ms
            left = held._expires_at - sent
        # Renew with the granted lease: lease_ms 0 would mean the daemon's
        # default, not this hold's lease.
        request = lockd_pb2.RenewRequest(
            lock_id=held.lock_id,
            txn_id=held.txn_id,
            lease_ms=lease_ms,
            signed_request=self._sign(wire.OP_RENEW,
                                      held.lock_id,
                                      held.txn_id,
                                      lease_ms=lease_ms))
        if timeout is None:
            timeout = max(0.001, min(self._rpc_timeout, left))
        return self._stub.Renew.future(request, timeout=timeout)

    def _renewal_done(self, held: Lock, sent: float,
                      future: grpc.Future) -> None:
        """Applies a finished Renew; runs in a gRPC thread or the caller's.

        Never calls user code: losses are queued for the renewal thread.
        """
        response = None
        reason = None
        failure = None
        try:
            response = future.result()
        except grpc.FutureCancelledError:
            failure = "cancelled"
        except grpc.RpcError as rpc_error:
            status = errors.reply_status_of(rpc_error)
            reason = errors.loss_reason_of(status, rpc_error.code())
            failure = f"{status or rpc_error.code().name}: " \
                      f"{rpc_error.details()}"
        with self._mu:
            held._renewing = False
            if held._state is not _State.HELD:
                return  # Released meanwhile; a rejection is expected then.
            if response is not None:
                held._set_lease(sent, response.lease_ms or held._lease_ms)
            elif reason is not None:
                self._lose_locked(held, reason)
            else:
                # No answer: try again soon, until the lease runs out.
                retry = max(0.01, held._lease_ms / 10000.0)
                held._next_renew_at = min(time.monotonic() + retry,
                                          held._expires_at)
                _LOG.info("%s: renewal failed (%s); retrying", held._describe(),
                          failure)
            self._wake.notify_all()

    def _expire_if_due_locked(self, held: Lock, now: float) -> None:
        if held._state is _State.HELD and now >= held._expires_at:
            self._lose_locked(held, errors.LossReason.LEASE_RAN_OUT)

    def _lose_locked(self, held: Lock, reason: errors.LossReason) -> None:
        held._state = _State.LOST
        held._lost_reason = reason
        self._holds.pop((held.lock_id, held.txn_id), None)
        self._unreported.append(held)
        self._wake.notify_all()

    def _report_pending_losses(self) -> None:
        with self._mu:
            losses, self._unreported = self._unreported, []
        self._report_losses(losses)

    def _report_losses(self, losses: list[Lock]) -> None:
        """Calls on_lost once per lost hold; never under _mu."""
        for held in losses:
            with self._mu:
                if held._lost_reported or held._lost_reason is None:
                    continue
                held._lost_reported = True
                reason = held._lost_reason
            _LOG.warning("%s (fence %d): hold lost: %s", held._describe(),
                         held.fence, reason.value)
            if held._on_lost is None:
                continue
            try:
                held._on_lost(reason)
            except Exception:  # pylint: disable=broad-except
                _LOG.exception("%s: on_lost callback failed", held._describe())

    def _renew_loop(self) -> None:
        """The renewal thread: renews holds when due, reports losses."""
        while True:
            to_renew: list[Lock] = []
            with self._mu:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    wake_at = math.inf
                    for held in list(self._holds.values()):
                        self._expire_if_due_locked(held, now)
                        if held._state is not _State.HELD:
                            continue
                        wake_at = min(wake_at, held._expires_at)
                        if held._renewing or self._renewals_paused:
                            continue
                        if now >= held._next_renew_at:
                            held._renewing = True
                            to_renew.append(held)
                        else:
                            wake_at = min(wake_at, held._next_renew_at)
                    if to_renew or self._unreported:
                        break
                    timeout = None
                    if wake_at != math.inf:
                        timeout = max(0.0, wake_at - now)
                    self._wake.wait(timeout)
            self._report_pending_losses()
            for held in to_renew:
                sent = time.monotonic()
                try:
                    future = self._send_renew(held, sent)
                except ValueError:  # The channel was closed (by close()).
                    return
                future.add_done_callback(
                    functools.partial(self._renewal_done, held, sent))

    def _check_open_locked(self, what: str, fields: dict[str, object]) -> None:
        if self._closed:
            raise errors.LockError(f"{what}: the client is closed",
                                   **fields)  # type: ignore[arg-type]


def _check_uint32(name: str, value: int) -> None:
    if (not isinstance(value, int) or isinstance(value, bool) or
            not 0 <= value <= _MAX_UINT32):
        raise ValueError(f"{name} must be an int in [0, {_MAX_UINT32}], "
                         f"not {value!r}")
