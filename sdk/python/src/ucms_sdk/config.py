"""The settings and secrets the site owner set (``[capabilities] config = true``)."""

from __future__ import annotations

import json as _json


def get(key: str, default=None):
    from wit_world.imports import config

    text = config.get(key)
    return default if text is None else _json.loads(text)


def all() -> dict:  # noqa: A001
    from wit_world.imports import config

    return _json.loads(config.get_all())


def secret(name: str) -> str | None:
    from wit_world.imports import config

    return config.get_secret(name)
