/**
 * `hello-ts`: examples/hello in TypeScript.
 *
 * - `GET /api/hello-ts/greet?name=Ada` answers `{"greeting":"Hello, Ada!"}` to anyone;
 * - `POST /api/hello-ts/counter` increments a counter in the plugin's key-value store and
 *   answers `{"value": N}`; the caller needs the `hello-ts.counter.increment` permission.
 */
import { Response, Router, definePlugin, kv } from "@ucms/sdk";

const router = new Router()
  .get("/greet", (req) => Response.json({ greeting: `Hello, ${req.query("name") ?? "world"}!` }))
  .post("/counter", () => Response.json({ value: kv.increment("counter", 1) }));

export const { httpHandler, eventHandler, lifecycle, hooks, scheduler } = definePlugin({ router });
