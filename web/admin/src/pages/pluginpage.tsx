// A page a plugin adds to the admin (`[[admin-pages]]` in its manifest), shown in a sandboxed
// frame: `sandbox="allow-scripts"` without `allow-same-origin` gives it an opaque origin, so it
// can't read the admin's cookie, storage or DOM. It gets a short-lived token scoped to its own
// plugin's permissions (never the admin's session), and calls its plugin's API through this
// bridge: it posts `{type: "ucms:fetch", id, method, path, body}` and gets
// `{type: "ucms:response", id, status, body}` back. Only paths under /api/{plugin}/ are relayed,
// with that token and without cookies.
import { useEffect, useRef, useState } from 'preact/hooks';
import { type AdminPage, post } from '../api';
import { ErrorBox } from '../ui';

interface PageToken {
  token: string;
  expires_in_seconds: number;
}

export function PluginPage({ page }: { page: AdminPage }) {
  const frame = useRef<HTMLIFrameElement>(null);
  const token = useRef<string>('');
  const [error, setError] = useState<unknown>(undefined);
  const [ready, setReady] = useState(false);

  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    async function mint() {
      try {
        const t = await post<PageToken>(`/api/ucms/plugins/${page.plugin}/page-token`);
        if (!live) return;
        token.current = t.token;
        setReady(true);
        sendInit();
        // Renew a minute before it runs out.
        timer = window.setTimeout(mint, Math.max(30, t.expires_in_seconds - 60) * 1000);
      } catch (e) {
        if (live) setError(e);
      }
    }
    mint();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [page.plugin]);

  function sendInit() {
    frame.current?.contentWindow?.postMessage(
      { type: 'ucms:init', plugin: page.plugin, token: token.current, api: `/api/${page.plugin}/` },
      '*',
    );
  }

  useEffect(() => {
    const prefix = `/api/${page.plugin}/`;
    async function onMessage(event: MessageEvent) {
      if (!frame.current || event.source !== frame.current.contentWindow) return;
      const msg = event.data;
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'ucms:ready') {
        sendInit();
        return;
      }
      if (msg.type !== 'ucms:fetch') return;
      const reply = (status: number, body: unknown) =>
        frame.current?.contentWindow?.postMessage({ type: 'ucms:response', id: msg.id, status, body }, '*');
      const path = String(msg.path ?? '');
      const url = new URL(path, window.location.origin);
      if (url.origin !== window.location.origin || !(url.pathname + '/').startsWith(prefix) || url.pathname.includes('..')) {
        reply(403, { error: { code: 'outside_plugin', message: `a page of ${page.plugin} may only call ${prefix}…` } });
        return;
      }
      try {
        const response = await fetch(url.pathname + url.search, {
          method: String(msg.method ?? 'GET'),
          headers: {
            Authorization: `Bearer ${token.current}`,
            ...(msg.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
          },
          body: msg.body === undefined ? undefined : JSON.stringify(msg.body),
          credentials: 'omit',
        });
        const text = await response.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: pass the text */
        }
        reply(response.status, body);
      } catch (e) {
        reply(502, { error: { code: 'bridge_failed', message: String(e) } });
      }
    }
    window.addEventListener('message', onMessage);
    return () => window.removeEventListener('message', onMessage);
  }, [page.plugin]);

  return (
    <section class="plugin-page">
      <h1>{page.title}</h1>
      <p class="muted small">
        A page from the <code>{page.plugin}</code> plugin, isolated in a sandboxed frame with a token limited to{' '}
        <code>{page.plugin}.*</code>.
      </p>
      <ErrorBox error={error} />
      {ready && (
        <iframe
          ref={frame}
          title={page.title}
          src={page.url}
          sandbox="allow-scripts"
          referrerpolicy="no-referrer"
          onLoad={sendInit}
        />
      )}
    </section>
  );
}
