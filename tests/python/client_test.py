"""lockd_client against a real lockd, in the test's own network namespace.

One lockd (no fast path: user space serves every lock, gRPC on 127.0.0.1)
serves every test; each test uses locks of its own name. Its clients sign
their requests with keys of its key file, one client id per Client alive at
once (the daemon's replay window is per client id). Another lockd, opened to
unsigned calls from 127.0.0.0/8, serves LabModeTest. Waits are for behaviour
to show (bounded by lockd_daemon.PATIENCE_S), never measures of speed.
"""

from __future__ import annotations

import secrets
import signal
import socket
import sys
import threading
import time
import unittest

import grpc

import lockd_client
from lockd_client import errors
from lockd_client import keys
from lockd_client import lockd_pb2
from lockd_client import wire
from tests.python import lockd_daemon
from tests.python.lockd_daemon import wait_until

_LOCKD: lockd_daemon.Lockd | None = None


def setUpModule() -> None:  # pylint: disable=invalid-name
    global _LOCKD
    reason = lockd_daemon.why_not_runnable()
    if reason is not None:
        raise unittest.SkipTest(reason)
    _LOCKD = lockd_daemon.Lockd()
    _LOCKD.start()


def tearDownModule() -> None:  # pylint: disable=invalid-name
    global _LOCKD
    if _LOCKD is None:
        return
    lockd, _LOCKD = _LOCKD, None
    code = lockd.stop()
    # A clean stop is part of what is tested: exit 0, nothing left behind.
    if code != 0:
        raise AssertionError(f"lockd exited with {code}")
    if lockd.leftovers():
        raise AssertionError(f"lockd left {lockd.leftovers()}")


class _Waiter:
    """Runs client.acquire() in a thread and keeps its outcome."""

    def __init__(self, client: lockd_client.Client, lock: str,
                 **kwargs: object) -> None:
        self.lock: lockd_client.Lock | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run,
                                        args=(client, lock, kwargs),
                                        daemon=True)
        self._thread.start()

    def _run(self, client: lockd_client.Client, lock: str,
             kwargs: dict[str, object]) -> None:
        try:
            self.lock = client.acquire(lock, **kwargs)  # type: ignore[arg-type]
        except BaseException as error:  # pylint: disable=broad-except
            self.error = error
        finally:
            self.done.set()

    def result(self) -> lockd_client.Lock:
        if not self.done.wait(lockd_daemon.PATIENCE_S):
            raise AssertionError("acquire did not return")
        if self.error is not None:
            raise self.error
        assert self.lock is not None
        return self.lock


class _Losses:
    """An on_lost callback that records its calls."""

    def __init__(self) -> None:
        self.reasons: list[lockd_client.LossReason] = []
        self.threads: list[str] = []
        self.called = threading.Event()

    def __call__(self, reason: lockd_client.LossReason) -> None:
        self.reasons.append(reason)
        self.threads.append(threading.current_thread().name)
        self.called.set()

    def wait(self) -> lockd_client.LossReason:
        if not self.called.wait(lockd_daemon.PATIENCE_S):
            raise AssertionError("on_lost was not called")
        return self.reasons[0]


