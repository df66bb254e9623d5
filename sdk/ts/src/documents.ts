/**
 * JSON documents in the plugin's own collections (`[capabilities.documents]`): revisions,
 * filters, sorting and cursors. See docs/documents.md for the exact semantics.
 */
import * as raw from "ucms:host/documents@0.2.1";
import { hostCall } from "./error.ts";

/** A stored document: its value and what the store keeps about it. */
export interface Doc<T> {
  id: string;
  /** 1 when inserted, +1 with every write. */
  revision: number;
  createdAtMs: number;
  updatedAtMs: number;
  data: T;
}

function fromRaw<T>(doc: raw.Document): Doc<T> {
  return {
    id: doc.id,
    revision: Number(doc.revision),
    createdAtMs: Number(doc.createdAtMs),
    updatedAtMs: Number(doc.updatedAtMs),
    data: JSON.parse(doc.data) as T,
  };
}

const call = <T>(f: () => T): T => hostCall("documents", f);
const revision = (r: number | undefined) => (r === undefined ? undefined : BigInt(r));

/** A filter tree; build it with `where`. */
export type Filter =
  | { op: "eq" | "ne" | "lt" | "lte" | "gt" | "gte" | "in-list" | "not-in" | "contains" | "starts-with"; path: string; value: unknown }
  | { op: "exists" | "is-null"; path: string }
  | { op: "and" | "or"; filters: Filter[] }
  | { op: "not"; filter: Filter };

/** Filter builders: `where.eq("status", "open")`, `where.and(...)`. */
export const where = {
  eq: (path: string, value: unknown): Filter => ({ op: "eq", path, value }),
  ne: (path: string, value: unknown): Filter => ({ op: "ne", path, value }),
  lt: (path: string, value: unknown): Filter => ({ op: "lt", path, value }),
  lte: (path: string, value: unknown): Filter => ({ op: "lte", path, value }),
  gt: (path: string, value: unknown): Filter => ({ op: "gt", path, value }),
  gte: (path: string, value: unknown): Filter => ({ op: "gte", path, value }),
  in: (path: string, values: unknown[]): Filter => ({ op: "in-list", path, value: values }),
  notIn: (path: string, values: unknown[]): Filter => ({ op: "not-in", path, value: values }),
  contains: (path: string, value: unknown): Filter => ({ op: "contains", path, value }),
  startsWith: (path: string, prefix: string): Filter => ({ op: "starts-with", path, value: prefix }),
  exists: (path: string): Filter => ({ op: "exists", path }),
  isNull: (path: string): Filter => ({ op: "is-null", path }),
  and: (...filters: Filter[]): Filter => ({ op: "and", filters }),
  or: (...filters: Filter[]): Filter => ({ op: "or", filters }),
  not: (filter: Filter): Filter => ({ op: "not", filter }),
};

/** The flattened form the host takes: children before their parents, the root last. */
export function flatten(filter: Filter): raw.Filter {
  const nodes: raw.FilterNode[] = [];
  const visit = (f: Filter): number => {
    switch (f.op) {
      case "and":
      case "or":
        nodes.push({ tag: f.op, val: f.filters.map(visit) });
        break;
      case "not":
        nodes.push({ tag: "not", val: visit(f.filter) });
        break;
      case "exists":
      case "is-null":
        nodes.push({ tag: f.op, val: f.path });
        break;
      default:
        nodes.push({ tag: f.op, val: { path: f.path, value: JSON.stringify(f.value) } });
    }
    return nodes.length - 1;
  };
  const root = visit(filter);
  return { nodes, root };
}

export interface QueryOptions {
  filter?: Filter;
  /** Paths to sort by, most significant first; `-title` sorts descending. Ties go by id. */
  sort?: string[];
  /** At most 1000; 25 when not given. */
  limit?: number;
  offset?: number;
  /** `next` of the previous page of the same query. */
  after?: string;
  fields?: string[];
  withTotal?: boolean;
}

export interface Page<T> {
  documents: Doc<T>[];
  /** Pass as `after` for the next page; undefined on the last page. */
  next?: string;
  total?: number;
}

/** A named collection of documents of type `T` (created by its first write). */
export class Collection<T = Record<string, unknown>> {
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  insert(value: T, id?: string): Doc<T> {
    return fromRaw(call(() => raw.insert(this.name, id, JSON.stringify(value))));
  }

  get(id: string): Doc<T> | undefined {
    const doc = call(() => raw.get(this.name, id));
    return doc === undefined ? undefined : fromRaw(doc);
  }

  /** Replaces the document; with `expectedRevision`, a stale write is a `documents_conflict` 409. */
  replace(id: string, value: T, expectedRevision?: number): Doc<T> {
    return fromRaw(call(() => raw.replace(this.name, id, JSON.stringify(value), revision(expectedRevision))));
  }

  /** Applies a JSON merge patch (fields set to null are removed). */
  patch(id: string, patch: Partial<T> | Record<string, unknown>, expectedRevision?: number): Doc<T> {
    return fromRaw(call(() => raw.patch(this.name, id, JSON.stringify(patch), revision(expectedRevision))));
  }

  /** True when a document was deleted. */
  delete(id: string, expectedRevision?: number): boolean {
    return call(() => raw.delete(this.name, id, revision(expectedRevision)));
  }

  count(filter?: Filter): number {
    return Number(call(() => raw.count(this.name, filter ? flatten(filter) : undefined)));
  }

  query(options: QueryOptions = {}): Page<T> {
    const sort = (options.sort ?? []).map((s) =>
      s.startsWith("-") ? { path: s.slice(1), descending: true } : { path: s, descending: false },
    );
    const page = call(() =>
      raw.query(this.name, {
        filter: options.filter ? flatten(options.filter) : undefined,
        sort,
        limit: options.limit ?? 0,
        offset: options.offset ?? 0,
        cursor: options.after,
        fields: options.fields,
        withTotal: options.withTotal ?? false,
      }),
    );
    return {
      documents: page.documents.map((d) => fromRaw<T>(d)),
      next: page.nextCursor,
      total: page.total === undefined ? undefined : Number(page.total),
    };
  }
}

/** The collection `name`. */
export function collection<T = Record<string, unknown>>(name: string): Collection<T> {
  return new Collection<T>(name);
}
