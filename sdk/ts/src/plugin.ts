/**
 * `definePlugin` turns a router and handlers into the five `ucms:plugin` exports componentize-js
 * looks for; export them from the entry module:
 *
 * ```ts
 * export const { httpHandler, eventHandler, lifecycle, hooks, scheduler } = definePlugin({ router });
 * ```
 */
import { Event, type RawEvent } from "./event.ts";
import { UcmsError } from "./error.ts";
import { type Principal, principalFromRaw } from "./principal.ts";
import { type RawRequest, Request } from "./request.ts";
import { Response } from "./response.ts";
import type { Router } from "./router.ts";

/** What a hook handler decides: pass the value on as it came, changed, or refuse it. */
export type HookOutcome = { kind: "unchanged" } | { kind: "changed"; value: Uint8Array } | { kind: "rejected"; message: string };

export interface PluginDefinition {
  /** The routes the manifest declares. */
  router?: Router;
  /** Handles an event of a subscribed topic; throw to have it delivered again later. */
  onEvent?: (event: Event) => void;
  /** Hook points the manifest joins (`[[hooks]]`), by point. */
  hooks?: Record<string, (value: Uint8Array, principal: Principal) => HookOutcome>;
  /** Schedules the manifest declares (`[[schedules]]`), by name. */
  schedules?: Record<string, (scheduledAtMs: number) => void>;
  install?: () => void;
  upgrade?: (previousVersion: string) => void;
  uninstall?: () => void;
}

type RawResponse = { status: number; headers: [string, string][]; body: Uint8Array };
type RawHookOutcome = { tag: "unchanged" } | { tag: "changed"; val: Uint8Array } | { tag: "rejected"; val: string };

/** An error a handler threw, as the response the caller gets. */
function errorResponse(error: unknown): Response {
  if (error instanceof UcmsError) {
    return Response.json({ error: { code: error.code, message: error.message } }, error.status);
  }
  // Written to stderr, which the host captures into its log line for this request.
  console.error(`unhandled error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return Response.json({ error: { code: "internal", message: "the plugin failed to handle the request" } }, 500);
}

/** An error thrown out of an export whose WIT result error is a string. */
function failure(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function definePlugin(definition: PluginDefinition) {
  return {
    httpHandler: {
      handle(raw: RawRequest): RawResponse {
        try {
          const request = new Request(raw);
          if (!definition.router) throw UcmsError.notFound("this plugin serves no routes");
          const response = definition.router.handler(request)(request);
          return { status: response.status, headers: response.headers, body: response.body };
        } catch (error) {
          const response = errorResponse(error);
          return { status: response.status, headers: response.headers, body: response.body };
        }
      },
    },
    eventHandler: {
      handle(raw: RawEvent): void {
        if (!definition.onEvent) {
          throw new Error(`this plugin subscribes to '${raw.topic}' but defines no onEvent`);
        }
        try {
          definition.onEvent(new Event(raw));
        } catch (error) {
          throw failure(error);
        }
      },
    },
    lifecycle: {
      install(): void {
        try {
          definition.install?.();
        } catch (error) {
          throw failure(error);
        }
      },
      upgrade(previousVersion: string): void {
        try {
          definition.upgrade?.(previousVersion);
        } catch (error) {
          throw failure(error);
        }
      },
      uninstall(): void {
        try {
          definition.uninstall?.();
        } catch (error) {
          throw failure(error);
        }
      },
    },
    hooks: {
      handle(point: string, value: Uint8Array, principal: import("ucms:host/types@0.2.1").Principal): RawHookOutcome {
        const handler = definition.hooks?.[point];
        if (!handler) return { tag: "rejected", val: `this plugin joins no hook point '${point}'` };
        const outcome = handler(value, principalFromRaw(principal));
        switch (outcome.kind) {
          case "changed":
            return { tag: "changed", val: outcome.value };
          case "rejected":
            return { tag: "rejected", val: outcome.message };
          default:
            return { tag: "unchanged" };
        }
      },
    },
    scheduler: {
      tick(name: string, scheduledAtMs: bigint): void {
        const handler = definition.schedules?.[name];
        if (!handler) throw `this plugin has no handler for the schedule '${name}'`;
        try {
          handler(Number(scheduledAtMs));
        } catch (error) {
          throw failure(error);
        }
      },
    },
  };
}