class ClientTest(unittest.TestCase):

    def setUp(self) -> None:
        assert _LOCKD is not None
        self.lockd = _LOCKD
        # Client ids not yet used by this test. A client of the same id in
        # a later test starts its seqs above this test's.
        self._unused_ids = sorted(self.lockd.keys)
        self.client = self._new_client()
        self.other = self._new_client()
        self.name = self.id().rsplit(".", 1)[-1]

    def _identity(self) -> tuple[int, bytes]:
        """A client id no Client of this test uses yet, and its key."""
        client_id = self._unused_ids.pop(0)
        return client_id, self.lockd.keys[client_id]

    def _new_client(self) -> lockd_client.Client:
        client_id, key = self._identity()
        client = lockd_client.Client(self.lockd.target,
                                     client_id=client_id,
                                     key=key)
        self.addCleanup(client.close)
        return client

    def _lock_id(self, name: str | None = None) -> int:
        return lockd_client.lock_id_for_name(name or self.name)

    # --- Exclusion --------------------------------------------------------

    def test_exclusive_excludes(self) -> None:
        held = self.client.acquire(self.name)
        self.assertEqual(held.lock_id, self._lock_id())
        self.assertFalse(held.shared)
        self.assertEqual(self.lockd.holders(held.lock_id), [held.txn_id])

        self.assertIsNone(self.other.try_lock(self.name))
        self.assertIsNone(self.other.try_lock(self.name, shared=True))
        with self.assertRaises(lockd_client.LockConflict) as caught:
            self.other.acquire(self.name, policy=lockd_client.Policy.NO_WAIT)
        self.assertEqual(caught.exception.reply_status, "CONFLICT")
        self.assertEqual(caught.exception.lock_name, self.name)
        self.assertIn(f'"{self.name}"', str(caught.exception))
        self.assertIn(f"txn 0x{caught.exception.txn_id:016x}",
                      str(caught.exception))
        self.assertEqual(self.lockd.holders(held.lock_id), [held.txn_id])

        held.release()
        self.assertFalse(held.held)
        self.assertFalse(held.lost)
        after = self.other.try_lock(self.name)
        self.assertIsNotNone(after)
        assert after is not None
        self.assertGreater(after.fence, held.fence)
        after.release()

    def test_lock_ids_and_names_address_the_same_lock(self) -> None:
        held = self.client.acquire(self._lock_id())
        self.assertIsNone(held.name)
        self.assertIsNone(self.other.try_lock(self.name))
        held.release()
        self.assertIsNotNone(self.other.try_lock(self.name))

    def test_shared_holds_coexist_and_exclude_writers(self) -> None:
        first = self.client.acquire(self.name, shared=True)
        # Would time out if the first hold excluded it.
        second = self.other.acquire(self.name, shared=True, timeout=10)
        info = self.lockd.get_lock(self._lock_id())
        assert info is not None
        self.assertEqual(info.summary.mode, lockd_pb2.MODE_SHARED)
        self.assertCountEqual([h.txn_id for h in info.holders],
                              [first.txn_id, second.txn_id])
        self.assertNotEqual(first.fence, second.fence)
        self.assertIsNone(self.other.try_lock(self.name))

        first.release()
        self.assertIsNone(self.other.try_lock(self.name))
        second.release()
        writer = self.other.try_lock(self.name)
        self.assertIsNotNone(writer)
        assert writer is not None
        writer.release()

    # --- Waiting ----------------------------------------------------------

    def test_fifo_waiters_are_granted_in_order_on_release(self) -> None:
        lock_id = self._lock_id()
        holder = self.client.acquire(self.name)
        first_txn = self.other.new_txn_id()
        first = _Waiter(self.other, self.name, txn_id=first_txn)
        wait_until(lambda: self.lockd.live_waiters(lock_id) == [first_txn],
                   "the first waiter queued")
        second_txn = self.client.new_txn_id()
        second = _Waiter(self.client, self.name, txn_id=second_txn)
        wait_until(
            lambda: self.lockd.live_waiters(lock_id) == [first_txn, second_txn],
            "the second waiter queued behind")
        self.assertFalse(first.done.is_set())

        holder.release()
        first_lock = first.result()
        self.assertEqual(first_lock.txn_id, first_txn)
        self.assertEqual(self.lockd.holders(lock_id), [first_txn])
        self.assertEqual(self.lockd.live_waiters(lock_id), [second_txn])
        self.assertFalse(second.done.is_set())

        first_lock.release()
        second_lock = second.result()
        self.assertEqual(second_lock.txn_id, second_txn)
        self.assertLess(holder.fence, first_lock.fence)
        self.assertLess(first_lock.fence, second_lock.fence)
        second_lock.release()
        self.assertIsNone(self.lockd.get_lock(lock_id))

    def test_timeout_raises_and_leaves_no_wait_behind(self) -> None:
        lock_id = self._lock_id()
        holder = self.client.acquire(self.name)
        txn = self.other.new_txn_id()
        with self.assertRaises(lockd_client.LockTimeout) as caught:
            with self.other.lock(self.name, timeout=0.3, txn_id=txn):
                self.fail("granted while exclusively held")
        self.assertEqual(caught.exception.txn_id, txn)
        self.assertIn(f'"{self.name}"', str(caught.exception))
        self.assertIn(f"txn 0x{txn:016x}", str(caught.exception))
        self.assertNotIn(txn, self.lockd.live_waiters(lock_id))

        holder.release()
        # A wait left behind would be granted now, and refuse this.
        later = self.client.try_lock(self.name)
        self.assertIsNotNone(later)
        assert later is not None
        self.assertNotIn(txn, self.lockd.holders(lock_id))
        later.release()

    def test_shared_timeout_behind_writer(self) -> None:
        holder = self.client.acquire(self.name)
        with self.assertRaises(lockd_client.LockTimeout):
            with self.other.lock(self.name, shared=True, timeout=0.2):
                self.fail("shared granted while exclusively held")
        holder.release()

    def test_daemon_cancels_a_wait_whose_rpc_ends(self) -> None:
        # What the client's timeouts rely on, checked on the bare RPC: a
        # wait without wait_ms ends with its call, by deadline or cancel.
        lock_id = self._lock_id()
        holder = self.client.acquire(self.name)
        stub = self.lockd.lock_service()
        signer = self.lockd.signer(self._identity()[0])

        def request(txn: int) -> lockd_pb2.AcquireRequest:
            return lockd_pb2.AcquireRequest(
                signed_request=signer.sign(
                    wire.Message(opcode=wire.OP_ACQUIRE,
                                 mode=lockd_pb2.MODE_EXCLUSIVE,
                                 policy=lockd_pb2.POLICY_WAIT,
                                 lock_id=lock_id,
                                 txn_id=txn)))

        deadline_txn = self.other.new_txn_id()
        with self.assertRaises(grpc.RpcError) as caught:
            stub.Acquire(request(deadline_txn), timeout=0.3)
        self.assertEqual(caught.exception.code(),
                         grpc.StatusCode.DEADLINE_EXCEEDED)
        wait_until(lambda: deadline_txn not in self.lockd.live_waiters(lock_id),
                   "the wait of a call past its deadline ended")

        cancelled_txn = self.other.new_txn_id()
        call = stub.Acquire.future(request(cancelled_txn))
        wait_until(lambda: self.lockd.live_waiters(lock_id) == [cancelled_txn],
                   "the wait queued")
        self.assertTrue(call.cancel())
        wait_until(lambda: self.lockd.live_waiters(lock_id) == [],
                   "the wait of a cancelled call ended")

        holder.release()
        # Neither ended wait was granted.
        self.assertIsNone(self.lockd.get_lock(lock_id))

    def test_wait_die_older_waits_younger_dies(self) -> None:
        lock_id = self._lock_id()
        holder = self.client.acquire(self.name)
        with self.assertRaises(lockd_client.LockConflict) as caught:
            self.other.acquire(self.name, policy=lockd_client.Policy.WAIT_DIE)
        self.assertEqual(caught.exception.reply_status, "DIE")

        older_txn = holder.txn_id - (1 << 14)  # started 1 us before
        older = _Waiter(self.other,
                        self.name,
                        policy=lockd_client.Policy.WAIT_DIE,
                        txn_id=older_txn)
        wait_until(lambda: self.lockd.live_waiters(lock_id) == [older_txn],
                   "the older transaction waits")
        holder.release()
        granted = older.result()
        self.assertEqual(granted.txn_id, older_txn)
        granted.release()

    # --- Leases -----------------------------------------------------------

    def test_renewal_keeps_a_hold_past_many_leases(self) -> None:
        losses = _Losses()
        held = self.client.acquire(self.name, lease_ms=1000, on_lost=losses)
        self.assertEqual(held.lease_ms, 1000)
        time.sleep(4.0)  # four leases: held only if renewed
        self.assertFalse(held.lost)
        self.assertFalse(losses.called.is_set())
        info = self.lockd.get_lock(held.lock_id)
        assert info is not None
        self.assertEqual([(h.txn_id, h.fence) for h in info.holders],
                         [(held.txn_id, held.fence)])
        self.assertGreater(info.holders[0].lease_left_ms, 0)
        self.assertIsNone(self.other.try_lock(self.name))
        held.release()
        self.assertFalse(losses.called.is_set())

    def test_force_release_is_reported_as_lost(self) -> None:
        losses = _Losses()
        with self.assertRaises(lockd_client.LockLost) as caught:
            with self.client.lock(self.name, lease_ms=900,
                                  on_lost=losses) as fence:
                txn = self.lockd.holders(self._lock_id())[0]
                self.lockd.force_release(self._lock_id(), txn, fence)
                self.assertEqual(losses.wait(),
                                 lockd_client.LossReason.FORCE_RELEASED)
        self.assertEqual(caught.exception.reason,
                         lockd_client.LossReason.FORCE_RELEASED)
        self.assertIn(f'"{self.name}"', str(caught.exception))
        self.assertEqual(losses.reasons,
                         [lockd_client.LossReason.FORCE_RELEASED])
        self.assertEqual(losses.threads, ["lockd-client-renewer"])
        taken = self.other.try_lock(self.name)
        self.assertIsNotNone(taken)
        assert taken is not None
        self.assertGreater(taken.fence, fence)
        taken.release()

    def test_loss_replaces_the_body_exception(self) -> None:
        losses = _Losses()
        with self.assertRaises(lockd_client.LockLost) as caught:
            with self.client.lock(self.name, lease_ms=900,
                                  on_lost=losses) as fence:
                txn = self.lockd.holders(self._lock_id())[0]
                self.lockd.force_release(self._lock_id(), txn, fence)
                losses.wait()
                raise KeyError("body failed")
        self.assertIsInstance(caught.exception.__context__, KeyError)

    def test_unrenewed_lease_is_reported_as_lost(self) -> None:
        losses = _Losses()
        self.client._pause_renewals_for_testing(True)  # pylint: disable=protected-access
        held = self.client.acquire(self.name, lease_ms=500, on_lost=losses)
        self.assertEqual(losses.wait(), lockd_client.LossReason.LEASE_RAN_OUT)
        self.assertTrue(held.lost)
        self.assertFalse(held.held)
        self.assertEqual(held.lease_remaining, 0.0)
        # The daemon ends the unrenewed hold by itself.
        wait_until(lambda: self.lockd.get_lock(held.lock_id) is None,
                   "the daemon ended the expired hold")
        taken = self.other.try_lock(self.name)
        self.assertIsNotNone(taken)
        assert taken is not None
        with self.assertRaises(lockd_client.LockLost) as caught:
            held.release()
        self.assertEqual(caught.exception.reason,
                         lockd_client.LossReason.LEASE_RAN_OUT)
        # Its late release did not end the new holder's hold.
        self.assertEqual(self.lockd.holders(held.lock_id), [taken.txn_id])
        taken.release()
        self.assertEqual(losses.reasons,
                         [lockd_client.LossReason.LEASE_RAN_OUT])

    def test_silent_daemon_is_reported_as_lost(self) -> None:
        # Renewals get no answer: the hold is lost when the lease, counted
        # from the last renewal sent, runs out.
        losses = _Losses()
        held = self.client.acquire(self.name, lease_ms=600, on_lost=losses)
        self.lockd.pause()
        self.addCleanup(self.lockd.resume)
        self.assertEqual(losses.wait(), lockd_client.LossReason.LEASE_RAN_OUT)
        self.assertTrue(held.lost)
        self.lockd.resume()
        # The daemon, going on, ends the hold its holder stopped renewing.
        wait_until(lambda: self.lockd.get_lock(held.lock_id) is None,
                   "the daemon ended the unrenewed hold")
        with self.assertRaises(lockd_client.LockLost) as caught:
            with held:
                pass
        self.assertEqual(caught.exception.reason,
                         lockd_client.LossReason.LEASE_RAN_OUT)

    def test_grant_after_a_wait_longer_than_the_lease_stays_held(self) -> None:
        # Counted from its sending, the lease of a long wait has run out
        # when it is granted; the client renews at once instead of losing it.
        lock_id = self._lock_id()
        holder = self.client.acquire(self.name)
        txn = self.other.new_txn_id()
        waiter = _Waiter(self.other, self.name, lease_ms=400, txn_id=txn)
        wait_until(lambda: self.lockd.live_waiters(lock_id) == [txn],
                   "the waiter queued")
        time.sleep(0.8)  # two of its leases
        holder.release()
        granted = waiter.result()
        self.assertFalse(granted.lost)
        self.assertGreater(granted.lease_remaining, 0.0)
        time.sleep(0.8)  # and renewed since
        self.assertFalse(granted.lost)
        self.assertEqual(self.lockd.holders(lock_id), [txn])
        granted.release()

    # --- Scopes -----------------------------------------------------------

    def test_context_manager_releases_on_exception(self) -> None:
        with self.assertRaises(ValueError):
            with self.client.lock(self.name) as fence:
                self.assertEqual(len(self.lockd.holders(self._lock_id())), 1)
                raise ValueError("body failed")
        self.assertIsNone(self.lockd.get_lock(self._lock_id()))
        taken = self.other.try_lock(self.name)
        self.assertIsNotNone(taken)
        assert taken is not None
        self.assertGreater(taken.fence, fence)
        taken.release()

    def test_lock_object_as_context_manager(self) -> None:
        held = self.client.acquire(self.name)
        with held as entered:
            self.assertIs(entered, held)
            self.assertTrue(held.held)
        self.assertFalse(held.held)
        self.assertIsNone(self.lockd.get_lock(held.lock_id))
        held.release()  # a second release does nothing

    def test_fences_strictly_increase(self) -> None:
        fences = []
        for i in range(6):
            with self.client.lock(self.name, shared=i % 2 == 1) as fence:
                fences.append(fence)
        readers = [
            self.client.acquire(self.name, shared=True),
            self.other.acquire(self.name, shared=True)
        ]
        fences += [reader.fence for reader in readers]
        for reader in readers:
            reader.release()
        with self.other.lock(self.name) as fence:
            fences.append(fence)
        self.assertEqual(fences, sorted(set(fences)), fences)

    def test_one_txn_holds_a_lock_once(self) -> None:
        held = self.client.acquire(self.name)
        with self.assertRaises(ValueError):
            self.client.acquire(self.name, txn_id=held.txn_id)
        held.release()

    # --- Closing ----------------------------------------------------------

    def test_close_releases_holds_and_cancels_waits(self) -> None:
        lock_id = self._lock_id()
        closing = self._new_client()
        losses = _Losses()
        held = closing.acquire(self.name, on_lost=losses)
        other_name = self.name + "/queued"
        blocker = self.other.acquire(other_name)
        waiter_txn = closing.new_txn_id()
        waiter = _Waiter(closing, other_name, txn_id=waiter_txn)
        wait_until(
            lambda: self.lockd.live_waiters(self._lock_id(other_name)) ==
            [waiter_txn], "the waiter queued")

        closing.close()
        self.assertIsNone(self.lockd.get_lock(lock_id))
        self.assertEqual(losses.reasons,
                         [lockd_client.LossReason.CLIENT_CLOSED])
        with self.assertRaises(lockd_client.LockLost):
            held.release()
        self.assertTrue(waiter.done.wait(lockd_daemon.PATIENCE_S))
        self.assertIsInstance(waiter.error, lockd_client.LockError)
        self.assertEqual(self.lockd.live_waiters(self._lock_id(other_name)), [])
        blocker.release()
        self.assertIsNone(self.lockd.get_lock(self._lock_id(other_name)))
        with self.assertRaises(lockd_client.LockError):
            closing.acquire(self.name)
        closing.close()  # idempotent

    def test_client_is_a_context_manager(self) -> None:
        client_id, key = self._identity()
        with lockd_client.Client(self.lockd.target,
                                 client_id=client_id,
                                 key=key) as scoped:
            held = scoped.acquire(self.name)
        self.assertTrue(held.lost)
        self.assertIsNone(self.lockd.get_lock(held.lock_id))

    def test_threads_share_a_client(self) -> None:
        counter = {"value": 0, "inside": 0, "overlaps": 0}
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(5):
                    with self.client.lock(self.name, timeout=30):
                        counter["inside"] += 1
                        if counter["inside"] != 1:
                            counter["overlaps"] += 1
                        value = counter["value"]
                        time.sleep(0.001)
                        counter["value"] = value + 1
                        counter["inside"] -= 1
            except BaseException as error:  # pylint: disable=broad-except
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(counter["overlaps"], 0)
        self.assertEqual(counter["value"], 20)

    # --- Authentication ---------------------------------------------------

    def _udp_exchange(self, request: bytes) -> wire.Message:
        """Sends one datagram to lockd's UDP port; returns its reply."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(lockd_daemon.PATIENCE_S)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(request, ("127.0.0.1", self.lockd.udp_port))
            return wire.decode(sock.recv(1024))

    def test_unsigned_calls_are_refused(self) -> None:
        # The daemon has a key file and no --open_subnets.
        unsigned = lockd_client.Client(self.lockd.target)
        self.addCleanup(unsigned.close)
        self.assertIsNone(unsigned.client_id)
        with self.assertRaises(lockd_client.Unauthenticated) as caught:
            unsigned.acquire(self.name)
        self.assertEqual(caught.exception.code,
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("--open_subnets", str(caught.exception))
        self.assertIn(f'"{self.name}"', str(caught.exception))
        with self.assertRaises(lockd_client.Unauthenticated):
            unsigned.try_lock(self.name)
        self.assertIsNone(self.lockd.get_lock(self._lock_id()))

        # Nor does an unsigned Release end a signed client's hold.
        held = self.client.acquire(self.name)
        with self.assertRaises(grpc.RpcError) as raw:
            self.lockd.lock_service().Release(lockd_pb2.ReleaseRequest(
                lock_id=held.lock_id, txn_id=held.txn_id),
                                              timeout=10)
        self.assertEqual(raw.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.lockd.holders(held.lock_id), [held.txn_id])
        self.assertTrue(held.held)
        held.release()

    def test_wrong_key_or_unknown_client_is_refused(self) -> None:
        client_id, key = self._identity()
        before = self.lockd.counters()
        impostor = lockd_client.Client(self.lockd.target,
                                       client_id=client_id,
                                       key=secrets.token_bytes(16))
        self.addCleanup(impostor.close)
        with self.assertRaises(lockd_client.Unauthenticated) as caught:
            impostor.acquire(self.name)
        self.assertEqual(caught.exception.code,
                         grpc.StatusCode.UNAUTHENTICATED)
        stranger = lockd_client.Client(self.lockd.target,
                                       client_id=max(self.lockd.keys) + 1,
                                       key=key)
        self.addCleanup(stranger.close)
        with self.assertRaises(lockd_client.Unauthenticated) as caught:
            stranger.try_lock(self.name)
        self.assertEqual(caught.exception.code,
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertIsNone(self.lockd.get_lock(self._lock_id()))
        after = self.lockd.counters()
        self.assertEqual(after["auth_failed"] - before["auth_failed"], 2)

        # The client's own key works: failed checks moved nothing of its.
        rightful = lockd_client.Client(self.lockd.target,
                                       client_id=client_id,
                                       key=key)
        self.addCleanup(rightful.close)
        with rightful.lock(self.name):
            self.assertEqual(len(self.lockd.holders(self._lock_id())), 1)
        self.assertIsNone(self.lockd.get_lock(self._lock_id()))

    def test_another_client_cannot_release_a_hold(self) -> None:
        held = self.client.acquire(self.name, lease_ms=600)
        intruder_id, intruder_key = self._identity()
        intruder = self.lockd.signer(intruder_id)
        release = wire.Message(opcode=wire.OP_RELEASE,
                               lock_id=held.lock_id,
                               txn_id=held.txn_id)
        before = self.lockd.counters()

        # Over gRPC: NOT_HOLDER, as if the txn held nothing; no fence.
        with self.assertRaises(grpc.RpcError) as caught:
            self.lockd.lock_service().Release(lockd_pb2.ReleaseRequest(
                lock_id=held.lock_id,
                txn_id=held.txn_id,
                signed_request=intruder.sign(release)),
                                              timeout=10)
        self.assertEqual(caught.exception.code(),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(errors.reply_status_of(caught.exception),
                         "NOT_HOLDER")
        # Over UDP, where the reply shows every field: no fence, no ticket,
        # signed for the intruder.
        request = intruder.sign(release)
        reply = self._udp_exchange(request)
        self.assertEqual((reply.opcode, reply.status, reply.client_id),
                         (wire.OP_REJECTED, lockd_pb2.REPLY_STATUS_NOT_HOLDER,
                          intruder_id))
        self.assertEqual((reply.fence, reply.ticket), (0, 0))
        self.assertEqual(reply.seq, wire.decode(request).seq)
        self.assertTrue(keys.mac_valid(wire.encode(reply), intruder_key))
        # Both refused for owning nothing of the txn.
        after = self.lockd.counters()
        self.assertEqual(
            after["reject_not_owner"] - before["reject_not_owner"], 2)

        # The first client still holds, with the same fence, and renews.
        time.sleep(0.9)  # past its lease: held only if renewed
        self.assertTrue(held.held)
        info = self.lockd.get_lock(held.lock_id)
        assert info is not None
        self.assertEqual([(h.txn_id, h.fence) for h in info.holders],
                         [(held.txn_id, held.fence)])
        self.assertIsNone(self.other.try_lock(self.name))
        held.release()
        self.assertFalse(held.lost)
        self.assertIsNone(self.lockd.get_lock(held.lock_id))


class LabModeTest(unittest.TestCase):
    """A daemon without keys that serves unsigned calls from its
    --open_subnets (labs), here 127.0.0.0/8, with a quota of two holds and
    waits for all of them (the unauthenticated client)."""

    lockd: lockd_daemon.Lockd

    @classmethod
    def setUpClass(cls) -> None:
        # Its own UDP port: the module's lockd has the default one.
        cls.lockd = lockd_daemon.Lockd(flags=[
            "--open_subnets=127.0.0.0/8", "--port=20232", "--client_quota=2"
        ],
                                       clients=0)
        cls.addClassCleanup(cls.lockd.stop)
        cls.lockd.start()

    @classmethod
    def tearDownClass(cls) -> None:
        code = cls.lockd.stop()
        if code != 0:
            raise AssertionError(f"the lab lockd exited with {code}")
        if cls.lockd.leftovers():
            raise AssertionError(f"the lab lockd left {cls.lockd.leftovers()}")

    def setUp(self) -> None:
        self.name = self.id().rsplit(".", 1)[-1]
        self.lock_id = lockd_client.lock_id_for_name(self.name)
        self.client = lockd_client.Client(self.lockd.target)
        self.addCleanup(self.client.close)
        self.other = lockd_client.Client(self.lockd.target)
        self.addCleanup(self.other.close)

    def test_unsigned_clients_work(self) -> None:
        held = self.client.acquire(self.name)
        self.assertEqual(self.lockd.holders(self.lock_id), [held.txn_id])
        self.assertIsNone(self.other.try_lock(self.name))
        held.release()
        self.assertIsNone(self.lockd.get_lock(self.lock_id))
        taken = self.other.try_lock(self.name)
        self.assertIsNotNone(taken)
        assert taken is not None
        self.assertGreater(taken.fence, held.fence)
        taken.release()

    def test_quota_is_no_capacity(self) -> None:
        first = self.client.acquire(self.name + "/1")
        second = self.other.acquire(self.name + "/2")
        with self.assertRaises(lockd_client.NoCapacity) as caught:
            self.client.acquire(self.name + "/3")
        self.assertEqual(caught.exception.reply_status, "QUOTA")
        self.assertEqual(caught.exception.code,
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIsNone(
            self.lockd.get_lock(lockd_client.lock_id_for_name(self.name +
                                                              "/3")))
        first.release()
        with self.client.lock(self.name + "/3"):
            pass
        second.release()


def main() -> None:
    if lockd_daemon.why_not_runnable() is None:
        lockd_daemon.enter_private_netns()
    # Bazel ends a test that runs too long with SIGTERM: stop lockd then too.
    # (unittest reports a SystemExit inside a test and goes on; it lets
    # KeyboardInterrupt through.)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        unittest.main(verbosity=2)
    finally:
        if _LOCKD is not None:  # Interrupted before tearDownModule.
            _LOCKD.stop()


if __name__ == "__main__":
    sys.exit(main())
