// Content, driven by the content plugin's API (/api/content/…, docs/content.md): the type
// builder, entry lists with filters, sort, search and pagination, and an entry editor generated
// from the type, with drafts, publishing, scheduling, revisions (diff, restore) and locales.
import { useState } from 'preact/hooks';
import { ApiError, del, get, post, put, qs, request } from '../api';
import { navigate, useRoute } from '../router';
import { ErrorBox, Field, Link, Loading, Notice, Pager, StateBadge, useAction, useLoad, when } from '../ui';

export interface FieldDef {
  name: string;
  type: string;
  required?: boolean;
  unique?: boolean;
  localized?: boolean;
  private?: boolean;
  'max-length'?: number;
  'min-length'?: number;
  min?: number | string;
  max?: number | string;
  values?: string[];
  format?: string;
  from?: string;
  target?: string;
  cardinality?: string;
  'on-delete'?: string;
  fields?: FieldDef[];
  repeatable?: boolean;
  blocks?: Record<string, FieldDef[]>;
  [key: string]: unknown;
}

export interface ContentType {
  name: string;
  kind: 'collection' | 'single';
  'display-name'?: string;
  'draft-and-publish'?: boolean;
  locales?: string[];
  'default-locale'?: string;
  fields: FieldDef[];
}

const FIELD_TYPES = [
  'short-text',
  'long-text',
  'rich-text',
  'integer',
  'decimal',
  'boolean',
  'date',
  'datetime',
  'enumeration',
  'email',
  'url',
  'slug',
  'json',
  'media',
  'relation',
  'component',
  'dynamic-zone',
];

function NoContentPlugin({ error }: { error: unknown }) {
  const e = error as ApiError;
  if (e?.status === 404 && /content/.test(e.message ?? '')) {
    return (
      <Notice>
        The content plugin is not installed (or is disabled). <Link to="marketplace?q=content">Install it from the marketplace</Link>.
      </Notice>
    );
  }
  return <ErrorBox error={error} />;
}

