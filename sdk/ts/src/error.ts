/**
 * An error a route handler throws to answer with an HTTP error: the status, a stable code and a
 * message, sent as `{"error": {"code", "message"}}`. Errors from host calls (a kv quota, a
 * document conflict) arrive as `UcmsError`s with fitting statuses.
 */
export class UcmsError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "UcmsError";
    this.status = status;
    this.code = code;
  }

  static badRequest(message: string): UcmsError {
    return new UcmsError(400, "bad_request", message);
  }
  static forbidden(message: string): UcmsError {
    return new UcmsError(403, "forbidden", message);
  }
  static notFound(message: string): UcmsError {
    return new UcmsError(404, "not_found", message);
  }
  static conflict(message: string): UcmsError {
    return new UcmsError(409, "conflict", message);
  }
  static unprocessable(message: string): UcmsError {
    return new UcmsError(422, "unprocessable", message);
  }
  static internal(message: string): UcmsError {
    return new UcmsError(500, "internal", message);
  }
  static unavailable(message: string): UcmsError {
    return new UcmsError(503, "unavailable", message);
  }
}

/** A host call's error variant (`{ tag, val }`), as componentize-js throws it in `payload`. */
interface HostVariant {
  tag: string;
  val?: unknown;
}

/** Statuses of the host error variants every interface shares. */
const STATUS: Record<string, number> = {
  invalid: 400,
  "not-found": 404,
  "not-permitted": 403,
  denied: 403,
  conflict: 409,
  "already-exists": 409,
  "unique-violation": 409,
  "quota-exceeded": 507,
  "type-mismatch": 409,
  "range-not-satisfiable": 416,
  "too-large": 413,
  "limit-exceeded": 429,
  timeout: 504,
  unavailable: 503,
  "connection-failed": 502,
};

/**
 * Runs a host call, turning its error into a `UcmsError` named after the interface
 * (`kv_invalid`, `documents_conflict`, ...).
 */
export function hostCall<T>(iface: string, call: () => T): T {
  try {
    return call();
  } catch (e) {
    const payload = (e as { payload?: unknown } | null)?.payload as HostVariant | undefined;
    if (payload && typeof payload === "object" && typeof payload.tag === "string") {
      const val = payload.val;
      const message =
        typeof val === "string" ? val : val === undefined ? payload.tag : JSON.stringify(val, bigints);
      return rethrow(new UcmsError(STATUS[payload.tag] ?? 500, `${iface}_${payload.tag.replace(/-/g, "_")}`, message));
    }
    throw e;
  }
}

function rethrow(error: UcmsError): never {
  throw error;
}

/** A JSON.stringify replacer for the bigints host records carry. */
export function bigints(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? Number(value) : value;
}
