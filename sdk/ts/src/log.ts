/** Structured log lines attributed to the plugin (`[capabilities] log = true`). */
import { write } from "ucms:host/log@0.2.1";

type Fields = Record<string, string | number | boolean>;

function fields(f: Fields | undefined): [string, string][] {
  return Object.entries(f ?? {}).map(([k, v]) => [k, String(v)]);
}

export function debug(message: string, f?: Fields): void {
  write("debug", message, fields(f));
}
export function info(message: string, f?: Fields): void {
  write("info", message, fields(f));
}
export function warn(message: string, f?: Fields): void {
  write("warn", message, fields(f));
}
export function error(message: string, f?: Fields): void {
  write("error", message, fields(f));
}
