import { useState } from 'preact/hooks';
import { get, qs } from '../api';
import { ErrorBox, Loading, Pager, useLoad, when } from '../ui';

const PAGE = 50;

export function Audit() {
  const [before, setBefore] = useState<(number | undefined)[]>([undefined]);
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const [filters, setFilters] = useState({ action: '', actor: '' });
  const page = before.length;
  const list = useLoad(
    () =>
      get<{ entries: any[]; next_before?: number }>(
        `/api/ucms/audit${qs({ limit: PAGE, before: before[page - 1], action: filters.action, actor: filters.actor })}`,
      ),
    [page, filters.action, filters.actor],
  );
  return (
    <section>
      <h1>Audit log</h1>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setBefore([undefined]);
          setFilters({ action, actor });
        }}
      >
        <label for="audit-action">Action</label>
        <input id="audit-action" value={action} placeholder="plugin.install" onInput={(e) => setAction(e.currentTarget.value)} />
        <label for="audit-actor">Actor</label>
        <input id="audit-actor" value={actor} placeholder="user:…" onInput={(e) => setActor(e.currentTarget.value)} />
        <button type="submit">Filter</button>
      </form>
      {list.loading && <Loading what="the audit log" />}
      <ErrorBox error={list.error} />
      {list.data && (
        <>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {list.data.entries.map((e) => (
                  <tr key={e.seq}>
                    <td>{when(e.at)}</td>
                    <td>{e.actor ?? '—'}</td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td>{e.target ?? '—'}</td>
                    <td>
                      <code class="small">{e.detail ? JSON.stringify(e.detail) : ''}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            page={page}
            hasNext={list.data.entries.length === PAGE && list.data.next_before !== undefined}
            onPage={(n) => setBefore(n > page ? [...before, list.data!.next_before] : before.slice(0, n))}
          />
        </>
      )}
    </section>
  );
}
