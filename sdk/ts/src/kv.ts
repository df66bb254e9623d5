/** The plugin's private key-value store (`[capabilities] kv = true`). Values are JSON. */
import * as raw from "ucms:host/kv@0.2.1";
import { hostCall } from "./error.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The JSON value at `key`, or undefined. */
export function get<T = unknown>(key: string): T | undefined {
  const bytes = getBytes(key);
  return bytes === undefined ? undefined : (JSON.parse(decoder.decode(bytes)) as T);
}

/** Stores `value` as JSON at `key`. */
export function set(key: string, value: unknown): void {
  setBytes(key, encoder.encode(JSON.stringify(value)));
}

export function getBytes(key: string): Uint8Array | undefined {
  return hostCall("kv", () => raw.get(key));
}

export function setBytes(key: string, value: Uint8Array): void {
  hostCall("kv", () => raw.set(key, value));
}

/** Removes `key`; true when something was removed. */
export function remove(key: string): boolean {
  return hostCall("kv", () => raw.delete(key));
}

/** Atomically adds `delta` to the integer at `key` (missing counts as 0); returns the new value. */
export function increment(key: string, delta = 1): number {
  return Number(hostCall("kv", () => raw.increment(key, BigInt(delta))));
}

/** Replaces the bytes at `key` with `value` if they equal `expected` (undefined: absent). */
export function compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array | undefined): boolean {
  return hostCall("kv", () => raw.compareAndSwap(key, expected, value));
}

/**
 * Reads the JSON value at `key`, applies `f` and stores the result, retrying when another
 * invocation wrote in between; returns what was stored.
 */
export function update<T>(key: string, f: (current: T | undefined) => T): T {
  for (let attempt = 0; attempt < 16; attempt++) {
    const before = getBytes(key);
    const next = f(before === undefined ? undefined : (JSON.parse(decoder.decode(before)) as T));
    if (compareAndSwap(key, before, encoder.encode(JSON.stringify(next)))) return next;
  }
  throw new Error(`kv.update('${key}') lost 16 races in a row`);
}

/** Every key starting with `prefix`, in byte order. */
export function keys(prefix = ""): string[] {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = hostCall("kv", () => raw.listKeys(prefix, cursor, 1000));
    out.push(...page.keys);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return out;
}
