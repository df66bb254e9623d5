"""Who is calling, and the plugin's own permissions (``[capabilities] auth = true``)."""

from __future__ import annotations

from .errors import UcmsError
from .principal import Principal, from_raw


def current() -> Principal:
    from wit_world.imports import auth

    return from_raw(auth.current())


def check(permission: str) -> bool:
    from wit_world.imports import auth

    return auth.check(permission)


def require(permission: str) -> None:
    if not check(permission):
        raise UcmsError.forbidden(f"this needs the '{permission}' permission")


def access(permission: str) -> tuple[str, list[str]]:
    """``("denied", [])``, ``("granted", [])`` or ``("only", conditions)``."""
    from wit_world.imports import auth

    level = auth.access(permission)
    name = type(level).__name__.split("_", 1)[-1].lower()
    return name, list(getattr(level, "value", None) or [])
