"""Outbound HTTP to the hosts the manifest lists (``http-client = { hosts = [...] }``)."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass

from .errors import host_call


@dataclass
class Incoming:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return _json.loads(self.body)


def send(method: str, url: str, headers: dict | None = None, body=None, timeout_ms: int | None = None) -> Incoming:
    from wit_world.imports import http_client

    pairs = [(k.lower(), v) for k, v in (headers or {}).items()]
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = _json.dumps(body).encode()
        if not any(k == "content-type" for k, _ in pairs):
            pairs.append(("content-type", "application/json"))
    request = http_client.Request(method=method, url=url, headers=pairs, body=data, timeout_ms=timeout_ms)
    raw = host_call("http", lambda: http_client.send(request))
    return Incoming(raw.status, list(raw.headers), bytes(raw.body))
