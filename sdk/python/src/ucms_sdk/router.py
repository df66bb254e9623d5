"""Route handlers by method and manifest pattern."""

from __future__ import annotations

from typing import Callable

from .errors import UcmsError

Handler = Callable[["Request"], "Response"]  # noqa: F821


class Router:
    """Maps the manifest's routes to handlers. The host already matched the path, so a route is
    found by its method and pattern (``/items/{id}``)."""

    def __init__(self):
        self._routes: dict[tuple[str, str], Handler] = {}

    def route(self, method: str, pattern: str):
        def register(handler: Handler) -> Handler:
            self._routes[(method.upper(), pattern)] = handler
            return handler

        return register

    def get(self, pattern: str):
        return self.route("GET", pattern)

    def post(self, pattern: str):
        return self.route("POST", pattern)

    def put(self, pattern: str):
        return self.route("PUT", pattern)

    def patch(self, pattern: str):
        return self.route("PATCH", pattern)

    def delete(self, pattern: str):
        return self.route("DELETE", pattern)

    def handler(self, request) -> Handler:
        handler = self._routes.get((request.method, request.route))
        if handler is None:
            raise UcmsError(
                404,
                "route_not_implemented",
                f"the manifest declares {request.method} {request.route}, but the plugin's router has no handler for it",
            )
        return handler