export function ContentHome() {
  const types = useLoad(() => get<{ data: ContentType[] }>('/api/content/types'));
  return (
    <section>
      <h1>Content</h1>
      {types.loading && <Loading what="content types" />}
      {types.error ? <NoContentPlugin error={types.error} /> : null}
      {types.data && (
        <>
          <p>
            <Link to="content/types/new" class="button primary">
              New content type
            </Link>
          </p>
          <table>
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Kind</th>
                <th scope="col">Fields</th>
                <th scope="col">Locales</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {types.data.data.map((t) => (
                <tr key={t.name}>
                  <th scope="row">
                    <Link to={`content/${t.name}`}>{t['display-name'] || t.name}</Link>
                  </th>
                  <td>{t.kind}</td>
                  <td>{t.fields.length}</td>
                  <td>{(t.locales ?? ['en']).join(', ')}</td>
                  <td>
                    <Link to={`content/types/${t.name}`}>Edit type</Link>
                  </td>
                </tr>
              ))}
              {types.data.data.length === 0 && (
                <tr>
                  <td colSpan={5}>No content types yet.</td>
                </tr>
              )}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

// ---- the type builder ----

function FieldsEditor(props: { fields: FieldDef[]; onChange: (f: FieldDef[]) => void; prefix: string; types: string[]; depth: number }) {
  const { fields, onChange, prefix } = props;
  const set = (i: number, f: FieldDef) => onChange(fields.map((x, j) => (j === i ? f : x)));
  const kinds = props.depth > 0 ? FIELD_TYPES.filter((t) => t !== 'dynamic-zone') : FIELD_TYPES;
  return (
    <div class="fields-editor">
      {fields.map((f, i) => {
        const id = `${prefix}-${i}`;
        return (
          <fieldset key={id} class="field-def" data-field={f.name}>
            <legend>{f.name || `field ${i + 1}`}</legend>
            <div class="row">
              <Field label="Name" id={`${id}-name`}>
                <input id={`${id}-name`} required value={f.name} onInput={(e) => set(i, { ...f, name: e.currentTarget.value })} />
              </Field>
              <Field label="Type" id={`${id}-type`}>
                <select id={`${id}-type`} value={f.type} onChange={(e) => set(i, defaults({ name: f.name, type: e.currentTarget.value, required: f.required }))}>
                  {kinds.map((t) => (
                    <option key={t}>{t}</option>
                  ))}
                </select>
              </Field>
              <label class="check">
                <input type="checkbox" checked={!!f.required} onChange={(e) => set(i, { ...f, required: e.currentTarget.checked })} /> required
              </label>
              {props.depth === 0 && (
                <>
                  <label class="check">
                    <input type="checkbox" checked={!!f.unique} onChange={(e) => set(i, { ...f, unique: e.currentTarget.checked })} /> unique
                  </label>
                  <label class="check">
                    <input type="checkbox" checked={!!f.localized} onChange={(e) => set(i, { ...f, localized: e.currentTarget.checked })} /> localized
                  </label>
                </>
              )}
              <button type="button" class="danger small" aria-label={`Remove field ${f.name || i + 1}`} onClick={() => onChange(fields.filter((_, j) => j !== i))}>
                Remove
              </button>
            </div>
            <FieldOptions f={f} id={id} set={(nf) => set(i, nf)} types={props.types} depth={props.depth} />
          </fieldset>
        );
      })}
      <button type="button" onClick={() => onChange([...fields, { name: '', type: 'short-text' }])}>
        + Add field{props.depth > 0 ? ' to this group' : ''}
      </button>
    </div>
  );
}

function defaults(f: FieldDef): FieldDef {
  switch (f.type) {
    case 'enumeration':
      return { ...f, values: ['one', 'two'] };
    case 'rich-text':
      return { ...f, format: 'markdown' };
    case 'relation':
      return { ...f, target: '', cardinality: 'one-to-one', 'on-delete': 'set-null' };
    case 'component':
      return { ...f, fields: [{ name: 'title', type: 'short-text' }], repeatable: false };
    case 'dynamic-zone':
      return { ...f, blocks: { text: [{ name: 'text', type: 'long-text' }] } };
    default:
      return f;
  }
}

function num(v: string): number | undefined {
  return v === '' ? undefined : Number(v);
}

function FieldOptions({ f, id, set, types, depth }: { f: FieldDef; id: string; set: (f: FieldDef) => void; types: string[]; depth: number }) {
  switch (f.type) {
    case 'short-text':
    case 'long-text':
      return (
        <div class="row">
          <Field label="Max length" id={`${id}-maxlen`}>
            <input id={`${id}-maxlen`} type="number" min={1} value={f['max-length'] ?? ''} onInput={(e) => set({ ...f, 'max-length': num(e.currentTarget.value) })} />
          </Field>
          <Field label="Min length" id={`${id}-minlen`}>
            <input id={`${id}-minlen`} type="number" min={0} value={f['min-length'] ?? ''} onInput={(e) => set({ ...f, 'min-length': num(e.currentTarget.value) })} />
          </Field>
        </div>
      );
    case 'integer':
    case 'decimal':
      return (
        <div class="row">
          <Field label="Min" id={`${id}-min`}>
            <input id={`${id}-min`} type="number" value={(f.min as number) ?? ''} onInput={(e) => set({ ...f, min: num(e.currentTarget.value) })} />
          </Field>
          <Field label="Max" id={`${id}-max`}>
            <input id={`${id}-max`} type="number" value={(f.max as number) ?? ''} onInput={(e) => set({ ...f, max: num(e.currentTarget.value) })} />
          </Field>
        </div>
      );
    case 'enumeration':
      return (
        <Field label="Values (comma-separated)" id={`${id}-values`}>
          <input
            id={`${id}-values`}
            value={(f.values ?? []).join(', ')}
            onChange={(e) => set({ ...f, values: e.currentTarget.value.split(',').map((s) => s.trim()).filter(Boolean) })}
          />
        </Field>
      );
    case 'rich-text':
      return (
        <Field label="Format" id={`${id}-format`}>
          <select id={`${id}-format`} value={f.format ?? 'markdown'} onChange={(e) => set({ ...f, format: e.currentTarget.value })}>
            <option>markdown</option>
            <option>blocks</option>
          </select>
        </Field>
      );
    case 'slug':
      return (
        <Field label="Derived from field" id={`${id}-from`}>
          <input id={`${id}-from`} value={f.from ?? ''} onInput={(e) => set({ ...f, from: e.currentTarget.value || undefined })} />
        </Field>
      );
    case 'relation':
      return (
        <div class="row">
          <Field label="Target type" id={`${id}-target`}>
            <input id={`${id}-target`} list={`${id}-targets`} required value={f.target ?? ''} onInput={(e) => set({ ...f, target: e.currentTarget.value })} />
          </Field>
          <datalist id={`${id}-targets`}>
            {types.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
          <Field label="Cardinality" id={`${id}-card`}>
            <select id={`${id}-card`} value={f.cardinality} onChange={(e) => set({ ...f, cardinality: e.currentTarget.value })}>
              <option>one-to-one</option>
              <option>one-to-many</option>
              <option>many-to-many</option>
            </select>
          </Field>
          <Field label="When the target is deleted" id={`${id}-ondel`}>
            <select id={`${id}-ondel`} value={f['on-delete']} onChange={(e) => set({ ...f, 'on-delete': e.currentTarget.value })}>
              <option>restrict</option>
              <option>cascade</option>
              <option>set-null</option>
            </select>
          </Field>
        </div>
      );
    case 'component':
      return (
        <div class="nested">
          <label class="check">
            <input type="checkbox" checked={!!f.repeatable} onChange={(e) => set({ ...f, repeatable: e.currentTarget.checked })} /> repeatable
          </label>
          <FieldsEditor fields={f.fields ?? []} onChange={(fields) => set({ ...f, fields })} prefix={`${id}-c`} types={types} depth={depth + 1} />
        </div>
      );
    case 'dynamic-zone': {
      const blocks = f.blocks ?? {};
      return (
        <div class="nested">
          {Object.entries(blocks).map(([name, fields]) => (
            <fieldset key={name} class="block-def">
              <legend>Block {name}</legend>
              <FieldsEditor fields={fields} onChange={(nf) => set({ ...f, blocks: { ...blocks, [name]: nf } })} prefix={`${id}-b-${name}`} types={types} depth={depth + 1} />
              <button
                type="button"
                class="danger small"
                onClick={() => {
                  const next = { ...blocks };
                  delete next[name];
                  set({ ...f, blocks: next });
                }}
              >
                Remove block {name}
              </button>
            </fieldset>
          ))}
          <AddBlock id={id} onAdd={(name) => set({ ...f, blocks: { ...blocks, [name]: [{ name: 'text', type: 'short-text' }] } })} />
        </div>
      );
    }
    default:
      return null;
  }
}

function AddBlock({ id, onAdd }: { id: string; onAdd: (name: string) => void }) {
  const [name, setName] = useState('');
  return (
    <div class="row">
      <Field label="New block name" id={`${id}-newblock`}>
        <input id={`${id}-newblock`} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </Field>
      <button
        type="button"
        disabled={!name}
        onClick={() => {
          onAdd(name);
          setName('');
        }}
      >
        + Add block
      </button>
    </div>
  );
}

export function TypeBuilder({ name }: { name?: string }) {
  const existing = useLoad(() => (name ? get<ContentType>(`/api/content/types/${name}`) : Promise.resolve(null)), [name]);
  const all = useLoad(() => get<{ data: ContentType[] }>('/api/content/types'));
  const [draft, setDraft] = useState<ContentType | null>(null);
  const action = useAction();
  const [report, setReport] = useState<unknown>(null);
  const loaded = existing.data as ContentType | null | undefined;
  const type: ContentType | null =
    draft ?? (name ? (loaded ? unwrap(loaded) : null) : { name: '', kind: 'collection', 'display-name': '', 'draft-and-publish': true, locales: ['en'], fields: [{ name: 'title', type: 'short-text', required: true }] });
  if (name && existing.loading) return <Loading what="the type" />;
  if (existing.error) return <NoContentPlugin error={existing.error} />;
  if (!type) return null;
  const update = (t: ContentType) => setDraft(t);

  async function save(e: Event) {
    e.preventDefault();
    if (!type) return;
    setReport(null);
    const body = clean(type);
    const saved = await action.run(() => (name ? put(`/api/content/types/${name}`, body) : post('/api/content/types', body)));
    if (saved !== undefined) navigate(`content/${type.name}`);
    else setReport((action.error as ApiError)?.body?.report ?? null);
  }

  return (
    <section>
      <p>
        <Link to="content">← Content</Link>
      </p>
      <h1>{name ? `Edit type ${name}` : 'New content type'}</h1>
      <form onSubmit={save} class="type-builder" aria-label="Content type">
        <div class="row">
          <Field label="Name (in URLs)" id="type-name" hint="a-z, 0-9 and dashes">
            <input id="type-name" required readOnly={!!name} pattern="[a-z][a-z0-9\-]*" value={type.name} onInput={(e) => update({ ...type, name: e.currentTarget.value })} />
          </Field>
          <Field label="Display name" id="type-display">
            <input id="type-display" value={type['display-name'] ?? ''} onInput={(e) => update({ ...type, 'display-name': e.currentTarget.value })} />
          </Field>
          <Field label="Kind" id="type-kind">
            <select id="type-kind" value={type.kind} onChange={(e) => update({ ...type, kind: e.currentTarget.value as ContentType['kind'] })}>
              <option value="collection">collection (many entries)</option>
              <option value="single">single (one entry)</option>
            </select>
          </Field>
          <Field label="Locales" id="type-locales" hint="comma-separated, first is the default">
            <input
              id="type-locales"
              value={(type.locales ?? ['en']).join(', ')}
              onChange={(e) => update({ ...type, locales: e.currentTarget.value.split(',').map((s) => s.trim()).filter(Boolean) })}
            />
          </Field>
          <label class="check">
            <input type="checkbox" checked={type['draft-and-publish'] !== false} onChange={(e) => update({ ...type, 'draft-and-publish': e.currentTarget.checked })} /> drafts and publishing
          </label>
        </div>
        <h2>Fields</h2>
        <FieldsEditor fields={type.fields} onChange={(fields) => update({ ...type, fields })} prefix="f" types={(all.data?.data ?? []).map((t) => t.name)} depth={0} />
        <ErrorBox error={action.error} />
        {report ? <pre class="report">{JSON.stringify(report, null, 2)}</pre> : null}
        <div class="actions">
          <button type="submit" class="primary" disabled={action.busy}>
            Save type
          </button>
          {name && (
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (confirm(`Delete the type ${name} and all its entries?`) && (await action.run(() => del(`/api/content/types/${name}`))) !== undefined) navigate('content');
              }}
            >
              Delete type
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

function unwrap(t: any): ContentType {
  return (t && t.data && t.data.fields ? t.data : t) as ContentType;
}

/** Drops empty options so the plugin's validation sees only what was set. */
function clean(t: ContentType): ContentType {
  const fix = (fields: FieldDef[]): FieldDef[] =>
    fields.map((f) => {
      const out: FieldDef = { name: f.name, type: f.type };
      for (const [k, v] of Object.entries(f)) {
        if (v === undefined || v === '' || v === false || k === 'name' || k === 'type') continue;
        if (k === 'fields') out.fields = fix(v as FieldDef[]);
        else if (k === 'blocks') out.blocks = Object.fromEntries(Object.entries(v as Record<string, FieldDef[]>).map(([b, fs]) => [b, fix(fs)]));
        else out[k] = v;
      }
      return out;
    });
  return { ...t, fields: fix(t.fields) };
}

// ---- entries ----

const OPS = ['$eq', '$ne', '$contains', '$containsi', '$startsWith', '$gt', '$gte', '$lt', '$lte', '$null', '$notNull'];

export function EntryList({ type }: { type: string }) {
  const { query } = useRoute();
  const t = useLoad(() => get<ContentType>(`/api/content/types/${type}`).then(unwrap), [type]);
  const page = Number(query.get('page') ?? '1');
  const params = {
    q: query.get('q') ?? '',
    sort: query.get('sort') ?? 'updated-at:desc',
    status: query.get('status') ?? 'draft',
    locale: query.get('locale') ?? '',
    field: query.get('field') ?? '',
    op: query.get('op') ?? '$eq',
    value: query.get('value') ?? '',
  };
  const key = query.toString();
  const list = useLoad(() => {
    const search: Record<string, string | number> = { page, 'page-size': 20 };
    if (params.q) search.q = params.q;
    else search.sort = params.sort;
    if (params.status === 'draft') search.status = 'draft';
    if (params.locale) search.locale = params.locale;
    if (params.field) search[`filters[${params.field}][${params.op}]`] = params.op === '$null' || params.op === '$notNull' ? 'true' : params.value;
    return get<{ data: any[]; meta: { total?: number; page?: number; 'page-size'?: number } }>(`/api/content/${type}${qs(search)}`);
  }, [type, key]);
  const [form, setForm] = useState(params);
  const go = (p: Record<string, string | number>) => navigate(`content/${type}${qs({ ...form, page: 1, ...p } as any)}`);
  const ct = t.data;
  const columns = (ct?.fields ?? []).filter((f) => ['short-text', 'slug', 'integer', 'decimal', 'enumeration', 'boolean', 'date', 'datetime', 'email'].includes(f.type)).slice(0, 3);
  const total = list.data?.meta?.total;
  const pages = total !== undefined ? Math.max(1, Math.ceil(total / 20)) : undefined;
  return (
    <section>
      <p>
        <Link to="content">← Content</Link>
      </p>
      <h1>{ct?.['display-name'] || type}</h1>
      {t.error ? <NoContentPlugin error={t.error} /> : null}
      <p>
        <Link to={`content/${type}/new`} class="button primary">
          New entry
        </Link>{' '}
        <Link to={`content/types/${type}`}>Edit the type</Link>
      </p>
      <form
        class="filters"
        role="search"
        aria-label="Filter entries"
        onSubmit={(e) => {
          e.preventDefault();
          go({});
        }}
      >
        <Field label="Search" id="e-q">
          <input id="e-q" type="search" value={form.q} onInput={(e) => setForm({ ...form, q: e.currentTarget.value })} />
        </Field>
        <Field label="Filter field" id="e-field">
          <select id="e-field" value={form.field} onChange={(e) => setForm({ ...form, field: e.currentTarget.value })}>
            <option value="">—</option>
            {(ct?.fields ?? []).map((f) => (
              <option key={f.name}>{f.name}</option>
            ))}
          </select>
        </Field>
        <Field label="Operator" id="e-op">
          <select id="e-op" value={form.op} onChange={(e) => setForm({ ...form, op: e.currentTarget.value })}>
            {OPS.map((o) => (
              <option key={o}>{o}</option>
            ))}
          </select>
        </Field>
        <Field label="Value" id="e-value">
          <input id="e-value" value={form.value} onInput={(e) => setForm({ ...form, value: e.currentTarget.value })} />
        </Field>
        <Field label="Sort" id="e-sort">
          <select id="e-sort" value={form.sort} onChange={(e) => setForm({ ...form, sort: e.currentTarget.value })}>
            <option value="updated-at:desc">recently updated</option>
            <option value="created-at:desc">recently created</option>
            <option value="created-at:asc">oldest first</option>
            {columns.map((c) => (
              <>
                <option value={`${c.name}:asc`}>{c.name} ↑</option>
                <option value={`${c.name}:desc`}>{c.name} ↓</option>
              </>
            ))}
          </select>
        </Field>
        <Field label="Show" id="e-status">
          <select id="e-status" value={form.status} onChange={(e) => setForm({ ...form, status: e.currentTarget.value })}>
            <option value="draft">latest drafts</option>
            <option value="published">published versions</option>
          </select>
        </Field>
        {(ct?.locales?.length ?? 0) > 1 && (
          <Field label="Locale" id="e-locale">
            <select id="e-locale" value={form.locale} onChange={(e) => setForm({ ...form, locale: e.currentTarget.value })}>
              <option value="">default</option>
              {ct!.locales!.map((l) => (
                <option key={l}>{l}</option>
              ))}
            </select>
          </Field>
        )}
        <button type="submit">Apply</button>
      </form>
      {list.loading && <Loading what="entries" />}
      <ErrorBox error={list.error} />
      {list.data && (
        <>
          <p class="muted">{total !== undefined ? `${total} entries` : ''}</p>
          <div class="table-wrap">
            <table class="entries">
              <thead>
                <tr>
                  <th scope="col">Entry</th>
                  {columns.slice(1).map((c) => (
                    <th scope="col" key={c.name}>
                      {c.name}
                    </th>
                  ))}
                  <th scope="col">Status</th>
                  <th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {list.data.data.map((e) => (
                  <tr key={e.id + e.locale}>
                    <th scope="row">
                      <Link to={`content/${type}/${e.id}${e.locale ? `?locale=${e.locale}` : ''}`}>{String(e.fields?.[columns[0]?.name] ?? e.id)}</Link>
                    </th>
                    {columns.slice(1).map((c) => (
                      <td key={c.name}>{String(e.fields?.[c.name] ?? '')}</td>
                    ))}
                    <td>
                      <StateBadge state={e.status} />
                    </td>
                    <td>{when(e['updated-at'])}</td>
                  </tr>
                ))}
                {list.data.data.length === 0 && (
                  <tr>
                    <td colSpan={columns.length + 2}>No entries match.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
          <Pager page={page} pages={pages} hasNext={pages !== undefined ? page < pages : list.data.data.length === 20} onPage={(n) => go({ page: n })} />
        </>
      )}
    </section>
  );
}

function FieldInput({ f, value, onChange, id, error }: { f: FieldDef; value: any; onChange: (v: any) => void; id: string; error?: string }) {
  const label = `${f.name}${f.required ? ' *' : ''}`;
  const input = (type: "text" | "date" | "email" | "url", conv: (s: string) => any = (s) => s) => (
    <Field label={label} id={id} error={error}>
      <input id={id} type={type as "text"} required={f.required} value={value ?? ''} aria-invalid={error ? 'true' : undefined} onInput={(e) => onChange(conv(e.currentTarget.value))} />
    </Field>
  );
  switch (f.type) {
    case 'long-text':
    case 'rich-text':
      if (f.type === 'rich-text' && f.format === 'blocks') break;
      return (
        <Field label={label} id={id} error={error} hint={f.type === 'rich-text' ? 'Markdown' : undefined}>
          <textarea id={id} rows={6} required={f.required} value={value ?? ''} onInput={(e) => onChange(e.currentTarget.value)} />
        </Field>
      );
    case 'integer':
    case 'decimal':
      return (
        <Field label={label} id={id} error={error}>
          <input
            id={id}
            type="number"
            step={f.type === 'integer' ? 1 : 'any'}
            min={typeof f.min === 'number' ? f.min : undefined}
            max={typeof f.max === 'number' ? f.max : undefined}
            required={f.required}
            value={value ?? ''}
            aria-invalid={error ? 'true' : undefined}
            onInput={(e) => onChange(e.currentTarget.value === '' ? null : Number(e.currentTarget.value))}
          />
        </Field>
      );
    case 'boolean':
      return (
        <label class="check">
          <input id={id} type="checkbox" checked={!!value} onChange={(e) => onChange(e.currentTarget.checked)} /> {f.name}
        </label>
      );
    case 'date':
      return input('date');
    case 'datetime':
      return (
        <Field label={label} id={id} error={error} hint="UTC">
          <input id={id} type="datetime-local" value={value ? String(value).slice(0, 16) : ''} onInput={(e) => onChange(e.currentTarget.value ? `${e.currentTarget.value}:00Z` : null)} />
        </Field>
      );
    case 'email':
      return input('email');
    case 'url':
      return input('url');
    case 'enumeration':
      return (
        <Field label={label} id={id} error={error}>
          <select id={id} value={value ?? ''} onChange={(e) => onChange(e.currentTarget.value || null)}>
            <option value="">—</option>
            {(f.values ?? []).map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
        </Field>
      );
    case 'relation':
      return f.cardinality === 'one-to-one' ? (
        <Field label={`${label} (id of a ${f.target})`} id={id} error={error}>
          <input id={id} value={value ?? ''} onInput={(e) => onChange(e.currentTarget.value || null)} />
        </Field>
      ) : (
        <Field label={`${label} (ids of ${f.target}, comma-separated)`} id={id} error={error}>
          <input id={id} value={(value ?? []).join(', ')} onChange={(e) => onChange(e.currentTarget.value.split(',').map((s) => s.trim()).filter(Boolean))} />
        </Field>
      );
    case 'component':
      if (f.repeatable) {
        const items: any[] = value ?? [];
        return (
          <fieldset class="component">
            <legend>{label}</legend>
            {items.map((item, i) => (
              <fieldset key={i}>
                <legend>
                  {f.name} {i + 1}
                </legend>
                <Fields defs={f.fields ?? []} values={item} onChange={(v) => onChange(items.map((x, j) => (j === i ? v : x)))} prefix={`${id}-${i}`} />
                <button type="button" class="danger small" onClick={() => onChange(items.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </fieldset>
            ))}
            <button type="button" onClick={() => onChange([...items, {}])}>
              + Add {f.name}
            </button>
          </fieldset>
        );
      }
      return (
        <fieldset class="component">
          <legend>{label}</legend>
          <Fields defs={f.fields ?? []} values={value ?? {}} onChange={onChange} prefix={id} />
        </fieldset>
      );
    case 'dynamic-zone': {
      const items: any[] = value ?? [];
      return (
        <fieldset class="zone">
          <legend>{label}</legend>
          {items.map((item, i) => (
            <fieldset key={i}>
              <legend>
                {item.__block} block
              </legend>
              <Fields
                defs={f.blocks?.[item.__block] ?? []}
                values={item}
                onChange={(v) => onChange(items.map((x, j) => (j === i ? { ...v, __block: item.__block } : x)))}
                prefix={`${id}-${i}`}
              />
              <button type="button" class="danger small" onClick={() => onChange(items.filter((_, j) => j !== i))}>
                Remove block
              </button>
            </fieldset>
          ))}
          <div class="row">
            {Object.keys(f.blocks ?? {}).map((b) => (
              <button key={b} type="button" onClick={() => onChange([...items, { __block: b }])}>
                + {b}
              </button>
            ))}
          </div>
        </fieldset>
      );
    }
    case 'short-text':
    case 'slug':
      return input('text');
    default:
      break;
  }
  // json, media, blocks rich text: edited as JSON.
  return <JsonInput label={label} id={id} value={value} onChange={onChange} error={error} />;
}

function JsonInput({ label, id, value, onChange, error }: { label: string; id: string; value: any; onChange: (v: any) => void; error?: string }) {
  const [text, setText] = useState(value === undefined ? '' : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState('');
  return (
    <Field label={`${label} (JSON)`} id={id} error={bad || error}>
      <textarea
        id={id}
        rows={4}
        value={text}
        onInput={(e) => {
          const t = e.currentTarget.value;
          setText(t);
          try {
            onChange(t.trim() ? JSON.parse(t) : null);
            setBad('');
          } catch {
            setBad('not valid JSON yet');
          }
        }}
      />
    </Field>
  );
}

function Fields({ defs, values, onChange, prefix, errors }: { defs: FieldDef[]; values: Record<string, any>; onChange: (v: Record<string, any>) => void; prefix: string; errors?: Record<string, string> }) {
  return (
    <>
      {defs.map((f) => (
        <FieldInput key={f.name} f={f} id={`${prefix}-${f.name}`} value={values?.[f.name]} error={errors?.[f.name]} onChange={(v) => onChange({ ...values, [f.name]: v })} />
      ))}
    </>
  );
}

export function EntryEditor({ type, id }: { type: string; id?: string }) {
  const { query } = useRoute();
  const locale = query.get('locale') ?? '';
  const t = useLoad(() => get<ContentType>(`/api/content/types/${type}`).then(unwrap), [type]);
  const entry = useLoad(
    () => (id ? get<any>(`/api/content/${type}/${id}${qs({ status: 'draft', locale })}`).then((e) => e.data ?? e) : Promise.resolve(null)),
    [type, id, locale],
  );
  const [values, setValues] = useState<Record<string, any> | null>(null);
  const action = useAction();
  const [done, setDone] = useState('');
  const [publishAt, setPublishAt] = useState('');
  const [showRevisions, setShowRevisions] = useState(false);
  const ct = t.data;
  const e = entry.data;
  const fields = values ?? e?.fields ?? {};
  const errors = (action.error as ApiError)?.fields;

  async function save(ev: Event) {
    ev.preventDefault();
    setDone('');
    if (id) {
      const r = await action.run(() => put(`/api/content/${type}/${id}${qs({ locale })}`, { fields }));
      if (r !== undefined) {
        setDone('Draft saved.');
        setValues(null);
        entry.reload();
      }
    } else {
      const r = await action.run(() => post<any>(`/api/content/${type}${qs({ locale })}`, { fields }));
      const created = r?.data ?? r;
      if (created?.id) navigate(`content/${type}/${created.id}${locale ? `?locale=${locale}` : ''}`);
    }
  }

  async function act(what: string, path: string, body?: unknown) {
    setDone('');
    const r = await action.run(() => post(`/api/content/${type}/${id}/${path}${qs({ locale })}`, body));
    if (r !== undefined) {
      setDone(what);
      entry.reload();
    }
  }

  if (t.loading || entry.loading) return <Loading what="the entry" />;
  if (t.error || entry.error) return <NoContentPlugin error={t.error ?? entry.error} />;
  if (!ct) return null;
  return (
    <section>
      <p>
        <Link to={`content/${type}`}>← {ct['display-name'] || type}</Link>
      </p>
      <h1>
        {id ? `Edit ${type}` : `New ${type}`} {e && <StateBadge state={e.status} />}
      </h1>
      {(ct.locales?.length ?? 0) > 1 && id && (
        <nav aria-label="Locales" class="row">
          {ct.locales!.map((l) => (
            <Link key={l} to={`content/${type}/${id}?locale=${l}`} aria-current={(locale || ct['default-locale'] || ct.locales![0]) === l ? 'page' : undefined}>
              {l}
            </Link>
          ))}
        </nav>
      )}
      {done && <Notice>{done}</Notice>}
      <form onSubmit={save} class="entry-editor" aria-label="Entry">
        <Fields defs={ct.fields} values={fields} onChange={setValues} prefix="entry" errors={errors} />
        <ErrorBox error={action.error} />
        <div class="actions">
          <button type="submit" class="primary" disabled={action.busy}>
            {id ? 'Save draft' : 'Create'}
          </button>
          {id && ct['draft-and-publish'] !== false && (
            <>
              <button type="button" disabled={action.busy} onClick={() => act('Published.', 'publish')}>
                Publish
              </button>
              {e?.status !== 'draft' && (
                <button type="button" disabled={action.busy} onClick={() => act('Unpublished.', 'unpublish')}>
                  Unpublish
                </button>
              )}
            </>
          )}
          {id && (
            <button
              type="button"
              class="danger"
              disabled={action.busy}
              onClick={async () => {
                if (confirm('Delete this entry?') && (await action.run(() => del(`/api/content/${type}/${id}`))) !== undefined) navigate(`content/${type}`);
              }}
            >
              Delete
            </button>
          )}
        </div>
      </form>
      {id && (
        <>
          <form
            class="panel inline"
            onSubmit={(ev) => {
              ev.preventDefault();
              act(publishAt ? `Scheduled for ${publishAt} UTC.` : 'Schedule cleared.', 'schedule', { 'publish-at': publishAt ? `${publishAt}:00Z` : null });
            }}
          >
            <label for="publish-at">Publish at (UTC)</label>
            <input id="publish-at" type="datetime-local" value={publishAt} onInput={(ev) => setPublishAt(ev.currentTarget.value)} />
            <button type="submit">Schedule</button>
            {e?.scheduled?.['publish-at'] && <span class="muted">scheduled: {when(e.scheduled['publish-at'])}</span>}
          </form>
          <p>
            <button type="button" aria-expanded={showRevisions} onClick={() => setShowRevisions(!showRevisions)}>
              {showRevisions ? 'Hide revisions' : 'Revisions'}
            </button>
          </p>
          {showRevisions && (
            <Revisions
              type={type}
              id={id}
              locale={locale}
              onRestored={() => {
                setValues(null);
                setDone('Revision restored as the draft.');
                entry.reload();
              }}
            />
          )}
        </>
      )}
    </section>
  );
}

function Revisions({ type, id, locale, onRestored }: { type: string; id: string; locale: string; onRestored: () => void }) {
  const list = useLoad(() => get<{ data: any[] }>(`/api/content/${type}/${id}/revisions${qs({ locale })}`), [type, id, locale]);
  const [open, setOpen] = useState<any>(null);
  const action = useAction();
  return (
    <section aria-labelledby="rev-h">
      <h2 id="rev-h">Revisions</h2>
      <ErrorBox error={list.error ?? action.error} />
      {list.data && (
        <table>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Action</th>
              <th scope="col">By</th>
              <th scope="col">At</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.data.data.map((r) => (
              <tr key={r.n}>
                <td>{r.n}</td>
                <td>{r.action}</td>
                <td>{r.author}</td>
                <td>{when(r.at)}</td>
                <td>
                  <button type="button" onClick={async () => setOpen(await action.run(() => get(`/api/content/${type}/${id}/revisions/${r.n}${qs({ locale })}`)))}>
                    Diff
                  </button>{' '}
                  <button
                    type="button"
                    onClick={async () => {
                      if ((await action.run(() => request(`/api/content/${type}/${id}/revisions/${r.n}/restore${qs({ locale })}`, { method: 'POST', body: {} }))) !== undefined) {
                        onRestored();
                        list.reload();
                      }
                    }}
                  >
                    Restore
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && (
        <div class="diff" aria-live="polite">
          <h3>Revision {open.n ?? open.data?.n}: changes</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">Field</th>
                <th scope="col">Before</th>
                <th scope="col">After</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries((open.diff ?? open.data?.diff ?? {}) as Record<string, any>).map(([k, d]) => (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td class="before">{d.before === undefined ? '—' : JSON.stringify(d.before)}</td>
                  <td class="after">{JSON.stringify(d.after)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
