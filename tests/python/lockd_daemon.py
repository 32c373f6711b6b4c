"""A real lockd for the Python client's tests, in a private network namespace.

The test process re-executes itself under `unshare --net` (so neither it nor
lockd ever sees the machine's own interfaces), brings up its loopback, and
starts `//lockd:lockd` without --interface (its socket serves every UDP
request, on the same kernel table) with gRPC on 127.0.0.1, a unique
--instance and a unique --pin_root, and a --key_file it writes with a few
clients of random keys (Lockd.keys). Everything is removed on every way out:
lockd is stopped with SIGTERM and --keep_state=false (it unpins its maps),
its key file is removed, and it dies with the test process
(PR_SET_PDEATHSIG) if the test is killed; pin roots such a kill left behind
are removed by the next run.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Iterable

import grpc

from lockd_client import keys
from lockd_client import lockd_pb2
from lockd_client import lockd_pb2_grpc

BPFFS = "/sys/fs/bpf"
PIN_ROOT_PREFIX = "lockd-pytest-"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# How long a behaviour may take to show before a test gives up on it; never
# a measure of speed.
PATIENCE_S = 20.0

_NETNS_ENV = "LOCKD_PYTEST_NETNS_PID"
_UNSHARE = "/usr/bin/unshare"
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_PR_SET_PDEATHSIG = 1


def why_not_runnable() -> str | None:
    """Why these tests cannot run here (not root), or None when they can."""
    if os.geteuid() != 0:
        return ("needs root: lockd loads BPF maps and the test makes a "
                "network namespace")
    if not os.path.isdir(BPFFS):
        return f"no bpffs at {BPFFS}"
    return None


def enter_private_netns() -> None:
    """Makes this process run in a network namespace of its own.

    The first call re-executes the process under `unshare --net` (same pid,
    fresh namespace with only a down loopback); in the re-executed process
    it brings the loopback up and checks that it is the only interface.
    Call it first thing in main(), before any gRPC channel exists.
    """
    if os.environ.get(_NETNS_ENV) != str(os.getpid()):
        os.environ[_NETNS_ENV] = str(os.getpid())
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(_UNSHARE, [_UNSHARE, "--net", "--", sys.executable] +
                 [os.path.abspath(sys.argv[0])] + sys.argv[1:])
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        raise RuntimeError(f"not in a private network namespace: "
                           f"interfaces {interfaces}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS,
                                                  request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS,
                    struct.pack("16sh", b"lo", flags | _IFF_UP))


def runfile(path: str) -> str:
    """A file of the test's runfiles, e.g. "lockd/lockd"."""
    base = os.environ.get("TEST_SRCDIR")
    workspace = os.environ.get("TEST_WORKSPACE", "lockd")
    if base is None:
        return path
    return os.path.join(base, workspace, path)


