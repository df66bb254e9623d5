import type { Principal as RawPrincipal } from "ucms:host/types@0.2.1";

/** A user account as a plugin sees it. */
export interface User {
  id: string;
  email: string;
  roles: string[];
}

/** Who a request or hook runs for, authenticated by the host. */
export type Principal =
  | { kind: "anonymous" }
  | { kind: "user"; user: User }
  | { kind: "token"; id: string; user: User; scopes: string[] }
  | { kind: "system" };

export function principalFromRaw(raw: RawPrincipal): Principal {
  switch (raw.tag) {
    case "user":
      return { kind: "user", user: raw.val };
    case "token":
      return { kind: "token", id: raw.val.id, user: raw.val.owner, scopes: raw.val.scopes };
    case "system":
      return { kind: "system" };
    default:
      return { kind: "anonymous" };
  }
}

/** The signed-in user behind a principal, if any. */
export function userOf(principal: Principal): User | undefined {
  return principal.kind === "user" || principal.kind === "token" ? principal.user : undefined;
}
