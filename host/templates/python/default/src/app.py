"""The @NAME@ plugin."""

from ucms_sdk import Response, Router, UcmsError, define_plugin, kv, log

router = Router()


@router.get("/hello")
def hello(req):
    """GET /api/@NAME@/hello?name=Ada"""
    return Response.json({"message": f"Hello from @NAME@, {req.query('name', 'world')}!"})


@router.get("/notes")
def list_notes(req):
    """GET /api/@NAME@/notes"""
    return Response.json(kv.get("notes", []))


@router.post("/notes")
def add_note(req):
    """POST /api/@NAME@/notes {"text": "..."} (needs the @NAME@.notes.write permission)"""
    note = req.json()
    text = note.get("text") if isinstance(note, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise UcmsError.unprocessable("a note needs some text")
    notes = kv.update("notes", lambda notes: (notes or []) + [{"text": text}])
    log.info(f"{len(notes)} notes stored")
    return Response.json(notes, status=201)


HttpHandler, EventHandler, Lifecycle, Hooks, Scheduler = define_plugin(router=router)
