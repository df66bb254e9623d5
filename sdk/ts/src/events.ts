/** Publishing events (`[capabilities.events] publish = [...]`). */
import { publish as rawPublish } from "ucms:host/events@0.2.1";
import { hostCall } from "./error.ts";

const encoder = new TextEncoder();

/** Publishes `payload` as JSON on `topic`; `key` orders events that share it. Returns the event's id. */
export function publish(topic: string, payload: unknown, key?: string): string {
  return hostCall("events", () => rawPublish(topic, key, encoder.encode(JSON.stringify(payload))));
}
