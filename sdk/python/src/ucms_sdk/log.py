"""Structured log lines attributed to the plugin (``[capabilities] log = true``)."""

from __future__ import annotations


def _write(level: str, message: str, fields) -> None:
    from wit_world.imports import log

    pairs = [(str(k), str(v)) for k, v in (fields or {}).items()]
    log.write(getattr(log.Level, level), message, pairs)


def debug(message: str, **fields) -> None:
    _write("DEBUG", message, fields)


def info(message: str, **fields) -> None:
    _write("INFO", message, fields)


def warn(message: str, **fields) -> None:
    _write("WARN", message, fields)


def error(message: str, **fields) -> None:
    _write("ERROR", message, fields)
