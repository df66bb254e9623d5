import { useState } from 'preact/hooks';
import { type Me, del, get, post } from '../api';
import { ErrorBox, Field, Notice, useAction, useLoad, when } from '../ui';

export function Profile({ me }: { me: Me }) {
  const tokens = useLoad(() => get<{ tokens: any[] }>('/api/ucms/tokens'));
  const action = useAction();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState('');
  const [days, setDays] = useState('30');
  const [issued, setIssued] = useState('');
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [done, setDone] = useState('');

  async function create(e: Event) {
    e.preventDefault();
    const r = await action.run(() =>
      post<{ token: string }>('/api/ucms/tokens', {
        name,
        scopes: scopes.split(/[\s,]+/).filter(Boolean),
        ttl_secs: Number(days) * 86400,
      }),
    );
    if (r) {
      setIssued(r.token);
      setName('');
      tokens.reload();
    }
  }

  async function changePassword(e: Event) {
    e.preventDefault();
    const r = await action.run(() => post('/api/ucms/auth/password', { current_password: current, new_password: next }));
    if (r) {
      setDone('Password changed; your other sessions were signed out.');
      setCurrent('');
      setNext('');
    }
  }

  return (
    <section>
      <h1>Profile</h1>
      <dl>
        <dt>Email</dt>
        <dd>{me.user.email}</dd>
        <dt>Roles</dt>
        <dd>{me.user.roles.join(', ')}</dd>
      </dl>
      <ErrorBox error={action.error} />
      {done && <Notice>{done}</Notice>}
      <h2>API tokens</h2>
      {tokens.data && (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Scopes</th>
              <th scope="col">Expires</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.tokens.map((t) => (
              <tr key={t.id}>
                <td>{t.name}</td>
                <td>{(t.scopes ?? []).join(' ')}</td>
                <td>{when(t.expires_at)}</td>
                <td>
                  <button
                    type="button"
                    onClick={async () => {
                      await action.run(() => del(`/api/ucms/tokens/${t.id}`));
                      tokens.reload();
                    }}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {issued && (
        <Notice>
          Your new token (shown once): <code class="secret">{issued}</code>
        </Notice>
      )}
      <form class="panel" onSubmit={create} aria-labelledby="tok-h">
        <h3 id="tok-h">New token</h3>
        <Field label="Name" id="tok-name">
          <input id="tok-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Scopes" id="tok-scopes" hint="Permissions or patterns, e.g. content.* hello.counter.increment">
          <input id="tok-scopes" required value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} />
        </Field>
        <Field label="Expires after (days)" id="tok-days">
          <input id="tok-days" type="number" min={1} value={days} onInput={(e) => setDays(e.currentTarget.value)} />
        </Field>
        <button type="submit" class="primary" disabled={action.busy}>
          Create token
        </button>
      </form>
      <form class="panel" onSubmit={changePassword} aria-labelledby="pw-h">
        <h3 id="pw-h">Change password</h3>
        <Field label="Current password" id="pw-current">
          <input id="pw-current" type="password" autocomplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
        </Field>
        <Field label="New password" id="pw-new">
          <input id="pw-new" type="password" autocomplete="new-password" required minLength={10} value={next} onInput={(e) => setNext(e.currentTarget.value)} />
        </Field>
        <button type="submit" disabled={action.busy}>
          Change password
        </button>
      </form>
    </section>
  );
}
