/** The settings and secrets the site owner set (`[capabilities] config = true`). */
import * as raw from "ucms:host/config@0.2.1";

/** A setting declared in the manifest, parsed from JSON; undefined when neither set nor defaulted. */
export function get<T = unknown>(key: string): T | undefined {
  const text = raw.get(key);
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

/** Every setting, as one object. */
export function all(): Record<string, unknown> {
  return JSON.parse(raw.getAll()) as Record<string, unknown>;
}

/** A secret declared in the manifest, or undefined. Never log it. */
export function secret(name: string): string | undefined {
  return raw.getSecret(name);
}
