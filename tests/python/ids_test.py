"""Unit tests of lockd_client without a daemon: ids, errors, arguments."""

from __future__ import annotations

import time
import unittest

import grpc

import lockd_client
from lockd_client import errors
from lockd_client import ids


class LockIdTest(unittest.TestCase):

    def test_matches_the_protocol(self) -> None:
        # The values of tests/codec_test.cc (LockIdForName).
        self.assertEqual(ids.lock_id_for_name(""), 0xf52a15e9a9b5e89b)
        self.assertEqual(ids.lock_id_for_name("a"), 0x02c0bdbf481420f8)
        self.assertEqual(ids.lock_id_for_name("orders/42"), 0xc6d0eec4fd7c56aa)
        self.assertEqual(ids.lock_id_for_name("lockd"), 0x95c38eade90076c2)

    def test_uses_every_byte(self) -> None:
        self.assertNotEqual(ids.lock_id_for_name("orders/42"),
                            ids.lock_id_for_name("orders/43"))
        self.assertNotEqual(ids.lock_id_for_name(b"a\0"),
                            ids.lock_id_for_name(b"a"))
        self.assertEqual(ids.lock_id_for_name("é"),
                         ids.lock_id_for_name("é".encode("utf-8")))


class TxnIdTest(unittest.TestCase):

    def test_time_in_high_bits_random_in_low_bits(self) -> None:
        generator = ids.TxnIdGenerator(random_bits=0x2a5)
        before = time.time_ns() // 1000 - ids.TXN_EPOCH_MICROS
        txn = generator.next()
        after = time.time_ns() // 1000 - ids.TXN_EPOCH_MICROS
        self.assertEqual(txn & ((1 << ids.TXN_RANDOM_BITS) - 1), 0x2a5)
        self.assertGreaterEqual(ids.txn_start_micros(txn), before)
        self.assertLessEqual(ids.txn_start_micros(txn), after + 1)
        self.assertLess(txn, 1 << 64)

    def test_strictly_increasing(self) -> None:
        generator = ids.TxnIdGenerator()
        made = [generator.next() for _ in range(10000)]
        self.assertEqual(made, sorted(set(made)))
        self.assertEqual({txn & 0x3fff for txn in made},
                         {generator.random_bits})

    def test_random_bits_must_fit(self) -> None:
        with self.assertRaises(ValueError):
            ids.TxnIdGenerator(random_bits=1 << 14)


class _FakeRpcError(grpc.RpcError):

    def __init__(self,
                 code: grpc.StatusCode,
                 status: str | None = None,
                 details: str = "details") -> None:
        super().__init__()
        self._code = code
        self._status = status
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        if self._status is None:
            return ()
        return (("lockd-reply-status", f"REPLY_STATUS_{self._status}"),)


class ErrorMappingTest(unittest.TestCase):

    def _map(self,
             code: grpc.StatusCode,
             status: str | None = None,
             waiting: bool = False) -> errors.LockError:
        return errors.error_from_rpc(_FakeRpcError(code, status),
                                     "txn 0x1 acquiring lock \"x\"",
                                     waiting=waiting,
                                     lock_name="x",
                                     lock_id=7,
                                     txn_id=1)

    def test_reply_statuses(self) -> None:
        code = grpc.StatusCode
        cases = [
            (code.ABORTED, "CONFLICT", lockd_client.LockConflict),
            (code.ABORTED, "DIE", lockd_client.LockConflict),
            (code.ABORTED, "UPGRADE_CONFLICT", lockd_client.LockConflict),
            (code.RESOURCE_EXHAUSTED, "NO_CAPACITY", lockd_client.NoCapacity),
            (code.RESOURCE_EXHAUSTED, "QUOTA", lockd_client.NoCapacity),
            (code.FAILED_PRECONDITION, "NOT_HOLDER", lockd_client.NotHolder),
            (code.FAILED_PRECONDITION, "FORCE_RELEASED", lockd_client.LockLost),
            (code.DEADLINE_EXCEEDED, "LEASE_EXPIRED", lockd_client.LockLost),
            (code.DEADLINE_EXCEEDED, "WAIT_EXPIRED", lockd_client.LockTimeout),
            (code.INVALID_ARGUMENT, "BAD_REQUEST", lockd_client.LockError),
        ]
        for grpc_code, status, kind in cases:
            with self.subTest(status=status):
                error = self._map(grpc_code, status)
                self.assertIs(type(error), kind)
                self.assertEqual(error.reply_status, status)
                self.assertEqual(error.code, grpc_code)
                self.assertEqual((error.lock_name, error.lock_id, error.txn_id),
                                 ("x", 7, 1))
                self.assertIn('lock "x"', str(error))
                self.assertIn(status, str(error))

    def test_lost_reasons(self) -> None:
        self.assertEqual(
            self._map(grpc.StatusCode.FAILED_PRECONDITION,
                      "FORCE_RELEASED").reason,  # type: ignore[attr-defined]
            lockd_client.LossReason.FORCE_RELEASED)
        self.assertEqual(
            errors.loss_reason_of("NOT_HOLDER",
                                  grpc.StatusCode.FAILED_PRECONDITION),
            lockd_client.LossReason.NOT_HOLDER)
        self.assertIsNone(
            errors.loss_reason_of(None, grpc.StatusCode.UNAVAILABLE))

    def test_codes_without_reply_status(self) -> None:
        code = grpc.StatusCode
        self.assertIs(type(self._map(code.DEADLINE_EXCEEDED, waiting=True)),
                      lockd_client.LockTimeout)
        self.assertIs(type(self._map(code.DEADLINE_EXCEEDED)),
                      lockd_client.Unavailable)
        self.assertIs(type(self._map(code.UNAVAILABLE)),
                      lockd_client.Unavailable)
        self.assertIs(type(self._map(code.UNAUTHENTICATED)),
                      lockd_client.Unauthenticated)
        self.assertIs(type(self._map(code.PERMISSION_DENIED)),
                      lockd_client.LockError)
        for kind in (lockd_client.LockConflict, lockd_client.LockTimeout,
                     lockd_client.LockLost, lockd_client.NoCapacity,
                     lockd_client.NotHolder, lockd_client.Unauthenticated,
                     lockd_client.Unavailable):
            self.assertTrue(issubclass(kind, lockd_client.LockError))


class ArgumentTest(unittest.TestCase):
    """Bad arguments fail before anything is sent (to a socket that does
    not exist, so nothing could be reached anyway)."""

    def setUp(self) -> None:
        self.client = lockd_client.Client("unix:/nonexistent/lockd.sock")
        self.addCleanup(self.client.close)

    def test_bad_arguments(self) -> None:
        with self.assertRaises(ValueError):
            self.client.acquire("")
        with self.assertRaises(TypeError):
            self.client.acquire(True)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            self.client.acquire(1 << 64)
        with self.assertRaises(ValueError):
            self.client.acquire("x", timeout=0)
        with self.assertRaises(ValueError):
            self.client.acquire("x", lease_ms=-1)
        with self.assertRaises(ValueError):
            self.client.acquire("x", txn_id=0)
        with self.assertRaises(ValueError):
            lockd_client.Client("unix:/nonexistent/lockd.sock", rpc_timeout=0)

    def test_txn_ids_of_a_client_increase(self) -> None:
        made = [self.client.new_txn_id() for _ in range(100)]
        self.assertEqual(made, sorted(set(made)))

    def test_closed_client_refuses(self) -> None:
        self.client.close()
        with self.assertRaises(lockd_client.LockError):
            self.client.acquire("x")


if __name__ == "__main__":
    unittest.main(verbosity=2)
