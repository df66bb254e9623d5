"""The plugin's private key-value store (``[capabilities] kv = true``). Values are JSON."""

from __future__ import annotations

import json as _json

from .errors import host_call


def _kv():
    from wit_world.imports import kv

    return kv


def get(key: str, default=None):
    raw = get_bytes(key)
    return default if raw is None else _json.loads(raw)


def set(key: str, value) -> None:  # noqa: A001 - mirrors the host interface
    set_bytes(key, _json.dumps(value, separators=(",", ":")).encode())


def get_bytes(key: str) -> bytes | None:
    value = host_call("kv", lambda: _kv().get(key))
    return None if value is None else bytes(value)


def set_bytes(key: str, value: bytes) -> None:
    host_call("kv", lambda: _kv().set(key, value))


def delete(key: str) -> bool:
    return host_call("kv", lambda: _kv().delete(key))


def increment(key: str, delta: int = 1) -> int:
    """Atomically adds ``delta`` to the integer at ``key`` (missing counts as 0)."""
    return host_call("kv", lambda: _kv().increment(key, delta))


def compare_and_swap(key: str, expected: bytes | None, new: bytes | None) -> bool:
    return host_call("kv", lambda: _kv().compare_and_swap(key, expected, new))


def update(key: str, f):
    """Applies ``f`` to the JSON value at ``key`` and stores the result, retrying on races."""
    for _ in range(16):
        before = get_bytes(key)
        after = f(None if before is None else _json.loads(before))
        if compare_and_swap(key, before, _json.dumps(after, separators=(",", ":")).encode()):
            return after
    raise RuntimeError(f"kv.update('{key}') lost 16 races in a row")


def keys(prefix: str = "") -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = host_call("kv", lambda: _kv().list_keys(prefix, cursor, 1000))
        out.extend(page.keys)
        cursor = page.next_cursor
        if cursor is None:
            return out
