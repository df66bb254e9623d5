import { useState } from 'preact/hooks';
import { type Plan, get, post, qs } from '../api';
import { navigate, useRoute } from '../router';
import { CapabilityList, ErrorBox, Link, Loading, Notice, useAction, useLoad, when } from '../ui';
import { Consent } from './consent';

interface Entry {
  id: string;
  version: string;
  publisher: string;
  description: string;
  api: string;
  dependencies: Record<string, string>;
  capabilities: string[];
  categories: string[];
  size: number;
  yanked: boolean;
  published_at: number;
}

interface Hit {
  latest: Entry;
  versions: string[];
  downloads: number;
  installed?: string;
}

export function Marketplace() {
  const { query } = useRoute();
  const q = query.get('q') ?? '';
  const [text, setText] = useState(q);
  const found = useLoad(() => get<{ registry: string; packages: Hit[] }>(`/api/ucms/marketplace/search${qs({ q })}`), [q]);
  return (
    <section>
      <h1>Marketplace</h1>
      <form
        role="search"
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`marketplace${qs({ q: text })}`);
        }}
      >
        <label for="market-q">Search plugins</label>
        <input id="market-q" type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="name, description, category" />
        <button type="submit">Search</button>
      </form>
      {found.loading && <Loading what="the registry" />}
      <ErrorBox error={found.error} />
      {found.data && (
        <>
          <p class="muted">
            {found.data.packages.length} plugin{found.data.packages.length === 1 ? '' : 's'} in <code>{found.data.registry}</code>
          </p>
          <ul class="grid">
            {found.data.packages.map((h) => (
              <li key={h.latest.id} class="card" data-package={h.latest.id}>
                <h2>
                  <Link to={`marketplace/${h.latest.id}`}>{h.latest.id}</Link> <span class="muted">{h.latest.version}</span>
                </h2>
                <p>{h.latest.description}</p>
                <p class="muted small">
                  by {h.latest.publisher} · {h.downloads} downloads · {h.latest.capabilities.length} capabilities
                  {h.latest.categories.length > 0 && ` · ${h.latest.categories.join(', ')}`}
                </p>
                {h.installed && <span class="badge badge-enabled">installed {h.installed}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

export function MarketplacePackage({ id }: { id: string }) {
  const pkg = useLoad(
    () => get<{ registry: string; id: string; installed: string | null; versions: Entry[] }>(`/api/ucms/marketplace/packages/${encodeURIComponent(id)}`),
    [id],
  );
  const [plan, setPlan] = useState<Plan | null>(null);
  const [version, setVersion] = useState('');
  const [done, setDone] = useState('');
  const action = useAction();
  const latest = pkg.data?.versions.find((v) => !v.yanked) ?? pkg.data?.versions[0];
  const chosen = pkg.data?.versions.find((v) => v.version === version) ?? latest;

  async function planInstall() {
    setDone('');
    const want = version ? `${id}@=${version}` : id;
    const planned = await action.run(() => post<Plan>('/api/ucms/plugins/plan', { install: [want] }));
    if (planned) setPlan(planned);
  }

  return (
    <section>
      <p>
        <Link to="marketplace">← Marketplace</Link>
      </p>
      <h1>{id}</h1>
      {pkg.loading && <Loading what="the plugin" />}
      <ErrorBox error={pkg.error} />
      {done && (
        <Notice>
          {done} <Link to={`plugins/${id}`}>Manage it</Link>
        </Notice>
      )}
      {pkg.data && latest && chosen && (
        <>
          <p>{latest.description}</p>
          <p class="muted">
            by {latest.publisher} · needs host API <code>{latest.api}</code>
            {pkg.data.installed ? ` · installed here: ${pkg.data.installed}` : ''}
          </p>
          {!plan && (
            <div class="actions">
              <label for="version">Version</label>
              <select id="version" value={version} onChange={(e) => setVersion(e.currentTarget.value)}>
                <option value="">newest compatible</option>
                {pkg.data.versions.map((v) => (
                  <option key={v.version} value={v.version} disabled={v.yanked}>
                    {v.version}
                    {v.yanked ? ' (yanked)' : ''}
                  </option>
                ))}
              </select>
              <button type="button" class="primary" disabled={action.busy} onClick={planInstall}>
                {pkg.data.installed ? 'Plan a change' : 'Install…'}
              </button>
            </div>
          )}
          <ErrorBox error={action.error} />
          {plan && (
            <Consent
              plan={plan}
              onCancel={() => setPlan(null)}
              onDone={() => {
                setPlan(null);
                setDone(`${id} is installed.`);
                pkg.reload();
              }}
            />
          )}
          <div class="cards">
            <article class="card">
              <h2>Capabilities ({chosen.version})</h2>
              <CapabilityList items={chosen.capabilities} />
            </article>
            <article class="card">
              <h2>Dependencies</h2>
              {Object.keys(chosen.dependencies).length === 0 ? (
                <p class="muted">none</p>
              ) : (
                <ul>
                  {Object.entries(chosen.dependencies).map(([d, req]) => (
                    <li key={d}>
                      <Link to={`marketplace/${d}`}>{d}</Link> <code>{req}</code>
                    </li>
                  ))}
                </ul>
              )}
            </article>
            <article class="card wide">
              <h2>Versions</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">Published</th>
                    <th scope="col">Host API</th>
                    <th scope="col">Size</th>
                  </tr>
                </thead>
                <tbody>
                  {pkg.data.versions.map((v) => (
                    <tr key={v.version}>
                      <td>
                        {v.version} {v.yanked && <span class="badge badge-failed">yanked</span>}
                      </td>
                      <td>{when(v.published_at * 1000)}</td>
                      <td>
                        <code>{v.api}</code>
                      </td>
                      <td>{Math.round(v.size / 1024)} KiB</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </article>
          </div>
        </>
      )}
    </section>
  );
}