def remove_stale_files() -> None:
    """Removes pin roots of runs whose process is gone (killed: a stop
    removes them)."""
    for directory in (BPFFS,):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if not name.startswith(PIN_ROOT_PREFIX):
                continue
            pid_text = name[len(PIN_ROOT_PREFIX):].split("-", 1)[0]
            if not pid_text.isdigit():
                continue
            try:
                os.kill(int(pid_text), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
            except PermissionError:
                pass


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Lockd:
    """One lockd process, serving gRPC on 127.0.0.1 in this namespace.

    It knows `clients` clients, ids 1..clients, whose keys are in `keys`
    (id -> 16 bytes); none (and no --key_file) when clients is 0.
    """

    _count = 0

    def __init__(self,
                 binary: str | None = None,
                 flags: Iterable[str] = (),
                 clients: int = 4) -> None:
        Lockd._count += 1
        pid = os.getpid()
        self.binary = binary or os.environ.get("LOCKD_BINARY") or runfile(
            "lockd/lockd")
        self.instance = f"pytest-{pid}-{Lockd._count}"
        self.pin_root = os.path.join(BPFFS,
                                     f"{PIN_ROOT_PREFIX}{pid}-{Lockd._count}")
        self.admin_token = secrets.token_hex(16)
        self.keys = {
            client_id: secrets.token_bytes(keys.KEY_BYTES)
            for client_id in range(1, clients + 1)
        }
        self.key_dir = ""
        self.flags = list(flags)
        self.target = ""
        self.udp_port = 0
        self.ready_line = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._lines_changed = threading.Condition()
        self._reader: threading.Thread | None = None
        self._admin_channel: grpc.Channel | None = None

    # --- Life -------------------------------------------------------------

    def start(self) -> None:
        """Starts lockd and waits for its "ready" line."""
        remove_stale_files()
        os.makedirs(self.pin_root, exist_ok=True)
        key_flags: list[str] = []
        if self.keys:
            self.key_dir = tempfile.mkdtemp(prefix="lockd-pytest-keys-",
                                            dir=os.environ.get("TEST_TMPDIR"))
            key_file = os.path.join(self.key_dir, "keys")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("# lockd client keys of the Python client's test\n")
                for client_id, key in sorted(self.keys.items()):
                    out.write(f"{client_id} {key.hex()}\n")
            key_flags.append(f"--key_file={key_file}")
        argv = [
            self.binary,
            f"--instance={self.instance}",
            f"--pin_root={self.pin_root}",
            "--keep_state=false",
            "--grace_ms=0",  # a fresh instance: no earlier holds
            "--metrics_listen=127.0.0.1:0",
            "--grpc_listen=127.0.0.1:0",
            f"--admin_token={self.admin_token}",
        ] + key_flags + self.flags
        self._process = subprocess.Popen(  # pylint: disable=consider-using-with
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read_stdout,
                                        name="lockd-stdout",
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        with self._lines_changed:
            while True:
                ready = [line for line in self._lines if "ready" in line]
                if ready:
                    self.ready_line = ready[0]
                    break
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"lockd exited with {self._process.returncode} "
                        f"before it was ready: {self._lines}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"lockd not ready within "
                                       f"{START_TIMEOUT_S} s: {self._lines}")
                # Also looks at the process now and then: an exit before
                # any output changes no line.
                self._lines_changed.wait(min(left, 0.1))
        port = re.search(r"gRPC port (\d+)", self.ready_line)
        udp_port = re.search(r"UDP port (\d+)", self.ready_line)
        if port is None or udp_port is None:
            raise RuntimeError(f"no gRPC or UDP port in {self.ready_line!r}")
        self.target = f"127.0.0.1:{port.group(1)}"
        self.udp_port = int(udp_port.group(1))

    def stop(self) -> int | None:
        """Stops lockd (SIGTERM, then SIGKILL) and removes its files.

        Returns:
            lockd's exit code, or None if it was not running. Idempotent.
        """
        code = None
        if self._admin_channel is not None:
            self._admin_channel.close()
            self._admin_channel = None
        if self._process is not None:
            process, self._process = self._process, None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.send_signal(signal.SIGCONT)  # if paused
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
            if self._reader is not None:
                self._reader.join(STOP_TIMEOUT_S)
            if process.stdout is not None:
                process.stdout.close()
        shutil.rmtree(self.pin_root, ignore_errors=True)
        if self.key_dir:
            shutil.rmtree(self.key_dir, ignore_errors=True)
        return code

    def leftovers(self) -> list[str]:
        """Files this lockd left behind (after stop()): none expected."""
        return [
            path for path in (self.pin_root, self.key_dir)
            if path and os.path.exists(path) and os.listdir(path)
        ]

    def signer(self, client_id: int) -> keys.Signer:
        """Signs requests as one of this lockd's clients. Its seqs start
        above those of every Signer made before, which the daemon's replay
        window then refuses (keys.Signer): one live signer per client id."""
        return keys.Signer(client_id, self.keys[client_id])

    def pause(self) -> None:
        """Stops lockd (SIGSTOP): it answers nothing until resume()."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Lets a paused lockd go on (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> list[str]:
        with self._lines_changed:
            return list(self._lines)

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sys.stderr.write(f"[lockd] {line}\n")
            with self._lines_changed:
                self._lines.append(line)
                self._lines_changed.notify_all()
        with self._lines_changed:
            self._lines_changed.notify_all()

    # --- AdminService -----------------------------------------------------

    def admin(self) -> lockd_pb2_grpc.AdminServiceStub:
        if self._admin_channel is None:
            self._admin_channel = grpc.insecure_channel(self.target)
        return lockd_pb2_grpc.AdminServiceStub(self._admin_channel)

    def lock_service(self) -> lockd_pb2_grpc.LockServiceStub:
        if self._admin_channel is None:
            self._admin_channel = grpc.insecure_channel(self.target)
        return lockd_pb2_grpc.LockServiceStub(self._admin_channel)

    def get_lock(self, lock_id: int) -> lockd_pb2.GetLockResponse | None:
        """The lock's holders and queue; None when it is idle."""
        try:
            return self.admin().GetLock(
                lockd_pb2.GetLockRequest(lock_id=lock_id), timeout=10)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def holders(self, lock_id: int) -> list[int]:
        """Txn ids of the lock's holders."""
        info = self.get_lock(lock_id)
        return [] if info is None else [h.txn_id for h in info.holders]

    def live_waiters(self, lock_id: int) -> list[int]:
        """Txn ids of the lock's waiters that are not cancelled, head
        first."""
        info = self.get_lock(lock_id)
        if info is None:
            return []
        return [w.txn_id for w in info.queue if not w.cancelled]

    def counters(self) -> dict[str, int]:
        """The daemon's counters (GetStats), e.g. "auth_failed"."""
        return dict(
            self.admin().GetStats(lockd_pb2.GetStatsRequest(),
                                  timeout=10).counters)

    def force_release(self, lock_id: int, txn_id: int, fence: int) -> None:
        self.admin().ForceRelease(lockd_pb2.ForceReleaseRequest(lock_id=lock_id,
                                                                txn_id=txn_id,
                                                                fence=fence),
                                  metadata=(("authorization",
                                             f"Bearer {self.admin_token}"),),
                                  timeout=10)


def wait_until(condition: Callable[[], bool],
               what: str,
               timeout: float = PATIENCE_S) -> None:
    """Polls `condition` until it holds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)
