import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { type AdminPage, type Me, get, onUnauthenticated, permits, post, setCsrf } from './api';
import { match, navigate, useRoute } from './router';
import { Link, Loading } from './ui';
import { Login } from './pages/login';
import { Dashboard } from './pages/dashboard';
import { PluginDetail, Plugins } from './pages/plugins';
import { Marketplace, MarketplacePackage } from './pages/marketplace';
import { Users } from './pages/users';
import { Roles } from './pages/roles';
import { Audit } from './pages/audit';
import { Profile } from './pages/profile';
import { ContentHome, EntryEditor, EntryList, TypeBuilder } from './pages/content';
import { PluginPage } from './pages/pluginpage';
import './style.css';

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [pages, setPages] = useState<AdminPage[]>([]);
  const { path } = useRoute();

  async function refresh() {
    try {
      const who = await get<Me>('/api/ucms/auth/me');
      if (who.csrf_token) setCsrf(who.csrf_token);
      setMe(who);
    } catch {
      setMe(null);
    }
  }

  useEffect(() => {
    onUnauthenticated(() => setMe(null));
    refresh();
  }, []);

  useEffect(() => {
    if (me) get<{ pages: AdminPage[] }>('/api/ucms/admin/pages').then((r) => setPages(r.pages), () => setPages([]));
  }, [me, path.startsWith('plugins')]);

  if (me === undefined) return <Loading what="the admin" />;
  if (me === null) {
    return (
      <Login
        onSignedIn={(csrf) => {
          setCsrf(csrf);
          refresh();
        }}
      />
    );
  }

  async function signOut() {
    try {
      await post('/api/ucms/auth/logout');
    } finally {
      setCsrf('');
      setMe(null);
      navigate('', true);
    }
  }

  const can = (p: string) => permits(me.permissions, p);
  const nav: [string, string, boolean][] = [
    ['', 'Dashboard', true],
    ['content', 'Content', true],
    ['plugins', 'Plugins', can('ucms.plugins.read')],
    ['marketplace', 'Marketplace', can('ucms.plugins.read')],
    ['users', 'Users', can('ucms.users.read')],
    ['roles', 'Roles', can('ucms.users.read')],
    ['audit', 'Audit log', can('ucms.audit.read')],
  ];
  const section = path.split('/')[0];

  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">UCMS</span>
        <span class="who">
          <Link to="profile">{me.user.email}</Link>
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <nav class="side" aria-label="Main">
        <ul>
          {nav
            .filter(([, , shown]) => shown)
            .map(([to, label]) => (
              <li key={to}>
                <Link to={to} aria-current={section === to.split('/')[0] ? 'page' : undefined}>
                  {label}
                </Link>
              </li>
            ))}
        </ul>
        {pages.length > 0 && (
          <>
            <h2 class="nav-heading">Plugin pages</h2>
            <ul>
              {pages.map((p) => {
                const to = `pages/${p.plugin}${p.path}`;
                return (
                  <li key={to}>
                    <Link to={to} aria-current={path === to ? 'page' : undefined}>
                      {p.title}
                    </Link>
                  </li>
                );
              })}
            </ul>
          </>
        )}
      </nav>
      <main id="main" tabIndex={-1}>
        <Routes path={path} me={me} pages={pages} />
      </main>
    </div>
  );
}

function Routes({ path, me, pages }: { path: string; me: Me; pages: AdminPage[] }) {
  let m: Record<string, string> | null;
  if (path === '') return <Dashboard />;
  if (path === 'plugins') return <Plugins />;
  if ((m = match('plugins/:id', path))) return <PluginDetail id={m.id} />;
  if (path === 'marketplace') return <Marketplace />;
  if ((m = match('marketplace/:id', path))) return <MarketplacePackage id={m.id} />;
  if (path === 'users') return <Users />;
  if (path === 'roles') return <Roles />;
  if (path === 'audit') return <Audit />;
  if (path === 'profile') return <Profile me={me} />;
  if (path === 'content') return <ContentHome />;
  if (path === 'content/types/new') return <TypeBuilder />;
  if ((m = match('content/types/:name', path))) return <TypeBuilder name={m.name} />;
  if ((m = match('content/:type', path))) return <EntryList type={m.type} />;
  if ((m = match('content/:type/new', path))) return <EntryEditor type={m.type} />;
  if ((m = match('content/:type/:id', path))) return <EntryEditor type={m.type} id={m.id} />;
  if (path.startsWith('pages/')) {
    const page = pages.find((p) => `pages/${p.plugin}${p.path}` === path);
    if (page) return <PluginPage page={page} />;
  }
  return (
    <section>
      <h1>Not found</h1>
      <p>
        The admin has no page at <code>/admin/{path}</code>. <Link to="">Back to the dashboard</Link>.
      </p>
    </section>
  );
}

render(<App />, document.getElementById('app')!);
