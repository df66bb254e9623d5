import { UcmsError } from "./error.ts";
import { type Principal, principalFromRaw } from "./principal.ts";

const decoder = new TextDecoder();

/** The request record the host hands to `http-handler.handle`. */
export interface RawRequest {
  method: string;
  path: string;
  route: string;
  params: [string, string][];
  query: [string, string][];
  headers: [string, string][];
  body: Uint8Array;
  principal: import("ucms:host/types@0.2.1").Principal;
  requestId: string;
  uploads: unknown[];
}

/** A request to one of the plugin's routes, after the host checked the caller's permission. */
export class Request {
  readonly method: string;
  /** The path below the plugin's mount point: `/items/42`. */
  readonly path: string;
  /** The manifest route that matched: `/items/{id}`. */
  readonly route: string;
  readonly body: Uint8Array;
  readonly principal: Principal;
  /** The host's id of this request, for log correlation. */
  readonly requestId: string;
  private readonly raw: RawRequest;

  constructor(raw: RawRequest) {
    this.raw = raw;
    this.method = raw.method;
    this.path = raw.path;
    this.route = raw.route;
    this.body = raw.body;
    this.principal = principalFromRaw(raw.principal);
    this.requestId = raw.requestId;
  }

  /** A route parameter (`{id}`). */
  param(name: string): string | undefined {
    return this.raw.params.find(([k]) => k === name)?.[1];
  }

  /** A route parameter that must be there. */
  requireParam(name: string): string {
    const value = this.param(name);
    if (value === undefined) throw UcmsError.badRequest(`missing route parameter '${name}'`);
    return value;
  }

  /** The first value of a query parameter. */
  query(name: string): string | undefined {
    return this.raw.query.find(([k]) => k === name)?.[1];
  }

  /** Every query parameter, in order. */
  queryPairs(): [string, string][] {
    return this.raw.query;
  }

  /** A header (names are lower-case; credentials are never passed to plugins). */
  header(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.raw.headers.find(([k]) => k === lower)?.[1];
  }

  text(): string {
    return decoder.decode(this.body);
  }

  /** The body as JSON; a 400 when it isn't. */
  json<T = unknown>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch (e) {
      throw UcmsError.badRequest(`the body is not valid JSON: ${(e as Error).message}`);
    }
  }
}
