/** Outbound HTTP to the hosts the manifest lists (`[capabilities] http-client = { hosts = [...] }`). */
import { send as rawSend } from "ucms:host/http-client@0.2.1";
import { hostCall } from "./error.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface OutboundRequest {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  /** A string or bytes, or any other value sent as JSON. */
  body?: string | Uint8Array | unknown;
  timeoutMs?: number;
}

export interface OutboundResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  text(): string;
  json<T = unknown>(): T;
}

/** Sends a request; a refusal, timeout or connection failure is thrown as a `UcmsError`. */
export function send(request: OutboundRequest): OutboundResponse {
  const headers = Object.entries(request.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v] as [string, string]);
  let body: Uint8Array;
  if (request.body === undefined) body = new Uint8Array();
  else if (request.body instanceof Uint8Array) body = request.body;
  else if (typeof request.body === "string") body = encoder.encode(request.body);
  else {
    body = encoder.encode(JSON.stringify(request.body));
    if (!headers.some(([k]) => k === "content-type")) headers.push(["content-type", "application/json"]);
  }
  const raw = hostCall("http", () =>
    rawSend({ method: request.method ?? "GET", url: request.url, headers, body, timeoutMs: request.timeoutMs }),
  );
  return {
    status: raw.status,
    headers: raw.headers,
    body: raw.body,
    text: () => decoder.decode(raw.body),
    json: <T>() => JSON.parse(decoder.decode(raw.body)) as T,
  };
}
