import { useState } from 'preact/hooks';
import { get, post, put } from '../api';
import { ErrorBox, Field, Loading, Notice, useAction, useLoad } from '../ui';

interface Role {
  name: string;
  description: string;
  permissions: string[];
  builtin: boolean;
}

interface Permission {
  name: string;
  description: string;
  source: string;
}

export function Roles() {
  const roles = useLoad(() => get<{ roles: Role[] }>('/api/ucms/roles'));
  const perms = useLoad(() => get<{ permissions: Permission[] }>('/api/ucms/permissions'));
  const action = useAction();
  const [editing, setEditing] = useState<Role | null>(null);
  const [done, setDone] = useState('');

  async function save(e: Event) {
    e.preventDefault();
    if (!editing) return;
    const exists = roles.data?.roles.some((r) => r.name === editing.name);
    const body = { description: editing.description, permissions: editing.permissions };
    const r = await action.run(() =>
      exists ? put(`/api/ucms/roles/${editing.name}`, body) : post('/api/ucms/roles', { name: editing.name, ...body }),
    );
    if (r) {
      setDone(`Role ${editing.name} saved.`);
      setEditing(null);
      roles.reload();
    }
  }

  return (
    <section>
      <h1>Roles and permissions</h1>
      {roles.loading && <Loading what="roles" />}
      <ErrorBox error={roles.error} />
      {done && <Notice>{done}</Notice>}
      {roles.data && (
        <table>
          <thead>
            <tr>
              <th scope="col">Role</th>
              <th scope="col">Grants</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {roles.data.roles.map((r) => (
              <tr key={r.name}>
                <th scope="row">
                  {r.name} {r.builtin && <span class="badge">built in</span>}
                  <div class="muted small">{r.description}</div>
                </th>
                <td>
                  {r.permissions.map((p) => (
                    <code key={p} class="chip">
                      {p}
                    </code>
                  ))}
                </td>
                <td>
                  <button type="button" onClick={() => setEditing({ ...r })}>
                    Edit
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p>
        <button type="button" onClick={() => setEditing({ name: '', description: '', permissions: [], builtin: false })}>
          New role
        </button>
      </p>
      {editing && perms.data && (
        <form class="panel" onSubmit={save} aria-labelledby="role-h">
          <h2 id="role-h">{editing.name ? `Role ${editing.name}` : 'New role'}</h2>
          <Field label="Name" id="role-name">
            <input
              id="role-name"
              required
              value={editing.name}
              readOnly={roles.data?.roles.some((r) => r.name === editing.name && editing.name !== '')}
              onInput={(e) => setEditing({ ...editing, name: e.currentTarget.value })}
            />
          </Field>
          <Field label="Description" id="role-desc">
            <input id="role-desc" value={editing.description} onInput={(e) => setEditing({ ...editing, description: e.currentTarget.value })} />
          </Field>
          <fieldset>
            <legend>Permissions (host and plugin-declared)</legend>
            {perms.data.permissions.map((p) => (
              <label key={p.name} class="check">
                <input
                  type="checkbox"
                  checked={editing.permissions.includes(p.name)}
                  onChange={(e) =>
                    setEditing({
                      ...editing,
                      permissions: e.currentTarget.checked
                        ? [...editing.permissions, p.name]
                        : editing.permissions.filter((x) => x !== p.name),
                    })
                  }
                />
                <code>{p.name}</code> <span class="muted">{p.description}</span> <span class="badge">{p.source}</span>
              </label>
            ))}
          </fieldset>
          <Field label="Other grants (patterns, comma-separated)" id="role-extra" hint="For example content.* or content.update:own">
            <input
              id="role-extra"
              value={editing.permissions.filter((x) => !perms.data!.permissions.some((p) => p.name === x)).join(', ')}
              onChange={(e) => {
                const extra = e.currentTarget.value.split(',').map((s) => s.trim()).filter(Boolean);
                const known = editing.permissions.filter((x) => perms.data!.permissions.some((p) => p.name === x));
                setEditing({ ...editing, permissions: [...known, ...extra] });
              }}
            />
          </Field>
          <ErrorBox error={action.error} />
          <button type="submit" class="primary" disabled={action.busy}>
            Save role
          </button>{' '}
          <button type="button" onClick={() => setEditing(null)}>
            Cancel
          </button>
        </form>
      )}
    </section>
  );
}
