"""Who a request runs for, as the host authenticated it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class User:
    id: str
    email: str
    roles: list[str] = field(default_factory=list)


@dataclass
class Principal:
    """``kind`` is ``anonymous``, ``user``, ``token`` or ``system``."""

    kind: str
    user: User | None = None
    token_id: str | None = None
    scopes: list[str] = field(default_factory=list)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"


def from_raw(raw) -> Principal:
    name = type(raw).__name__.split("_", 1)[-1].lower()
    if name == "user":
        u = raw.value
        return Principal("user", User(u.id, u.email, list(u.roles)))
    if name == "token":
        t = raw.value
        return Principal("token", User(t.owner.id, t.owner.email, list(t.owner.roles)), t.id, list(t.scopes))
    if name == "system":
        return Principal("system")
    return Principal("anonymous")
