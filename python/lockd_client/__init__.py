"""lockd_client: Python client of the lockd distributed lock manager.

    import lockd_client

    client_id, key = lockd_client.read_client_key("/etc/lockd/client.key")
    client = lockd_client.Client("198.18.0.1:7451", client_id=client_id,
                                 key=key)
    with client.lock("orders/42") as fence:                # exclusive
        ...
    with client.lock("orders/42", shared=True, timeout=2.0):
        ...                                                # or LockTimeout
    held = client.try_lock("orders/42")                    # Lock or None
    lock = client.acquire("orders/42", lease_ms=5000, on_lost=callback)
    lock.release()

It speaks lockd's gRPC LockService (proto/lockd.proto) through Debian's
python3-grpcio and python3-protobuf; see python/README.md.
"""

from lockd_client.client import Client
from lockd_client.client import Lock
from lockd_client.client import OnLost
from lockd_client.client import Policy
from lockd_client.errors import LockConflict
from lockd_client.errors import LockError
from lockd_client.errors import LockLost
from lockd_client.errors import LockTimeout
from lockd_client.errors import LossReason
from lockd_client.errors import NoCapacity
from lockd_client.errors import NotHolder
from lockd_client.errors import Unauthenticated
from lockd_client.errors import Unavailable
from lockd_client.ids import lock_id_for_name
from lockd_client.keys import read_client_key
from lockd_client.keys import read_key_file

__all__ = [
    "Client",
    "Lock",
    "LockConflict",
    "LockError",
    "LockLost",
    "LockTimeout",
    "LossReason",
    "NoCapacity",
    "NotHolder",
    "OnLost",
    "Policy",
    "Unauthenticated",
    "Unavailable",
    "lock_id_for_name",
    "read_client_key",
    "read_key_file",
]
