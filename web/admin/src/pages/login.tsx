import { useState } from 'preact/hooks';
import { request } from '../api';
import { ErrorBox, Field, useAction } from '../ui';

interface LoginAnswer {
  csrf_token?: string;
  mfa_required?: boolean;
  mfa_token?: string;
}

export function Login({ onSignedIn }: { onSignedIn: (csrf: string) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [mfaToken, setMfaToken] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState(false);
  const { busy, error, run } = useAction();

  async function submit(e: Event) {
    e.preventDefault();
    const answer = await run(() =>
      request<LoginAnswer>('/api/ucms/auth/login', {
        method: 'POST',
        body: { email, password },
        quiet401: true,
      }),
    );
    if (!answer) return;
    if (answer.mfa_required && answer.mfa_token) setMfaToken(answer.mfa_token);
    else if (answer.csrf_token) onSignedIn(answer.csrf_token);
  }

  async function verify(e: Event) {
    e.preventDefault();
    const body = recovery ? { mfa_token: mfaToken, recovery_code: code } : { mfa_token: mfaToken, code };
    const answer = await run(() =>
      request<LoginAnswer>('/api/ucms/auth/mfa/verify', { method: 'POST', body, quiet401: true }),
    );
    if (answer?.csrf_token) onSignedIn(answer.csrf_token);
  }

  return (
    <main class="login" id="main">
      <h1>Sign in to UCMS</h1>
      {mfaToken === null ? (
        <form onSubmit={submit} aria-label="Sign in">
          <Field label="Email" id="email">
            <input
              id="email"
              type="email"
              autocomplete="username"
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </Field>
          <Field label="Password" id="password">
            <input
              id="password"
              type="password"
              autocomplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </Field>
          <ErrorBox error={error} />
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
      ) : (
        <form onSubmit={verify} aria-label="Second factor">
          <p>This account has two-factor authentication.</p>
          <Field
            label={recovery ? 'Recovery code' : 'Code from your authenticator app'}
            id="mfa-code"
          >
            <input
              id="mfa-code"
              autocomplete="one-time-code"
              inputMode={recovery ? 'text' : 'numeric'}
              required
              value={code}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
          </Field>
          <ErrorBox error={error} />
          <button type="submit" class="primary" disabled={busy}>
            Verify
          </button>{' '}
          <button type="button" class="link" onClick={() => setRecovery(!recovery)}>
            {recovery ? 'Use an authenticator code' : 'Use a recovery code'}
          </button>
        </form>
      )}
    </main>
  );
}
