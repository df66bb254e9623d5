// The plugin's compiled component, run by a real UCMS host with a temporary database.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPlugin } from "@ucms/sdk/testing";

test("hello greets anyone", async () => {
  const plugin = await startPlugin();
  const response = await plugin.get("/hello?name=Ada");
  assert.equal(response.status, 200);
  assert.equal(response.json().message, "Hello from @NAME@, Ada!");
  await plugin.stop();
});

test("notes need the write permission", async () => {
  const plugin = await startPlugin();
  const refused = await plugin.post("/notes", { json: { text: "first" } });
  assert.equal(refused.status, 401);

  const created = await plugin.post("/notes", { json: { text: "first" }, as: { permissions: ["notes.write"] } });
  assert.equal(created.status, 201, created.body);
  assert.ok(created.logs.some((l) => l.includes("1 notes stored")), created.logs.join("\n"));

  assert.deepEqual(await plugin.kv("notes"), [{ text: "first" }]);
  assert.deepEqual((await plugin.get("/notes")).json(), [{ text: "first" }]);
  await plugin.stop();
});
