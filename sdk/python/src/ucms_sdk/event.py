"""An event delivered to a subscriber (at least once: the same id may come again)."""

from __future__ import annotations

import json as _json


class Event:
    def __init__(self, raw):
        self.id: str = raw.id
        self.topic: str = raw.topic
        self.key: str | None = raw.key
        self.payload: bytes = bytes(raw.payload)
        #: The plugin that published it.
        self.source: str = raw.source
        self.published_at_ms: int = raw.published_at_ms
        #: 1 for the first delivery, 2 for the first retry, ...
        self.attempt: int = raw.attempt

    def json(self):
        return _json.loads(self.payload)
