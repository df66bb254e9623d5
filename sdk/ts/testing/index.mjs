// Test a UCMS plugin the way it will really run: its compiled component in the real host, with a
// temporary site made for each `startPlugin()`. Runs `ucms plugin harness` (UCMS_BIN, or `ucms` on
// the PATH) and speaks its JSON-lines protocol; see docs/plugin-testing.md.
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { resolve } from "node:path";

const bin = () => process.env.UCMS_BIN ?? "ucms";
let built = false;

function ensureBuilt(dir) {
  if (built || process.env.UCMS_PLUGIN_BUILT) return;
  const result = spawnSync(bin(), ["plugin", "build", dir], { stdio: "inherit" });
  if (result.error) {
    throw new Error(`cannot run ${bin()} (${result.error.message})\n  hint: install ucms, or set UCMS_BIN (\`ucms plugin test\` does)`);
  }
  if (result.status !== 0) throw new Error(`\`ucms plugin build ${dir}\` failed; see above`);
  built = true;
}

/**
 * Builds the plugin in `dir` (once per process) and starts it in a fresh site.
 * @param {{ dir?: string, settings?: Record<string, unknown>, secrets?: Record<string, string>, allowPrivateEgress?: boolean }} [options]
 */
export async function startPlugin(options = {}) {
  const dir = resolve(options.dir ?? process.cwd());
  ensureBuilt(dir);
  const args = ["plugin", "harness", dir];
  for (const [key, value] of Object.entries(options.settings ?? {})) args.push("--setting", `${key}=${JSON.stringify(value)}`);
  for (const [name, value] of Object.entries(options.secrets ?? {})) args.push("--secret", `${name}=${value}`);
  if (options.allowPrivateEgress) args.push("--allow-private-egress");
  const child = spawn(bin(), args, {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, UCMS_LOG: process.env.UCMS_LOG ?? "warn" },
  });
  const plugin = new TestPlugin(child);
  const ready = await plugin._next();
  if (!ready?.ready) throw new Error("the harness did not start; its error is above");
  plugin.id = ready.plugin;
  return plugin;
}

export class TestPlugin {
  constructor(child) {
    this.child = child;
    this.id = "";
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    this.queue = Promise.resolve();
  }

  async _next() {
    const { value, done } = await this.lines.next();
    if (done) throw new Error("the harness stopped; its error is above");
    return JSON.parse(value);
  }

  /** Sends one harness command; rejects on a harness error. */
  command(command) {
    const run = async () => {
      this.child.stdin.write(`${JSON.stringify(command)}\n`);
      const answer = await this._next();
      if (answer.ok !== true) throw new Error(`harness command ${command.op} failed: ${answer.error?.message}`);
      return answer;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  /**
   * A request to one of the plugin's routes (`path` below /api/{id}).
   * `as`: `{ permissions: [...] }` for a signed-in user holding those grants; anonymous otherwise.
   * @returns {Promise<{status: number, headers: Record<string, string>, body: string, json: () => any, logs: string[]}>}
   */
  async request(method, path, { json, body, headers = {}, as } = {}) {
    const pairs = Object.entries(headers);
    if (json !== undefined) {
      body = JSON.stringify(json);
      pairs.push(["content-type", "application/json"]);
    }
    const principal = as ? { kind: "user", permissions: as.permissions ?? [] } : { kind: "anonymous" };
    const answer = await this.command({ op: "request", method, path, headers: pairs, body, as: principal });
    return { ...answer, json: () => JSON.parse(answer.body) };
  }

  get(path, options) {
    return this.request("GET", path, options);
  }
  post(path, options) {
    return this.request("POST", path, options);
  }
  put(path, options) {
    return this.request("PUT", path, options);
  }
  delete(path, options) {
    return this.request("DELETE", path, options);
  }

  /** The JSON value at `key` in the plugin's key-value store, or null. */
  async kv(key) {
    return (await this.command({ op: "kv.get", key })).value;
  }

  async document(collection, id) {
    return (await this.command({ op: "documents.get", collection, id })).document;
  }

  async documents(collection) {
    return (await this.command({ op: "documents.list", collection })).documents;
  }

  /** Publishes an event (source `harness`) and waits until the plugin handled it. */
  async publish(topic, payload, key) {
    const answer = await this.command({ op: "event.publish", topic, payload, key });
    const mine = answer.deliveries.find((d) => d.subscriber === this.id);
    return { subscribed: !!mine, delivered: !!mine?.delivered, error: mine?.error ?? null, logs: answer.logs };
  }

  /** Runs one tick of a schedule; resolves to the plugin's error message, or null. */
  async tick(name) {
    return (await this.command({ op: "schedule.tick", name })).error ?? null;
  }

  async logs() {
    return (await this.command({ op: "logs" })).logs;
  }

  /** Stops the site (closing stdin ends the harness, which removes its folder). */
  async stop() {
    this.child.stdin.end();
    await new Promise((resolve) => this.child.once("exit", resolve));
  }
}
