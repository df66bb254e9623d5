/** Who is calling, and the plugin's own permissions (`[capabilities] auth = true`). */
import * as raw from "ucms:host/auth@0.2.1";
import { UcmsError } from "./error.ts";
import { type Principal, principalFromRaw } from "./principal.ts";

/** The principal the current invocation runs for. */
export function current(): Principal {
  return principalFromRaw(raw.current());
}

/** Whether the caller holds one of this plugin's permissions (named without the plugin id). */
export function check(permission: string): boolean {
  return raw.check(permission);
}

/** `check`, or a 403. */
export function require(permission: string): void {
  if (!raw.check(permission)) {
    throw UcmsError.forbidden(`this needs the '${permission}' permission`);
  }
}

/** How far the caller holds a permission: not, fully, or only under conditions such as `own`. */
export type Access = { level: "denied" } | { level: "granted" } | { level: "only"; conditions: string[] };

export function access(permission: string): Access {
  const level = raw.access(permission);
  switch (level.tag) {
    case "granted":
      return { level: "granted" };
    case "only":
      return { level: "only", conditions: level.val };
    default:
      return { level: "denied" };
  }
}
