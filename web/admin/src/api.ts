// The admin talks to the same public HTTP API as any script: host routes under /api/ucms/…,
// plugin routes under /api/{plugin}/…, with the session cookie (HttpOnly, set by sign-in) and the
// session's CSRF token in X-CSRF-Token on every state-changing request.

export interface ApiErrorBody {
  code: string;
  message: string;
  fields?: Record<string, string>;
  report?: unknown;
}

export class ApiError extends Error {
  status: number;
  code: string;
  fields?: Record<string, string>;
  body: ApiErrorBody;
  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.fields = body.fields;
    this.body = body;
  }
}

let csrfToken = '';
let onSignedOut: () => void = () => {};

export function setCsrf(token: string) {
  csrfToken = token;
}

export function onUnauthenticated(callback: () => void) {
  onSignedOut = callback;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Don't treat a 401 as the end of the session (the sign-in form itself). */
  quiet401?: boolean;
}

export async function request<T = any>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? 'GET';
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: 'same-origin',
  });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: any = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!response.ok) {
    const body: ApiErrorBody = data?.error ?? {
      code: `http_${response.status}`,
      message: text.slice(0, 300) || response.statusText,
    };
    if (response.status === 401 && !options.quiet401) onSignedOut();
    throw new ApiError(response.status, body);
  }
  return data as T;
}

export const get = <T = any>(path: string) => request<T>(path);
export const post = <T = any>(path: string, body?: unknown) =>
  request<T>(path, { method: 'POST', body: body ?? {} });
export const put = <T = any>(path: string, body?: unknown) => request<T>(path, { method: 'PUT', body });
export const patch = <T = any>(path: string, body?: unknown) => request<T>(path, { method: 'PATCH', body });
export const del = <T = any>(path: string) => request<T>(path, { method: 'DELETE' });

export function qs(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') search.append(k, String(v));
  }
  const s = search.toString();
  return s ? `?${s}` : '';
}

// ---- shapes of the host API ----

export interface User {
  id: string;
  email: string;
  roles: string[];
  disabled: boolean;
  created_at: string;
}

export interface Me {
  kind: string;
  user: User;
  permissions: string[];
  csrf_token?: string;
}

export interface RouteInfo {
  method: string;
  path: string;
  access: string;
}

export interface PluginInfo {
  id: string;
  version: string;
  publisher: string;
  description: string;
  state: 'enabled' | 'disabled' | 'failed' | 'quarantined' | 'refused';
  reason?: string;
  capabilities: string[];
  routes: RouteInfo[];
  subscriptions: string[];
  permissions: Record<string, string>;
  installed_at: string;
  source: string;
  previous_version: string | null;
  signer: { publisher?: string; key_id?: string } | null;
  quarantine?: { at: number; reason: string; node: string };
  recent_failures?: unknown;
}

export interface PlannedChange {
  action: 'install' | 'upgrade' | 'downgrade';
  id: string;
  from: string | null;
  to: string;
  publisher: string;
  description: string;
  capabilities: string[];
  added_capabilities: string[];
  removed_capabilities: string[];
}

export interface Plan {
  plan_id: string;
  registry: string;
  changes: PlannedChange[];
  expires_in_seconds: number;
}

export interface AdminPage {
  plugin: string;
  path: string;
  title: string;
  url: string;
}

/** Whether the permission patterns held (`*`, `content.*`, `*.read`, `content.read:own`) grant
 * `wanted` — the host's rule, used only to decide what to show; the host checks every request. */
export function permits(held: string[], wanted: string): boolean {
  return held.some((grant) => matches(grant.split(':')[0], wanted));
}

function matches(pattern: string, permission: string): boolean {
  if (pattern === '*' || pattern === permission) return true;
  const p = pattern.split('.');
  const w = permission.split('.');
  if (p[0] === '*' && w[0] === 'ucms') return false;
  const seg = (a: string, b: string) => a === '*' || a === b;
  if (p[p.length - 1] === '*') {
    const init = p.slice(0, -1);
    return w.length > init.length && init.every((x, i) => seg(x, w[i]));
  }
  return p.length === w.length && p.every((x, i) => seg(x, w[i]));
}
