"""`hello-py`: examples/hello in Python.

- ``GET /api/hello-py/greet?name=Ada`` answers ``{"greeting":"Hello, Ada!"}`` to anyone;
- ``POST /api/hello-py/counter`` increments a counter in the plugin's key-value store and answers
  ``{"value": N}``; the caller needs the ``hello-py.counter.increment`` permission.
"""

from ucms_sdk import Response, Router, define_plugin, kv

router = Router()


@router.get("/greet")
def greet(req):
    return Response.json({"greeting": f"Hello, {req.query('name', 'world')}!"})


@router.post("/counter")
def increment(req):
    return Response.json({"value": kv.increment("counter", 1)})


HttpHandler, EventHandler, Lifecycle, Hooks, Scheduler = define_plugin(router=router)
