"""Test a UCMS plugin the way it will really run: its compiled component in the real host, with a
temporary site made for each ``TestPlugin``.

Runs ``ucms plugin harness`` (``UCMS_BIN``, or ``ucms`` on the PATH) and speaks its JSON-lines
protocol (docs/plugin-testing.md). Plain Python: use it from unittest or pytest::

    from ucms_sdk.testing import TestPlugin

    with TestPlugin() as plugin:
        response = plugin.post("/notes", json={"text": "hi"}, as_user=["notes.write"])
        assert response.status == 201
        assert plugin.kv("notes") == [{"text": "hi"}]
"""

from __future__ import annotations

import json as _json
import os
import subprocess
from dataclasses import dataclass, field

_built: set[str] = set()


def _bin() -> str:
    return os.environ.get("UCMS_BIN", "ucms")


def _ensure_built(directory: str) -> None:
    if directory in _built or os.environ.get("UCMS_PLUGIN_BUILT"):
        return
    try:
        result = subprocess.run([_bin(), "plugin", "build", directory])
    except OSError as error:
        raise RuntimeError(
            f"cannot run {_bin()} ({error})\n  hint: install ucms, or set UCMS_BIN (`ucms plugin test` does)"
        ) from None
    if result.returncode != 0:
        raise RuntimeError(f"`ucms plugin build {directory}` failed; see above")
    _built.add(directory)


@dataclass
class TestResponse:
    status: int
    headers: dict
    body: str
    logs: list = field(default_factory=list)

    def json(self):
        return _json.loads(self.body)


@dataclass
class Delivery:
    subscribed: bool
    delivered: bool
    error: str | None
    logs: list


class TestPlugin:
    """The plugin in ``directory`` (default: the current folder), running in a fresh site."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str = ".", settings: dict | None = None, secrets: dict | None = None,
                 allow_private_egress: bool = False):
        directory = os.path.abspath(directory)
        _ensure_built(directory)
        args = [_bin(), "plugin", "harness", directory]
        for key, value in (settings or {}).items():
            args += ["--setting", f"{key}={_json.dumps(value)}"]
        for name, value in (secrets or {}).items():
            args += ["--secret", f"{name}={value}"]
        if allow_private_egress:
            args.append("--allow-private-egress")
        env = dict(os.environ)
        env.setdefault("UCMS_LOG", "warn")
        self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError("the harness did not start; its error is above")
        self.id = ready["plugin"]

    def _read(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the harness stopped; its error is above")
        return _json.loads(line)

    def command(self, command: dict) -> dict:
        self._process.stdin.write(_json.dumps(command) + "\n")
        self._process.stdin.flush()
        answer = self._read()
        if answer.get("ok") is not True:
            raise RuntimeError(f"harness command {command['op']} failed: {answer['error']['message']}")
        return answer

    def request(self, method: str, path: str, json=None, body: str | None = None, headers: dict | None = None,
                as_user: list[str] | None = None) -> TestResponse:
        """A request to one of the plugin's routes (``path`` below /api/{id}). ``as_user``: a
        signed-in user holding these grants (the plugin's permissions by their short names)."""
        pairs = list((headers or {}).items())
        if json is not None:
            body = _json.dumps(json)
            pairs.append(("content-type", "application/json"))
        principal = {"kind": "user", "permissions": as_user} if as_user is not None else {"kind": "anonymous"}
        answer = self.command({"op": "request", "method": method, "path": path, "headers": pairs,
                               "body": body, "as": principal})
        return TestResponse(answer["status"], answer["headers"], answer["body"], answer["logs"])

    def get(self, path: str, **kwargs) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

    def kv(self, key: str):
        """The JSON value at ``key`` in the plugin's key-value store, or None."""
        return self.command({"op": "kv.get", "key": key})["value"]

    def document(self, collection: str, id: str):
        return self.command({"op": "documents.get", "collection": collection, "id": id})["document"]

    def documents(self, collection: str) -> list:
        return self.command({"op": "documents.list", "collection": collection})["documents"]

    def publish(self, topic: str, payload, key: str | None = None) -> Delivery:
        """Publishes an event (source ``harness``) and waits until the plugin handled it."""
        answer = self.command({"op": "event.publish", "topic": topic, "payload": payload, "key": key})
        mine = next((d for d in answer["deliveries"] if d["subscriber"] == self.id), None)
        return Delivery(mine is not None, bool(mine and mine["delivered"]), mine and mine["error"], answer["logs"])

    def tick(self, name: str) -> str | None:
        """Runs one tick of a schedule; the plugin's error message, or None."""
        return self.command({"op": "schedule.tick", "name": name}).get("error")

    def logs(self) -> list:
        return self.command({"op": "logs"})["logs"]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> "TestPlugin":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
