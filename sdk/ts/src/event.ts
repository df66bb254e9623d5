const decoder = new TextDecoder();

/** The event record the host hands to `event-handler.handle`. */
export interface RawEvent {
  id: string;
  topic: string;
  key?: string;
  payload: Uint8Array;
  source: string;
  publishedAtMs: bigint;
  attempt: number;
}

/** An event delivered to a subscriber (at least once: the same id may come again). */
export class Event {
  readonly id: string;
  readonly topic: string;
  readonly key: string | undefined;
  readonly payload: Uint8Array;
  /** The plugin that published it. */
  readonly source: string;
  readonly publishedAtMs: number;
  /** 1 for the first delivery, 2 for the first retry, ... */
  readonly attempt: number;

  constructor(raw: RawEvent) {
    this.id = raw.id;
    this.topic = raw.topic;
    this.key = raw.key;
    this.payload = raw.payload;
    this.source = raw.source;
    this.publishedAtMs = Number(raw.publishedAtMs);
    this.attempt = raw.attempt;
  }

  json<T = unknown>(): T {
    return JSON.parse(decoder.decode(this.payload)) as T;
  }
}
