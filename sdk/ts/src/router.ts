import type { Request } from "./request.ts";
import type { Response } from "./response.ts";
import { UcmsError } from "./error.ts";

/** A route handler: synchronous, like every call into a plugin. Throw a `UcmsError` to answer with an error. */
export type Handler = (request: Request) => Response;

/**
 * Maps the routes the manifest declares to handlers. The host has already matched the path
 * against the manifest, so a route is found by its method and pattern (`/items/{id}`).
 */
export class Router {
  private readonly routes = new Map<string, Handler>();

  route(method: string, pattern: string, handler: Handler): this {
    this.routes.set(`${method.toUpperCase()} ${pattern}`, handler);
    return this;
  }
  get(pattern: string, handler: Handler): this {
    return this.route("GET", pattern, handler);
  }
  post(pattern: string, handler: Handler): this {
    return this.route("POST", pattern, handler);
  }
  put(pattern: string, handler: Handler): this {
    return this.route("PUT", pattern, handler);
  }
  patch(pattern: string, handler: Handler): this {
    return this.route("PATCH", pattern, handler);
  }
  delete(pattern: string, handler: Handler): this {
    return this.route("DELETE", pattern, handler);
  }

  /** The handler for a request, or a 404 naming what is missing. */
  handler(request: Request): Handler {
    const handler = this.routes.get(`${request.method} ${request.route}`);
    if (!handler) {
      throw new UcmsError(
        404,
        "route_not_implemented",
        `the manifest declares ${request.method} ${request.route}, but the plugin's router has no handler for it`,
      );
    }
    return handler;
  }
}
