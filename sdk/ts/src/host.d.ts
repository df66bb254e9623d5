// Type declarations of the ucms:host@0.2.1 interfaces as componentize-js presents them to
// JavaScript: records as objects with camelCase fields, variants as `{ tag, val }`, u64/s64 as
// bigint, list<u8> as Uint8Array, option<T> as T | undefined, and a `result` error thrown as an
// Error whose `payload` is the error variant. The SDK wraps them; plugins rarely import these.

type Variant<T extends string, V = undefined> = V extends undefined ? { tag: T } : { tag: T; val: V };

declare module "ucms:host/types@0.2.1" {
  export interface User { id: string; email: string; roles: string[] }
  export interface Token { id: string; owner: User; scopes: string[] }
  export type Principal =
    | { tag: "anonymous" }
    | { tag: "user"; val: User }
    | { tag: "token"; val: Token }
    | { tag: "system" };
}

declare module "ucms:host/kv@0.2.1" {
  export interface KeyPage { keys: string[]; nextCursor?: string }
  export function get(key: string): Uint8Array | undefined;
  export function set(key: string, value: Uint8Array): void;
  // `delete` is a keyword; componentize-js exports it as `delete`, imported under another name.
  export { del as delete };
  function del(key: string): boolean;
  export function listKeys(prefix: string, cursor: string | undefined, limit: number): KeyPage;
  export function increment(key: string, delta: bigint): bigint;
  export function compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array | undefined): boolean;
}

declare module "ucms:host/log@0.2.1" {
  export type Level = "trace" | "debug" | "info" | "warn" | "error";
  export function write(level: Level, message: string, fields: [string, string][]): void;
}

declare module "ucms:host/config@0.2.1" {
  export function get(key: string): string | undefined;
  export function getAll(): string;
  export function getSecret(name: string): string | undefined;
}

declare module "ucms:host/events@0.2.1" {
  export function publish(topic: string, key: string | undefined, payload: Uint8Array): string;
}

declare module "ucms:host/auth@0.2.1" {
  import type { Principal } from "ucms:host/types@0.2.1";
  export type AccessLevel = { tag: "denied" } | { tag: "granted" } | { tag: "only"; val: string[] };
  export function current(): Principal;
  export function check(permission: string): boolean;
  export function access(permission: string): AccessLevel;
}

declare module "ucms:host/http-client@0.2.1" {
  export interface Request {
    method: string;
    url: string;
    headers: [string, string][];
    body: Uint8Array;
    timeoutMs?: number;
  }
  export interface Response { status: number; headers: [string, string][]; body: Uint8Array }
  export function send(request: Request): Response;
}

declare module "ucms:host/documents@0.2.1" {
  export interface Document {
    id: string;
    revision: bigint;
    data: string;
    createdAtMs: bigint;
    updatedAtMs: bigint;
  }
  export interface Comparison { path: string; value: string }
  export type FilterNode =
    | { tag: "eq" | "ne" | "lt" | "lte" | "gt" | "gte" | "in-list" | "not-in" | "contains" | "starts-with"; val: Comparison }
    | { tag: "exists" | "is-null"; val: string }
    | { tag: "and" | "or"; val: number[] }
    | { tag: "not"; val: number };
  export interface Filter { nodes: FilterNode[]; root: number }
  export interface SortKey { path: string; descending: boolean }
  export interface QuerySpec {
    filter?: Filter;
    sort: SortKey[];
    limit: number;
    offset: number;
    cursor?: string;
    fields?: string[];
    withTotal: boolean;
  }
  export interface Page { documents: Document[]; nextCursor?: string; total?: bigint }
  export function insert(collection: string, id: string | undefined, data: string): Document;
  export function get(collection: string, id: string): Document | undefined;
  export function replace(collection: string, id: string, data: string, expectedRevision: bigint | undefined): Document;
  export function patch(collection: string, id: string, patch: string, expectedRevision: bigint | undefined): Document;
  export { del as delete };
  function del(collection: string, id: string, expectedRevision: bigint | undefined): boolean;
  export function count(collection: string, filter: Filter | undefined): bigint;
  export function query(collection: string, query: QuerySpec): Page;
}
