import { type PluginInfo, get } from '../api';
import { ErrorBox, Link, Loading, StateBadge, useLoad, when } from '../ui';

interface Ready {
  status: string;
  database: { backend: string; ok: boolean };
  plugins: { installed: number; failed: string[] };
  runtime: { allocator: string };
}

export function Dashboard() {
  const ready = useLoad(() => get<Ready>('/readyz').catch((e) => (e.body ? Promise.reject(e) : Promise.reject(e))));
  const plugins = useLoad(() => get<{ plugins: PluginInfo[] }>('/api/ucms/plugins'));
  const audit = useLoad(() => get<{ entries: any[] }>('/api/ucms/audit?limit=8'));
  return (
    <section>
      <h1>Dashboard</h1>
      <div class="cards">
        <article class="card" aria-labelledby="health-h">
          <h2 id="health-h">Site health</h2>
          {ready.loading && <Loading what="health" />}
          <ErrorBox error={ready.error} />
          {ready.data && (
            <dl>
              <dt>Status</dt>
              <dd>
                <StateBadge state={ready.data.status} />
              </dd>
              <dt>Database</dt>
              <dd>
                {ready.data.database.backend} {ready.data.database.ok ? '(ok)' : '(unreachable)'}
              </dd>
              <dt>Plugins installed</dt>
              <dd>{ready.data.plugins.installed}</dd>
              <dt>Failed to load</dt>
              <dd>{ready.data.plugins.failed.length ? ready.data.plugins.failed.join(', ') : 'none'}</dd>
              <dt>Instance allocator</dt>
              <dd>{ready.data.runtime.allocator}</dd>
            </dl>
          )}
        </article>
        <article class="card" aria-labelledby="plugins-h">
          <h2 id="plugins-h">Plugins</h2>
          {plugins.loading && <Loading what="plugins" />}
          <ErrorBox error={plugins.error} />
          {plugins.data && (
            <ul class="plain">
              {plugins.data.plugins.map((p) => (
                <li key={p.id}>
                  <Link to={`plugins/${p.id}`}>{p.id}</Link> {p.version} <StateBadge state={p.state} />
                  {p.quarantine && <small> — {p.quarantine.reason}</small>}
                </li>
              ))}
              {plugins.data.plugins.length === 0 && (
                <li>
                  No plugins yet. <Link to="marketplace">Browse the marketplace</Link>.
                </li>
              )}
            </ul>
          )}
        </article>
        <article class="card wide" aria-labelledby="activity-h">
          <h2 id="activity-h">Recent activity</h2>
          {audit.loading && <Loading what="activity" />}
          {audit.error ? <p class="muted">The audit log needs the ucms.audit.read permission.</p> : null}
          {audit.data && (
            <table>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Who</th>
                  <th scope="col">What</th>
                  <th scope="col">On</th>
                </tr>
              </thead>
              <tbody>
                {audit.data.entries.map((e) => (
                  <tr key={e.seq}>
                    <td>{when(e.at)}</td>
                    <td>{e.actor ?? '—'}</td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td>{e.target ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <p>
            <Link to="audit">The whole audit log</Link>
          </p>
        </article>
      </div>
    </section>
  );
}
