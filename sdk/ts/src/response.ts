const encoder = new TextEncoder();

/** An HTTP response from a route handler. */
export class Response {
  status: number;
  headers: [string, string][];
  body: Uint8Array;

  constructor(status = 200, headers: [string, string][] = [], body: Uint8Array = new Uint8Array()) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** `value` as JSON, status 200. */
  static json(value: unknown, status = 200): Response {
    return new Response(status, [["content-type", "application/json"]], encoder.encode(JSON.stringify(value)));
  }

  /** Plain text, status 200. */
  static text(text: string, status = 200): Response {
    return new Response(status, [["content-type", "text/plain; charset=utf-8"]], encoder.encode(text));
  }

  /** 204, no body. */
  static noContent(): Response {
    return new Response(204);
  }

  withStatus(status: number): Response {
    this.status = status;
    return this;
  }

  withHeader(name: string, value: string): Response {
    this.headers.push([name.toLowerCase(), value]);
    return this;
  }
}
