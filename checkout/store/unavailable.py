"""Which Valkey errors mean "not now" rather than "wrong": the store is restarting, failing
over, loading, read-only, or out of memory. One list, so that every caller answers them the
same way: HTTP 503 `unavailable` with Retry-After, a WebSocket `unavailable` error frame (the
socket stays); never a 500 or a closed socket. Each is safe to retry: a script refused for
memory is refused before its first write (Valkey checks at the first write, so a script
never half-runs), and every money path is idempotent by its key."""

from __future__ import annotations

from redis.exceptions import (BusyLoadingError, ClusterDownError, ConnectionError,
                              OutOfMemoryError, ReadOnlyError, TimeoutError, TryAgainError)

__all__ = ["UNAVAILABLE"]

UNAVAILABLE: tuple[type[Exception], ...] = (
    ConnectionError,  # BusyLoadingError too, which is one
    TimeoutError,
    OutOfMemoryError,  # `maxmemory` with no eviction: writes refused until memory is freed
    ReadOnlyError,  # a replica that was a primary, mid-failover
    TryAgainError,  # a cluster slot being migrated
    ClusterDownError,  # MasterDownError too
    BusyLoadingError,
)
