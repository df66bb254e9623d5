"""A request to one of the plugin's routes, after the host checked the caller's permission."""

from __future__ import annotations

import json as _json

from .errors import UcmsError
from .principal import Principal, from_raw


class Request:
    def __init__(self, raw):
        self._raw = raw
        self.method: str = raw.method
        #: The path below the plugin's mount point: ``/items/42``.
        self.path: str = raw.path
        #: The manifest route that matched: ``/items/{id}``.
        self.route: str = raw.route
        self.body: bytes = bytes(raw.body)
        self.principal: Principal = from_raw(raw.principal)
        self.request_id: str = raw.request_id

    def param(self, name: str) -> str | None:
        return next((v for k, v in self._raw.params if k == name), None)

    def require_param(self, name: str) -> str:
        value = self.param(name)
        if value is None:
            raise UcmsError.bad_request(f"missing route parameter '{name}'")
        return value

    def query(self, name: str, default: str | None = None) -> str | None:
        return next((v for k, v in self._raw.query if k == name), default)

    def query_pairs(self) -> list[tuple[str, str]]:
        return list(self._raw.query)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self._raw.headers if k == lower), None)

    def text(self) -> str:
        return self.body.decode()

    def json(self):
        try:
            return _json.loads(self.body or b"null")
        except ValueError as e:
            raise UcmsError.bad_request(f"the body is not valid JSON: {e}") from None
