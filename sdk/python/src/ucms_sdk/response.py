"""HTTP responses from route handlers."""

from __future__ import annotations

import json as _json


class Response:
    def __init__(self, status: int = 200, headers: list[tuple[str, str]] | None = None, body: bytes = b""):
        self.status = status
        self.headers = list(headers or [])
        self.body = body

    @classmethod
    def json(cls, value, status: int = 200) -> "Response":
        body = _json.dumps(value, separators=(",", ":")).encode()
        return cls(status, [("content-type", "application/json")], body)

    @classmethod
    def text(cls, text: str, status: int = 200) -> "Response":
        return cls(status, [("content-type", "text/plain; charset=utf-8")], text.encode())

    @classmethod
    def no_content(cls) -> "Response":
        return cls(204)

    def with_status(self, status: int) -> "Response":
        self.status = status
        return self

    def with_header(self, name: str, value: str) -> "Response":
        self.headers.append((name.lower(), value))
        return self
