/** The @NAME@ plugin. */
import { Response, Router, UcmsError, definePlugin, kv, log } from "@ucms/sdk";

interface Note {
  text: string;
}

const router = new Router()
  // GET /api/@NAME@/hello?name=Ada
  .get("/hello", (req) => Response.json({ message: `Hello from @NAME@, ${req.query("name") ?? "world"}!` }))
  // GET /api/@NAME@/notes
  .get("/notes", () => Response.json(kv.get<Note[]>("notes") ?? []))
  // POST /api/@NAME@/notes {"text": "..."} (needs the @NAME@.notes.write permission)
  .post("/notes", (req) => {
    const note = req.json<Note>();
    if (typeof note?.text !== "string" || note.text.trim() === "") {
      throw UcmsError.unprocessable("a note needs some text");
    }
    const notes = kv.update<Note[]>("notes", (notes) => [...(notes ?? []), { text: note.text }]);
    log.info(`${notes.length} notes stored`);
    return Response.json(notes, 201);
  });

export const { httpHandler, eventHandler, lifecycle, hooks, scheduler } = definePlugin({ router });
