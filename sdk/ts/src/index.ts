/**
 * Write UCMS plugins in TypeScript.
 *
 * A plugin is a WebAssembly component the UCMS host runs in a sandbox, one fresh instance per
 * request or event. `ucms plugin build` bundles this module with esbuild and turns it into a
 * component with componentize-js, against the `ucms:plugin` world narrowed to what
 * `ucms-plugin.toml` grants:
 *
 * ```ts
 * import { Router, Response, definePlugin, kv } from "@ucms/sdk";
 *
 * const router = new Router()
 *   .get("/greet", (req) => Response.json({ greeting: `Hello, ${req.query("name") ?? "world"}!` }))
 *   .post("/counter", () => Response.json({ value: kv.increment("counter") }));
 *
 * export const { httpHandler, eventHandler, lifecycle, hooks, scheduler } = definePlugin({ router });
 * ```
 *
 * Each host interface is its own module (`kv`, `documents`, `events`, `auth`, `config`, `log`,
 * `http`): a plugin imports only the interfaces of the modules it uses, and each must be granted.
 */
export { UcmsError } from "./error.ts";
export { Response } from "./response.ts";
export { Request } from "./request.ts";
export { Router, type Handler } from "./router.ts";
export { Event } from "./event.ts";
export type { Principal, User } from "./principal.ts";
export { userOf } from "./principal.ts";
export { definePlugin, type PluginDefinition, type HookOutcome } from "./plugin.ts";
export * as kv from "./kv.ts";
export * as documents from "./documents.ts";
export * as events from "./events.ts";
export * as auth from "./auth.ts";
export * as config from "./config.ts";
export * as log from "./log.ts";
export * as http from "./http.ts";
