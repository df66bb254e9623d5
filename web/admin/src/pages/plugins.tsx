import { useEffect, useRef, useState } from 'preact/hooks';
import { type Plan, type PluginInfo, del, get, post, put, qs } from '../api';
import { navigate } from '../router';
import { CapabilityList, ErrorBox, Link, Loading, Notice, StateBadge, useAction, useLoad, when } from '../ui';
import { Consent } from './consent';

export function Plugins() {
  const list = useLoad(() => get<{ plugins: PluginInfo[] }>('/api/ucms/plugins'));
  return (
    <section>
      <h1>Plugins</h1>
      <p>
        <Link to="marketplace">Find more in the marketplace</Link>
      </p>
      {list.loading && <Loading what="plugins" />}
      <ErrorBox error={list.error} />
      {list.data && (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Installed plugins</caption>
            <thead>
              <tr>
                <th scope="col">Plugin</th>
                <th scope="col">Version</th>
                <th scope="col">State</th>
                <th scope="col">Capabilities</th>
                <th scope="col">Publisher</th>
              </tr>
            </thead>
            <tbody>
              {list.data.plugins.map((p) => (
                <tr key={p.id} data-plugin={p.id}>
                  <th scope="row">
                    <Link to={`plugins/${p.id}`}>{p.id}</Link>
                    <div class="muted small">{p.description}</div>
                  </th>
                  <td>{p.version}</td>
                  <td>
                    <StateBadge state={p.state} />
                  </td>
                  <td>{p.capabilities.length}</td>
                  <td>{p.publisher}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function PluginDetail({ id }: { id: string }) {
  const info = useLoad(() => get<PluginInfo>(`/api/ucms/plugins/${encodeURIComponent(id)}`), [id]);
  const [plan, setPlan] = useState<Plan | null>(null);
  const [done, setDone] = useState<string>('');
  const action = useAction();

  async function act(what: string, call: () => Promise<unknown>) {
    setDone('');
    const r = await action.run(call);
    if (r !== undefined) {
      setDone(what);
      info.reload();
    }
  }

  const p = info.data;
  return (
    <section>
      <p>
        <Link to="plugins">← Plugins</Link>
      </p>
      <h1>
        {id} {p && <span class="muted">{p.version}</span>} {p && <StateBadge state={p.state} />}
      </h1>
      {info.loading && !p && <Loading what="the plugin" />}
      <ErrorBox error={info.error} />
      {done && <Notice>{done}</Notice>}
      <ErrorBox error={action.error} />
      {p && (
        <>
          <p>{p.description}</p>
          {p.reason && (
            <div class="warning" role="status">
              {p.state}: {p.reason}
            </div>
          )}
          <div class="actions" role="group" aria-label="Plugin actions">
            {p.state === 'enabled' ? (
              <button type="button" disabled={action.busy} onClick={() => act(`${id} is disabled: its routes are refused.`, () => post(`/api/ucms/plugins/${id}/disable`))}>
                Disable
              </button>
            ) : (
              <button type="button" disabled={action.busy} onClick={() => act(`${id} is enabled.`, () => post(`/api/ucms/plugins/${id}/enable`))}>
                {p.state === 'quarantined' ? 'Release from quarantine' : 'Enable'}
              </button>
            )}
            <button
              type="button"
              disabled={action.busy}
              onClick={async () => {
                setDone('');
                const planned = await action.run(() => post<Plan>('/api/ucms/plugins/plan', { upgrade: [id] }));
                if (planned) setPlan(planned);
              }}
            >
              Check for upgrade
            </button>
            {p.previous_version && (
              <button
                type="button"
                disabled={action.busy}
                onClick={() =>
                  confirm(`Roll ${id} back to ${p.previous_version}?`) &&
                  act(`${id} is back at ${p.previous_version}.`, () => post(`/api/ucms/plugins/${id}/rollback`))
                }
              >
                Roll back to {p.previous_version}
              </button>
            )}
            <button
              type="button"
              class="danger"
              disabled={action.busy}
              onClick={async () => {
                if (!confirm(`Remove ${id}? Its data is kept unless you purge it.`)) return;
                const r = await action.run(() => del(`/api/ucms/plugins/${id}${qs({ purge: undefined })}`));
                if (r) navigate('plugins');
              }}
            >
              Remove
            </button>
          </div>
          {plan && (
            <Consent
              plan={plan}
              onCancel={() => setPlan(null)}
              onDone={() => {
                setPlan(null);
                setDone(`${id} is upgraded.`);
                info.reload();
              }}
            />
          )}
          <div class="cards">
            <article class="card">
              <h2>About</h2>
              <dl>
                <dt>Publisher</dt>
                <dd>{p.publisher}</dd>
                <dt>Signed by</dt>
                <dd>{p.signer ? `${p.signer.publisher ?? ''} ${p.signer.key_id ?? ''}` : 'unsigned'}</dd>
                <dt>Installed</dt>
                <dd>{when(p.installed_at)}</dd>
                <dt>Source</dt>
                <dd>
                  <code>{p.source}</code>
                </dd>
                <dt>Previous version</dt>
                <dd>{p.previous_version ?? '—'}</dd>
              </dl>
            </article>
            <article class="card">
              <h2>Capabilities</h2>
              <CapabilityList items={p.capabilities} />
            </article>
            <article class="card wide">
              <h2>Routes</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Method</th>
                    <th scope="col">Path</th>
                    <th scope="col">Access</th>
                  </tr>
                </thead>
                <tbody>
                  {p.routes.map((r) => (
                    <tr key={r.method + r.path}>
                      <td>{r.method}</td>
                      <td>
                        <code>{r.path}</code>
                      </td>
                      <td>{r.access}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </article>
            <article class="card">
              <h2>Permissions it declares</h2>
              {Object.keys(p.permissions).length === 0 ? (
                <p class="muted">none</p>
              ) : (
                <dl>
                  {Object.entries(p.permissions).map(([k, v]) => (
                    <>
                      <dt>
                        <code>{k}</code>
                      </dt>
                      <dd>{v}</dd>
                    </>
                  ))}
                </dl>
              )}
            </article>
            <article class="card">
              <h2>Event subscriptions</h2>
              {p.subscriptions.length ? <CapabilityList items={p.subscriptions} /> : <p class="muted">none</p>}
            </article>
          </div>
          <Settings id={id} />
          <Metrics id={id} />
          <Logs id={id} />
          <DeadLetters id={id} />
        </>
      )}
    </section>
  );
}

function DeadLetters({ id }: { id: string }) {
  const letters = useLoad(() => get<{ dead_letters: any[] }>(`/api/ucms/events/dead-letters${qs({ subscriber: id, limit: 20 })}`), [id]);
  const action = useAction();
  return (
    <section aria-labelledby="dl-h">
      <h2 id="dl-h">Dead letters</h2>
      <p class="muted">Events this plugin failed to handle after every retry. Replay sends them again.</p>
      <ErrorBox error={letters.error ?? action.error} />
      {letters.data && letters.data.dead_letters.length === 0 && <p>None.</p>}
      {letters.data && letters.data.dead_letters.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Failed</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last error</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {letters.data.dead_letters.map((d) => (
              <tr key={d.event_id}>
                <td>
                  <code>{d.topic}</code>
                </td>
                <td>{when(d.failed_at)}</td>
                <td>{d.attempts}</td>
                <td>{d.last_error}</td>
                <td>
                  <button
                    type="button"
                    disabled={action.busy}
                    onClick={async () => {
                      await action.run(() => post('/api/ucms/events/dead-letters/replay', { event_id: d.event_id, subscriber: id }));
                      letters.reload();
                    }}
                  >
                    Replay
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Metrics({ id }: { id: string }) {
  const metrics = useLoad(() => get<{ samples: { name: string; labels: Record<string, string>; value: number }[] }>(`/api/ucms/plugins/${id}/metrics`), [id]);
  return (
    <section aria-labelledby="metrics-h">
      <h2 id="metrics-h">Metrics (this node)</h2>
      <ErrorBox error={metrics.error} />
      {metrics.data && metrics.data.samples.length === 0 && <p class="muted">Nothing recorded yet.</p>}
      {metrics.data && metrics.data.samples.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Labels</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {metrics.data.samples.map((m, i) => (
                <tr key={i}>
                  <td>
                    <code>{m.name}</code>
                  </td>
                  <td>
                    {Object.entries(m.labels).map(([k, v]) => (
                      <code key={k} class="chip">
                        {k}={v}
                      </code>
                    ))}
                  </td>
                  <td>{Number.isInteger(m.value) ? m.value : m.value.toFixed(4)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p>
        <button type="button" onClick={metrics.reload}>
          Refresh
        </button>
      </p>
    </section>
  );
}

interface SettingsAnswer {
  schema: {
    name: string;
    kind: string;
    description: string;
    default: unknown;
    required: boolean;
    locked: boolean;
    skipped: string | null;
  }[];
  values: Record<string, unknown>;
  saved: Record<string, unknown>;
  problem: string | null;
  editable: boolean;
  locked_how: string;
}

/** The text a setting's input shows: strings as they are, everything else as JSON. */
function shown(kind: string, value: unknown): string {
  if (value === undefined || value === null) return '';
  return kind === 'string' && typeof value === 'string' ? value : JSON.stringify(value);
}

/** What the input's text means for a setting of `kind`; throws with what is wrong. */
function parsed(name: string, kind: string, text: string): unknown {
  if (text.trim() === '') return null;
  if (kind === 'string') return text;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${name}: "${text}" is not a valid ${kind}`);
  }
  const ok =
    (kind === 'integer' && Number.isInteger(value)) ||
    (kind === 'number' && typeof value === 'number') ||
    (kind === 'array' && Array.isArray(value)) ||
    (kind === 'object' && typeof value === 'object' && value !== null && !Array.isArray(value));
  if (!ok) throw new Error(`${name}: "${text}" is not a valid ${kind}`);
  return value;
}

/** A form generated from the plugin's settings schema. Values the site's configuration sets
 * (ucms.toml, UCMS_ variables) are locked and shown read-only; the others are saved through
 * PUT /api/ucms/plugins/{id}/settings, which reloads the plugin with them. An empty field goes
 * back to the default. */
function Settings({ id }: { id: string }) {
  const settings = useLoad(() => get<SettingsAnswer>(`/api/ucms/plugins/${id}/settings`), [id]);
  const save = useAction();
  const [draft, setDraft] = useState<Record<string, string>>({});
  const [flags, setFlags] = useState<Record<string, boolean | null>>({});
  const [saved, setSaved] = useState(false);
  const s = settings.data;
  useEffect(() => {
    if (!s) return;
    const d: Record<string, string> = {};
    const f: Record<string, boolean | null> = {};
    for (const field of s.schema) {
      const v = s.saved[field.name];
      if (field.kind === 'boolean') f[field.name] = typeof v === 'boolean' ? v : null;
      else d[field.name] = shown(field.kind, v);
    }
    setDraft(d);
    setFlags(f);
  }, [s]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!s) return;
    setSaved(false);
    const values: Record<string, unknown> = {};
    const ok = await save.run(async () => {
      for (const f of s.schema) {
        if (f.locked) continue;
        const v = f.kind === 'boolean' ? flags[f.name] ?? null : parsed(f.name, f.kind, draft[f.name] ?? '');
        if (v !== null) values[f.name] = v;
      }
      return put(`/api/ucms/plugins/${id}/settings`, { values });
    });
    if (ok !== undefined) {
      setSaved(true);
      settings.reload();
    }
  };
  return (
    <section aria-labelledby="settings-h">
      <h2 id="settings-h">Settings</h2>
      <ErrorBox error={settings.error ?? save.error} />
      {s && s.schema.length === 0 && <p class="muted">This plugin has no settings.</p>}
      {s && s.schema.length > 0 && (
        <form class="panel" aria-describedby="settings-how" onSubmit={submit}>
          {s.problem && (
            <div class="warning" role="status">
              {s.problem}
            </div>
          )}
          {s.schema.map((f) => {
            const fid = `setting-${f.name}`;
            const inForce = s.values[f.name];
            const readOnly = f.locked || !s.editable;
            return (
              <div class="field" key={f.name}>
                <label for={fid}>
                  {f.name}
                  {f.required ? ' *' : ''} <span class="muted small">({f.kind})</span>
                  {f.locked && <span class="chip">set by the site's configuration</span>}
                </label>
                {f.kind === 'boolean' ? (
                  <select
                    id={fid}
                    disabled={readOnly}
                    value={f.locked ? String(inForce) : flags[f.name] === null || flags[f.name] === undefined ? '' : String(flags[f.name])}
                    onChange={(e) => {
                      const v = (e.target as HTMLSelectElement).value;
                      setFlags({ ...flags, [f.name]: v === '' ? null : v === 'true' });
                    }}
                  >
                    <option value="">default ({shown('boolean', f.default) || 'none'})</option>
                    <option value="true">true</option>
                    <option value="false">false</option>
                  </select>
                ) : (
                  <input
                    id={fid}
                    type="text"
                    inputMode={f.kind === 'integer' || f.kind === 'number' ? 'decimal' : undefined}
                    value={f.locked ? shown(f.kind, inForce) : draft[f.name] ?? ''}
                    placeholder={f.default === undefined || f.default === null ? '' : `default: ${shown(f.kind, f.default)}`}
                    readOnly={readOnly}
                    onInput={(e) => setDraft({ ...draft, [f.name]: (e.target as HTMLInputElement).value })}
                  />
                )}
                <small>
                  {f.description}
                  {!f.locked && inForce !== undefined && <> — in force: <code>{shown(f.kind, inForce)}</code></>}
                </small>
                {f.skipped && <small class="warning">{f.skipped}; the default is used</small>}
              </div>
            );
          })}
          {s.editable && (
            <p>
              <button type="submit" disabled={save.busy}>
                Save settings
              </button>{' '}
              {saved && <span role="status">Saved; the plugin was reloaded with them.</span>}
            </p>
          )}
          <p id="settings-how" class="muted small">
            An empty field uses the default. {s.schema.some((f) => f.locked) ? `Some are locked: ${s.locked_how}.` : ''}
          </p>
        </form>
      )}
    </section>
  );
}

interface LogLine {
  seq: number;
  at_ms: number;
  level: string;
  source: string;
  message: string;
  fields?: Record<string, string>;
  request_id?: string;
}

/** The plugin's recent log on the node that answers (its own lines and the host's about it),
 * newest last, with a level filter and a follow mode that polls for new lines. */
function Logs({ id }: { id: string }) {
  const [level, setLevel] = useState('info');
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [follow, setFollow] = useState(false);
  const [evicted, setEvicted] = useState(0);
  const after = useRef<number | null>(null);
  const load = async (fresh: boolean) => {
    try {
      const page = await get<{ lines: LogLine[]; next_after: number; evicted: number }>(
        `/api/ucms/plugins/${id}/logs${qs({ level, limit: 200, after: fresh ? undefined : after.current ?? undefined })}`,
      );
      after.current = page.next_after;
      setEvicted(page.evicted);
      setLines((old) => (fresh ? page.lines : [...old, ...page.lines].slice(-500)));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    after.current = null;
    void load(true);
  }, [id, level]);
  useEffect(() => {
    if (!follow) return;
    const timer = setInterval(() => void load(false), 2000);
    return () => clearInterval(timer);
  }, [follow, id, level]);
  return (
    <section aria-labelledby="logs-h">
      <h2 id="logs-h">Log (this node)</h2>
      <p class="muted">
        What the plugin logged, and what the host said about it (failed invocations, limit breaches, refused capabilities). Each node keeps the newest
        256 KiB in memory{evicted > 0 ? ` (${evicted} older lines dropped)` : ''}; the site's log pipeline keeps everything.
      </p>
      <div class="toolbar">
        <label>
          Level{' '}
          <select value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value)}>
            {['trace', 'debug', 'info', 'warn', 'error'].map((l) => (
              <option key={l} value={l}>
                {l} and above
              </option>
            ))}
          </select>
        </label>{' '}
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> Follow
        </label>{' '}
        <button type="button" onClick={() => void load(true)}>
          Refresh
        </button>
      </div>
      <ErrorBox error={error} />
      {lines.length === 0 && !error && <p class="muted">No lines yet.</p>}
      {lines.length > 0 && (
        <div class="table-wrap">
          <table class="log">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Level</th>
                <th scope="col">From</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {lines.map((l) => (
                <tr key={l.seq} class={`level-${l.level}`}>
                  <td>{when(l.at_ms)}</td>
                  <td>{l.level}</td>
                  <td>{l.source}</td>
                  <td>
                    <pre>{l.message}</pre>
                    {l.fields &&
                      Object.entries(l.fields).map(([k, v]) => (
                        <code key={k} class="chip">
                          {k}={v}
                        </code>
                      ))}
                    {l.request_id && <span class="muted small"> request {l.request_id}</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
