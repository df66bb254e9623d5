"""``define_plugin`` turns a router and handlers into the five ``ucms:plugin`` exports
componentize-py looks for in the app module::

    HttpHandler, EventHandler, Lifecycle, Hooks, Scheduler = define_plugin(router=router)
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable

from .errors import UcmsError
from .event import Event
from .principal import from_raw
from .request import Request
from .response import Response


def _error_response(error: BaseException) -> Response:
    if isinstance(error, UcmsError):
        return Response.json({"error": {"code": error.code, "message": error.message}}, error.status)
    # stderr is captured by the host into its log line for this request.
    traceback.print_exception(error, file=sys.stderr)
    return Response.json({"error": {"code": "internal", "message": "the plugin failed to handle the request"}}, 500)


def define_plugin(
    router=None,
    on_event: Callable[[Event], None] | None = None,
    hooks: dict | None = None,
    schedules: dict | None = None,
    install: Callable[[], None] | None = None,
    upgrade: Callable[[str], None] | None = None,
    uninstall: Callable[[], None] | None = None,
):
    """Returns the classes ``HttpHandler, EventHandler, Lifecycle, Hooks, Scheduler``.

    ``hooks`` maps a hook point to ``f(value: bytes, principal) -> None | bytes | str`` (unchanged,
    changed, or rejected with that message); ``schedules`` maps a schedule name to
    ``f(scheduled_at_ms: int)``. Raise from ``on_event`` to have the event delivered again later.
    """
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.exports import hooks as hook_types
    from wit_world.exports import http_handler

    def fail(error: BaseException):
        return Err(error.message if isinstance(error, UcmsError) else str(error))

    class HttpHandler(exports.HttpHandler):
        def handle(self, request):
            try:
                req = Request(request)
                if router is None:
                    raise UcmsError.not_found("this plugin serves no routes")
                response = router.handler(req)(req)
            except Exception as error:  # noqa: BLE001 - every failure becomes a response
                response = _error_response(error)
            return http_handler.Response(status=response.status, headers=response.headers, body=response.body)

    class EventHandler(exports.EventHandler):
        def handle(self, event):
            if on_event is None:
                raise Err(f"this plugin subscribes to '{event.topic}' but defines no on_event")
            try:
                on_event(Event(event))
            except Exception as error:  # noqa: BLE001
                raise fail(error) from None

    class Lifecycle(exports.Lifecycle):
        def install(self):
            try:
                if install:
                    install()
            except Exception as error:  # noqa: BLE001
                raise fail(error) from None

        def upgrade(self, previous_version):
            try:
                if upgrade:
                    upgrade(previous_version)
            except Exception as error:  # noqa: BLE001
                raise fail(error) from None

        def uninstall(self):
            try:
                if uninstall:
                    uninstall()
            except Exception as error:  # noqa: BLE001
                raise fail(error) from None

    class Hooks(exports.Hooks):
        def handle(self, point, value, principal):
            handler = (hooks or {}).get(point)
            if handler is None:
                return hook_types.HookOutcome_Rejected(f"this plugin joins no hook point '{point}'")
            outcome = handler(bytes(value), from_raw(principal))
            if outcome is None:
                return hook_types.HookOutcome_Unchanged()
            if isinstance(outcome, str):
                return hook_types.HookOutcome_Rejected(outcome)
            return hook_types.HookOutcome_Changed(bytes(outcome))

    class Scheduler(exports.Scheduler):
        def tick(self, name, scheduled_at_ms):
            handler = (schedules or {}).get(name)
            if handler is None:
                raise Err(f"this plugin has no handler for the schedule '{name}'")
            try:
                handler(scheduled_at_ms)
            except Exception as error:  # noqa: BLE001
                raise fail(error) from None

    return HttpHandler, EventHandler, Lifecycle, Hooks, Scheduler
