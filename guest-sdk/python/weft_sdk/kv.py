"""Tenant-scoped key-value state, as JSON or raw bytes.

Writes are buffered and committed with the step's result only when the
attempt succeeds, so a task can read, decide and write without worrying
about half-done work: a failed or retried attempt leaves no trace. Reads
see the attempt's own writes.
"""

from __future__ import annotations

import json
from typing import Any, Optional, TypeVar, overload

from componentize_py_types import Err
from wit_world.imports import kv as _wit

from .convert import ConversionError, from_json, to_json
from .errors import KvError

T = TypeVar("T")


def _refused(err: Err) -> KvError:
    """The SDK's error for a refusal by the host."""
    value = err.value
    if isinstance(value, _wit.KvError_InvalidKey):
        return KvError("invalid_key", f"kv key must be 1 to {value.value} bytes")
    if isinstance(value, _wit.KvError_ValueTooLarge):
        return KvError("value_too_large", f"kv value is larger than {value.value} bytes")
    if isinstance(value, _wit.KvError_TooManyWrites):
        return KvError("too_many_writes", f"an attempt may make at most {value.value} kv writes")
    if isinstance(value, _wit.KvError_Unavailable):
        return KvError("unavailable", f"kv store unavailable: {value.value}", retryable=True)
    return KvError("unknown", f"kv refused the call: {value!r}")


def get_bytes(key: str) -> Optional[bytes]:
    """Reads raw bytes; ``None`` when ``key`` is not set."""
    try:
        return _wit.get(key)
    except Err as err:
        raise _refused(err) from None


def set_bytes(key: str, value: bytes) -> None:
    """Stores raw bytes under ``key``, replacing any previous value."""
    try:
        _wit.set(key, value)
    except Err as err:
        raise _refused(err) from None


def delete(key: str) -> None:
    """Deletes ``key``; deleting a missing key is not an error."""
    try:
        _wit.delete(key)
    except Err as err:
        raise _refused(err) from None


@overload
def get(key: str) -> Any: ...
@overload
def get(key: str, type: type[T]) -> Optional[T]: ...
def get(key: str, type: Any = Any) -> Any:
    """Reads a JSON value; ``None`` when ``key`` is not set.

    With ``type`` (a dataclass, ``int``, ``list[str]``, ...) the value is
    converted to it as a task's input is; without, it is what ``json.loads``
    gives.
    """
    raw = get_bytes(key)
    if raw is None:
        return None
    try:
        return from_json(json.loads(raw), type)
    except (ValueError, ConversionError) as e:
        raise KvError("decode", f"the value of kv key {key!r} does not decode: {e}") from None


def set(key: str, value: Any) -> None:
    """Stores ``value`` (anything a task may return) as JSON under ``key``."""
    try:
        raw = json.dumps(to_json(value), separators=(",", ":")).encode()
    except (TypeError, ValueError, ConversionError) as e:
        raise KvError("encode", f"the value for kv key {key!r} does not encode as JSON: {e}") from None
    set_bytes(key, raw)
