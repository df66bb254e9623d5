"""Errors a handler raises to answer with an HTTP error, and host errors turned into them."""

from __future__ import annotations

import re


class UcmsError(Exception):
    """An HTTP error: status, stable code and message, sent as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def bad_request(cls, message: str) -> "UcmsError":
        return cls(400, "bad_request", message)

    @classmethod
    def forbidden(cls, message: str) -> "UcmsError":
        return cls(403, "forbidden", message)

    @classmethod
    def not_found(cls, message: str) -> "UcmsError":
        return cls(404, "not_found", message)

    @classmethod
    def conflict(cls, message: str) -> "UcmsError":
        return cls(409, "conflict", message)

    @classmethod
    def unprocessable(cls, message: str) -> "UcmsError":
        return cls(422, "unprocessable", message)

    @classmethod
    def internal(cls, message: str) -> "UcmsError":
        return cls(500, "internal", message)


# Statuses of the host error variants every interface shares.
_STATUS = {
    "invalid": 400,
    "not_found": 404,
    "not_permitted": 403,
    "denied": 403,
    "conflict": 409,
    "already_exists": 409,
    "unique_violation": 409,
    "type_mismatch": 409,
    "quota_exceeded": 507,
    "too_large": 413,
    "limit_exceeded": 429,
    "timeout": 504,
    "unavailable": 503,
    "connection_failed": 502,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def from_host(interface: str, err: Exception) -> Exception:
    """A host call's ``Err(variant)`` as a ``UcmsError`` (``kv_invalid``, ``documents_conflict``...)."""
    variant = getattr(err, "value", None)
    if variant is None:
        return err
    tag = _snake(type(variant).__name__.split("_", 1)[-1])
    payload = getattr(variant, "value", None)
    message = payload if isinstance(payload, str) else (repr(payload) if payload is not None else tag)
    return UcmsError(_STATUS.get(tag, 500), f"{interface}_{tag}", message)


def host_call(interface: str, call):
    """Runs a host call, raising its error as a ``UcmsError``."""
    from componentize_py_types import Err

    try:
        return call()
    except Err as err:
        raise from_host(interface, err) from None
