import { useState } from 'preact/hooks';
import { type Plan, type PluginInfo, del, get, post, qs } from '../api';
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
  schema: { name: string; kind: string; description: string; default: unknown; required: boolean }[];
  values: Record<string, unknown>;
  problem: string | null;
  how_to_change: string;
}

/** A form generated from the plugin's settings schema, showing the values in force. They are
 * the operator's configuration (ucms.toml), so it is read-only and says how to change them. */
function Settings({ id }: { id: string }) {
  const settings = useLoad(() => get<SettingsAnswer>(`/api/ucms/plugins/${id}/settings`), [id]);
  const s = settings.data;
  return (
    <section aria-labelledby="settings-h">
      <h2 id="settings-h">Settings</h2>
      <ErrorBox error={settings.error} />
      {s && s.schema.length === 0 && <p class="muted">This plugin has no settings.</p>}
      {s && s.schema.length > 0 && (
        <form class="panel" aria-describedby="settings-how" onSubmit={(e) => e.preventDefault()}>
          {s.problem && (
            <div class="warning" role="status">
              {s.problem}
            </div>
          )}
          {s.schema.map((f) => {
            const value = s.values[f.name] ?? f.default;
            const fid = `setting-${f.name}`;
            return (
              <div class="field" key={f.name}>
                <label for={fid}>
                  {f.name}
                  {f.required ? ' *' : ''} <span class="muted small">({f.kind})</span>
                </label>
                {f.kind === 'boolean' ? (
                  <input id={fid} type="checkbox" checked={!!value} disabled />
                ) : (
                  <input
                    id={fid}
                    type={(f.kind === 'integer' || f.kind === 'number' ? 'number' : 'text') as 'text'}
                    value={typeof value === 'string' || typeof value === 'number' ? value : value === undefined ? '' : JSON.stringify(value)}
                    readOnly
                  />
                )}
                <small>{f.description}</small>
              </div>
            );
          })}
          <p id="settings-how" class="muted small">
            To change them: {s.how_to_change}.
          </p>
        </form>
      )}
    </section>
  );
}
