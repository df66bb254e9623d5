// The consent screen: what a plan would install or upgrade, with every capability each plugin
// asks for (for an upgrade, the difference), before the site owner approves it.
import { type Plan, post } from '../api';
import { CapabilityList, ErrorBox, useAction } from '../ui';

export function Consent(props: { plan: Plan; onDone: (applied: unknown) => void; onCancel: () => void }) {
  const { busy, error, run } = useAction();
  const { plan } = props;
  async function approve() {
    const applied = await run(() => post('/api/ucms/plugins/apply', { plan_id: plan.plan_id, approve: true }));
    if (applied) props.onDone(applied);
  }
  return (
    <section class="consent" aria-labelledby="consent-h">
      <h2 id="consent-h">Review and approve</h2>
      <p>
        From <code>{plan.registry}</code>. Nothing changes until you approve; the plan expires in{' '}
        {Math.round(plan.expires_in_seconds / 60)} minutes.
      </p>
      <ol class="plan">
        {plan.changes.map((c) => (
          <li key={c.id} class="change">
            <h3>
              {c.action === 'install' ? 'Install' : c.action === 'upgrade' ? 'Upgrade' : 'Downgrade'}{' '}
              <strong>{c.id}</strong> {c.from ? `${c.from} → ${c.to}` : c.to}
            </h3>
            <p>
              {c.description} <span class="muted">by {c.publisher}</span>
            </p>
            {c.action === 'install' ? (
              <>
                <h4>It asks for</h4>
                <CapabilityList items={c.capabilities} />
              </>
            ) : (
              <>
                <h4>New capabilities it asks for</h4>
                <CapabilityList items={c.added_capabilities} kind="added" />
                <h4>Capabilities it no longer needs</h4>
                <CapabilityList items={c.removed_capabilities} kind="removed" />
                <details>
                  <summary>Everything the new version asks for</summary>
                  <CapabilityList items={c.capabilities} />
                </details>
              </>
            )}
          </li>
        ))}
      </ol>
      {plan.changes.length === 0 && <p>Nothing to change: everything is already at the newest compatible version.</p>}
      <ErrorBox error={error} />
      <div class="actions">
        <button type="button" class="primary" disabled={busy || plan.changes.length === 0} onClick={approve}>
          {busy ? 'Applying…' : 'Approve and apply'}
        </button>
        <button type="button" onClick={props.onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </section>
  );
}
