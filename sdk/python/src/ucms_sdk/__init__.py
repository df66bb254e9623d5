"""Write UCMS plugins in Python.

A plugin is a WebAssembly component the UCMS host runs in a sandbox, one fresh instance per
request or event. ``ucms plugin build`` turns ``src/app.py`` into a component with componentize-py,
against the ``ucms:plugin`` world narrowed to what ``ucms-plugin.toml`` grants::

    from ucms_sdk import Response, Router, define_plugin, kv

    router = Router()

    @router.get("/greet")
    def greet(req):
        return Response.json({"greeting": f"Hello, {req.query('name', 'world')}!"})

    HttpHandler, EventHandler, Lifecycle, Hooks, Scheduler = define_plugin(router=router)

Each host interface is its own module (``kv``, ``documents``, ``events``, ``auth``, ``config``,
``log``, ``http``), importing its bindings only when called: using one the manifest doesn't grant
fails with an ImportError naming it.
"""

from . import auth, config, documents, events, http, kv, log
from .errors import UcmsError
from .event import Event
from .plugin import define_plugin
from .principal import Principal, User
from .request import Request
from .response import Response
from .router import Router

__all__ = [
    "Event",
    "Principal",
    "Request",
    "Response",
    "Router",
    "UcmsError",
    "User",
    "auth",
    "config",
    "define_plugin",
    "documents",
    "events",
    "http",
    "kv",
    "log",
]
