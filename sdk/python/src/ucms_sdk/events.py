"""Publishing events (``[capabilities.events] publish = [...]``)."""

from __future__ import annotations

import json as _json

from .errors import host_call


def publish(topic: str, payload, key: str | None = None) -> str:
    """Publishes ``payload`` as JSON on ``topic``; returns the event's id."""
    from wit_world.imports import events

    body = _json.dumps(payload, separators=(",", ":")).encode()
    return host_call("events", lambda: events.publish(topic, key, body))
