export interface StartOptions {
  /** The plugin's folder (default: the current folder). */
  dir?: string;
  settings?: Record<string, unknown>;
  secrets?: Record<string, string>;
  allowPrivateEgress?: boolean;
}

export interface TestResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  logs: string[];
  json(): any;
}

export interface RequestOptions {
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
  /** A signed-in user holding these grants (the plugin's own permissions by their short names). */
  as?: { permissions: string[] };
}

export interface Delivery {
  subscribed: boolean;
  delivered: boolean;
  error: string | null;
  logs: string[];
}

export declare class TestPlugin {
  id: string;
  request(method: string, path: string, options?: RequestOptions): Promise<TestResponse>;
  get(path: string, options?: RequestOptions): Promise<TestResponse>;
  post(path: string, options?: RequestOptions): Promise<TestResponse>;
  put(path: string, options?: RequestOptions): Promise<TestResponse>;
  delete(path: string, options?: RequestOptions): Promise<TestResponse>;
  kv(key: string): Promise<unknown>;
  document(collection: string, id: string): Promise<any>;
  documents(collection: string): Promise<any[]>;
  publish(topic: string, payload: unknown, key?: string): Promise<Delivery>;
  tick(name: string): Promise<string | null>;
  logs(): Promise<string[]>;
  stop(): Promise<void>;
}

export declare function startPlugin(options?: StartOptions): Promise<TestPlugin>;
