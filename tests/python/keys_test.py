"""Unit tests of the client's authentication, without a daemon: SipHash-2-4,
the wire message, key files, and signing, byte for byte as the C++ library
signs (//tests/python:sign_message)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import unittest

import lockd_client
from lockd_client import keys
from lockd_client import siphash
from lockd_client import wire

# A key whose two words differ and whose bytes are not symmetric, so that a
# swapped word or byte order changes every MAC.
_KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
_KEY = bytes.fromhex(_KEY_HEX)


def _runfile(path: str) -> str:
    base = os.environ.get("TEST_SRCDIR")
    if base is None:
        return path
    return os.path.join(base, os.environ.get("TEST_WORKSPACE", "lockd"), path)


def _signed_by_cpp(key_hex: str, message: wire.Message) -> bytes:
    """The message as EncodeSigned (abi/keys.h) signs it."""
    fields = [
        f"{field}={getattr(message, field)}"
        for field in wire.Message.__dataclass_fields__
        if field != "mac"
    ]
    out = subprocess.run([_runfile("tests/python/sign_message"), key_hex] +
                         fields,
                         check=True,
                         capture_output=True,
                         text=True,
                         timeout=60).stdout
    return bytes.fromhex(out.strip())


class SipHashTest(unittest.TestCase):

    def test_reference_vectors(self) -> None:
        # SipHash's reference vectors: key 00..0f, message 00..len-1, the
        # output bytes. Whole words, as lockd signs, and some lengths with
        # a partial last word.
        vectors = {
            0: "310e0edd47db6f72",
            8: "6224939a79f5f593",
            16: "db9bc2577fcc2a3f",
            32: "ce7cf2722f512771",
            56: "bd838d3aafbf8db7",
            1: "fd67dc93c539f874",
            7: "37d1018bf50002ab",
            15: "e545be4961ca29a1",
            63: "724506eb4c328a95",
        }
        key = bytes(range(16))
        for length, expected in vectors.items():
            with self.subTest(length=length):
                self.assertEqual(
                    siphash.siphash24(key, bytes(range(length))).hex(),
                    expected)

    def test_key_is_16_bytes(self) -> None:
        with self.assertRaises(ValueError):
            siphash.siphash24(bytes(15), b"")


class WireTest(unittest.TestCase):

    def test_layout(self) -> None:
        data = wire.encode(
            wire.Message(opcode=wire.OP_ACQUIRE,
                         mode=2,
                         policy=1,
                         flags=1,
                         client_id=0x01020304,
                         lease_ms=0x05060708,
                         seq=0x1112131415161718,
                         lock_id=0x2122232425262728,
                         txn_id=0x3132333435363738,
                         mac=bytes.fromhex("4142434445464748")))
        self.assertEqual(len(data), wire.MESSAGE_SIZE)
        self.assertEqual(data[0:8].hex(), "4c4b030102010001")
        self.assertEqual(data[8:12].hex(), "01020304")  # client_id
        self.assertEqual(data[12:16].hex(), "05060708")  # lease_ms
        self.assertEqual(data[24:32].hex(), "1112131415161718")  # seq
        self.assertEqual(data[32:40].hex(), "2122232425262728")  # lock_id
        self.assertEqual(data[40:48].hex(), "3132333435363738")  # txn_id
        self.assertEqual(data[64:72].hex(), "4142434445464748")  # mac

    def test_decode_round_trip_and_rejects(self) -> None:
        message = wire.Message(opcode=wire.OP_REJECTED,
                               status=3,
                               client_id=9,
                               seq=(1 << 64) - 1,
                               lock_id=5,
                               txn_id=6,
                               queue_pos=7,
                               mac=bytes(range(8)))
        data = wire.encode(message)
        self.assertEqual(wire.decode(data), message)
        with self.assertRaisesRegex(ValueError, "71"):
            wire.decode(data[:-1])
        with self.assertRaisesRegex(ValueError, "magic"):
            wire.decode(b"\0" + data[1:])
        with self.assertRaisesRegex(ValueError, "version"):
            wire.decode(data[:2] + b"\x02" + data[3:])
        with self.assertRaises(ValueError):
            wire.encode(wire.Message(client_id=1 << 32))


class SigningTest(unittest.TestCase):

    def test_matches_the_cpp_library_byte_for_byte(self) -> None:
        messages = [
            wire.Message(),
            wire.Message(opcode=wire.OP_ACQUIRE,
                         mode=2,
                         policy=2,
                         client_id=7,
                         lease_ms=10000,
                         wait_ms=2500,
                         seq=time.time_ns(),
                         lock_id=lockd_client.lock_id_for_name("orders/42"),
                         txn_id=0x14E9BDD74D3E5499),
            wire.Message(opcode=wire.OP_RELEASE,
                         flags=1,
                         client_id=0xFFFFFFFE,
                         seq=(1 << 64) - 1,
                         lock_id=(1 << 64) - 1,
                         txn_id=1 << 63,
                         ticket=0x0123456789ABCDEF),
            wire.Message(opcode=wire.OP_GRANTED,
                         status=10,
                         client_id=3,
                         queue_pos=0xFFFFFFFF,
                         seq=42,
                         fence=0xFEDCBA9876543210),
        ]
        for key_hex in (_KEY_HEX, "000102030405060708090a0b0c0d0e0f"):
            for message in messages:
                with self.subTest(key=key_hex, message=message):
                    ours = keys.encode_signed(message, bytes.fromhex(key_hex))
                    self.assertEqual(ours.hex(),
                                     _signed_by_cpp(key_hex, message).hex())

    def test_any_change_breaks_the_mac(self) -> None:
        data = keys.encode_signed(
            wire.Message(opcode=wire.OP_ACQUIRE,
                         client_id=7,
                         seq=1234567890123,
                         lock_id=42,
                         txn_id=99), _KEY)
        self.assertTrue(keys.mac_valid(data, _KEY))
        self.assertFalse(keys.mac_valid(data, _KEY[:-1] + b"\x00"))
        for i in range(wire.MESSAGE_SIZE):
            changed = bytearray(data)
            changed[i] ^= 0x01
            self.assertFalse(keys.mac_valid(bytes(changed), _KEY), i)
        self.assertFalse(keys.mac_valid(data[:-1], _KEY))


class KeyFileTest(unittest.TestCase):

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory(
            dir=os.environ.get("TEST_TMPDIR"))
        self.addCleanup(directory.cleanup)
        self.path = os.path.join(directory.name, "keys")

    def _write(self, text: str) -> None:
        with open(self.path, "w", encoding="utf-8") as out:
            out.write(text)

    def test_reads_clients(self) -> None:
        self._write("# clients\n\n7 000102030405060708090a0b0c0d0e0f\n"
                    "  8\tFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF  \n")
        self.assertEqual(lockd_client.read_key_file(self.path), {
            7: bytes(range(16)),
            8: b"\xff" * 16
        })
        self.assertEqual(lockd_client.read_client_key(self.path, 8),
                         (8, b"\xff" * 16))
        with self.assertRaisesRegex(ValueError, "no key for client 9"):
            lockd_client.read_client_key(self.path, 9)
        with self.assertRaisesRegex(ValueError, "lists 2 clients"):
            lockd_client.read_client_key(self.path)
        self._write(f"12 {_KEY_HEX}\n")
        self.assertEqual(lockd_client.read_client_key(self.path), (12, _KEY))

    def test_rejects_with_the_line(self) -> None:
        # The messages of ReadKeyFile (tests/keys_test.cc).
        bad = {
            "0 000102030405060708090a0b0c0d0e0f\n":
                ":1: client id 0 is reserved",
            "7 0001\n":
                ":1: a key is 32 hex digits",
            "7 zz0102030405060708090a0b0c0d0e0f\n":
                ":1: a key is hex digits",
            "7 00000000000000000000000000000000\n":
                ":1: an all-zero key",
            "# c\n7 000102030405060708090a0b0c0d0e0f\n"
            "7 000102030405060708090a0b0c0d0e0f\n":
                ":3: client 7 listed twice",
            "seven 000102030405060708090a0b0c0d0e0f\n":
                ":1: expected",
            "4294967296 000102030405060708090a0b0c0d0e0f\n":
                ":1: expected",
        }
        for text, error in bad.items():
            with self.subTest(text=text):
                self._write(text)
                with self.assertRaises(ValueError) as caught:
                    lockd_client.read_key_file(self.path)
                self.assertIn(f"{self.path}{error}", str(caught.exception))
        os.remove(self.path)
        with self.assertRaises(FileNotFoundError):
            lockd_client.read_key_file(self.path)


class SignerTest(unittest.TestCase):

    def test_signs_as_the_client_with_fresh_increasing_seqs(self) -> None:
        before = time.time_ns()
        signer = keys.Signer(7, _KEY_HEX)
        request = wire.Message(opcode=wire.OP_RENEW,
                               lease_ms=900,
                               lock_id=5,
                               txn_id=6)
        signed = [wire.decode(signer.sign(request)) for _ in range(3)]
        seqs = [message.seq for message in signed]
        self.assertGreaterEqual(seqs[0], before)
        self.assertLess(seqs[0], time.time_ns())
        self.assertEqual(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2])
        for message in signed:
            self.assertEqual(message.client_id, 7)
            self.assertEqual((message.opcode, message.lease_ms,
                              message.lock_id, message.txn_id),
                             (wire.OP_RENEW, 900, 5, 6))
            self.assertTrue(keys.mac_valid(wire.encode(message), _KEY))
        self.assertNotIn(_KEY_HEX, repr(signer))

    def test_threads_never_share_a_seq(self) -> None:
        signer = keys.Signer(7, _KEY, first_seq=1000)
        seqs: list[int] = []

        def take() -> None:
            for _ in range(500):
                seqs.append(signer.next_seq())

        threads = [threading.Thread(target=take) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(seqs), list(range(1000, 3000)))

    def test_bad_identities(self) -> None:
        for client_id in (0, wire.CLIENT_MAX + 1, -1, True, "7"):
            with self.subTest(client_id=client_id):
                with self.assertRaises(ValueError):
                    keys.Signer(client_id, _KEY)  # type: ignore[arg-type]
        for key in (bytes(16), _KEY[:15], "00" * 16, "xy" * 16):
            with self.subTest(key=key):
                with self.assertRaises(ValueError):
                    keys.Signer(7, key)

    def test_client_takes_both_or_neither(self) -> None:
        with self.assertRaises(ValueError):
            lockd_client.Client("unix:/nonexistent/lockd.sock", client_id=7)
        with self.assertRaises(ValueError):
            lockd_client.Client("unix:/nonexistent/lockd.sock", key=_KEY)
        with lockd_client.Client("unix:/nonexistent/lockd.sock",
                                 client_id=7,
                                 key=_KEY_HEX) as client:
            self.assertEqual(client.client_id, 7)
            self.assertNotIn(_KEY_HEX, repr(client))
        with lockd_client.Client("unix:/nonexistent/lockd.sock") as client:
            self.assertIsNone(client.client_id)


if __name__ == "__main__":
    unittest.main(verbosity=2)
