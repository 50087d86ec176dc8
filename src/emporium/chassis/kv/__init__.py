"""The key/value port (caches, sessions, idempotency keys, feature store): Redis in
production, an in-process store with TTLs in the embedded profile."""

from emporium.chassis.kv.base import KeyValueStore, KVTypeError, Value
from emporium.chassis.kv.factory import open_kv

__all__ = ["KVTypeError", "KeyValueStore", "Value", "open_kv"]
