import { useState } from 'preact/hooks';
import { type User, get, patch, post, qs } from '../api';
import { ErrorBox, Field, Loading, Notice, Pager, useAction, useLoad, when } from '../ui';

const PAGE = 25;

export function Users() {
  // Keyset pages: the cursor of each page seen so far, so "Previous" works too.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const page = cursors.length;
  const list = useLoad(
    () => get<{ users: User[]; next_after?: string }>(`/api/ucms/users${qs({ limit: PAGE, after: cursors[page - 1] })}`),
    [page],
  );
  const roles = useLoad(() => get<{ roles: { name: string }[] }>('/api/ucms/roles'));
  const action = useAction();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState('editor');
  const [done, setDone] = useState('');

  async function create(e: Event) {
    e.preventDefault();
    const r = await action.run(() => post('/api/ucms/users', { email, password, roles: [role] }));
    if (r) {
      setDone(`${email} can sign in now.`);
      setEmail('');
      setPassword('');
      list.reload();
    }
  }

  return (
    <section>
      <h1>Users</h1>
      {list.loading && <Loading what="users" />}
      <ErrorBox error={list.error} />
      {list.data && (
        <>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Roles</th>
                  <th scope="col">Created</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {list.data.users.map((u) => (
                  <tr key={u.id}>
                    <th scope="row">{u.email}</th>
                    <td>
                      <label class="sr-only" for={`roles-${u.id}`}>
                        Roles of {u.email}
                      </label>
                      <input
                        id={`roles-${u.id}`}
                        value={u.roles.join(', ')}
                        onChange={async (e) => {
                          const next = e.currentTarget.value.split(',').map((s) => s.trim()).filter(Boolean);
                          if (await action.run(() => patch(`/api/ucms/users/${u.id}`, { roles: next }))) list.reload();
                        }}
                      />
                    </td>
                    <td>{when(u.created_at)}</td>
                    <td>
                      <button
                        type="button"
                        onClick={async () => {
                          if (await action.run(() => patch(`/api/ucms/users/${u.id}`, { disabled: !u.disabled }))) list.reload();
                        }}
                      >
                        {u.disabled ? 'Enable' : 'Disable'}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            page={page}
            hasNext={!!list.data.next_after}
            onPage={(n) => setCursors(n > page ? [...cursors, list.data!.next_after] : cursors.slice(0, n))}
          />
        </>
      )}
      <ErrorBox error={action.error} />
      {done && <Notice>{done}</Notice>}
      <form onSubmit={create} class="panel" aria-labelledby="new-user-h">
        <h2 id="new-user-h">Add a user</h2>
        <Field label="Email" id="new-email">
          <input id="new-email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </Field>
        <Field label="Initial password" id="new-password" hint="At least 10 characters; they can change it.">
          <input id="new-password" type="password" required minLength={10} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </Field>
        <Field label="Role" id="new-role">
          <select id="new-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            {(roles.data?.roles ?? [{ name: 'editor' }]).map((r) => (
              <option key={r.name}>{r.name}</option>
            ))}
          </select>
        </Field>
        <button type="submit" class="primary" disabled={action.busy}>
          Add user
        </button>
      </form>
    </section>
  );
}
