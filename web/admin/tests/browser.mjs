// The admin UI's browser run: Chromium (Debian's, /usr/bin/chromium) driven by playwright-core
// against a site the Rust test (host/tests/it/admin_browser.rs) started. Each step prints a
// line; any failure exits non-zero with the step, the error and a screenshot of the moment.
//
// Environment: UCMS_URL, UCMS_EMAIL, UCMS_PASSWORD, UCMS_SCREENSHOTS (a folder), CHROMIUM.
import { chromium } from 'playwright-core';

const base = process.env.UCMS_URL;
const shots = process.env.UCMS_SCREENSHOTS;
const email = process.env.UCMS_EMAIL;
const password = process.env.UCMS_PASSWORD;
if (!base || !shots || !email || !password) {
  console.error('set UCMS_URL, UCMS_EMAIL, UCMS_PASSWORD and UCMS_SCREENSHOTS');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
const consoleErrors = [];
page.on('console', (m) => {
  if (m.type() === 'error') consoleErrors.push(m.text());
});
page.on('pageerror', (e) => consoleErrors.push(String(e)));
// The admin confirms destructive actions with window.confirm.
page.on('dialog', (d) => d.accept());

let step = '';
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
async function run(name, body) {
  step = name;
  const started = Date.now();
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}
function expect(condition, message) {
  if (!condition) throw new Error(message);
}
const nav = (name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
const heading = (text) => page.getByRole('heading', { level: 1, name: text });

try {
  await run('sign in', async () => {
    await page.goto(`${base}/admin/`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Password').fill(password);
    await shot('sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading('Dashboard').waitFor();
    await page.getByText('Site health').waitFor();
    await page.locator('dd', { hasText: 'sqlite' }).waitFor();
    // The session cookie is HttpOnly: not even the admin's own scripts can read it.
    const cookie = await page.evaluate(() => document.cookie);
    expect(!cookie.includes('ucms_session'), `the admin's script could read the cookie: ${cookie}`);
    await shot('dashboard');
  });

  await run('install a plugin from the marketplace with the consent screen', async () => {
    await nav('Marketplace').click();
    await heading('Marketplace').waitFor();
    await page.getByLabel('Search plugins').fill('greets');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'hello' }).click();
    await heading('hello').waitFor();
    await page.getByLabel('Version').selectOption('0.1.0');
    await page.getByRole('button', { name: 'Install…' }).click();
    const consent = page.locator('.consent');
    await consent.getByText('Install hello').waitFor();
    await consent.getByText('It asks for').waitFor();
    await consent.locator('code', { hasText: /^kv: / }).waitFor();
    await shot('marketplace-plugin');
    await shot('consent-install');
    await consent.getByRole('button', { name: 'Approve and apply' }).click();
    await page.getByText('hello is installed.').waitFor();
    const greet = await page.evaluate(async () => (await fetch('/api/hello/greet?name=Ada')).json());
    expect(greet.greeting === 'Hello, Ada!', `the installed plugin answers ${JSON.stringify(greet)}`);
  });

  await run('upgrade with the capability diff, then roll back', async () => {
    await nav('Plugins').click();
    await heading('Plugins').waitFor();
    await shot('plugins');
    await page.locator('tr[data-plugin="hello"]').getByRole('link', { name: 'hello' }).click();
    await heading(/hello\s+0\.1\.0/).waitFor();
    await page.getByRole('button', { name: 'Check for upgrade' }).click();
    const consent = page.locator('.consent');
    await consent.getByText('Upgrade hello 0.1.0 → 0.2.0').waitFor();
    await consent.locator('.capabilities.added code', { hasText: /^cache: / }).waitFor();
    await shot('consent-upgrade');
    await consent.getByRole('button', { name: 'Approve and apply' }).click();
    await page.getByText('hello is upgraded.').waitFor();
    await heading(/hello\s+0\.2\.0/).waitFor();
    await page.getByRole('button', { name: 'Roll back to 0.1.0' }).click();
    await page.getByText('hello is back at 0.1.0.').waitFor();
    await heading(/hello\s+0\.1\.0/).waitFor();
    await shot('plugin-detail');
  });

  await run("a plugin's admin page renders in its sandboxed frame, without the admin's cookie", async () => {
    await page.reload();
    await nav('Hello page').click();
    await heading('Hello page').waitFor();
    const frameElement = page.locator('iframe[title="Hello page"]');
    expect((await frameElement.getAttribute('sandbox')) === 'allow-scripts', 'the frame is sandboxed with allow-scripts only');
    const frame = page.frameLocator('iframe[title="Hello page"]');
    await frame.getByText('Hello from a plugin page').waitFor();
    await frame.locator('#greeting', { hasText: 'Hello, Frame!' }).waitFor();
    // Its scoped token may call its own plugin's permission-guarded route…
    await frame.locator('#counter', { hasText: /^200 / }).waitFor();
    // …but can't read the admin's cookie or window, and the bridge refuses other APIs.
    await frame.locator('#cookie', { hasText: 'blocked' }).waitFor();
    await frame.locator('#parent', { hasText: 'blocked' }).waitFor();
    await frame.locator('body[data-outside="403"]').waitFor();
    await shot('plugin-page');
  });

  await run('disable a plugin and see its routes refused', async () => {
    await nav('Plugins').click();
    await page.locator('tr[data-plugin="hello"]').getByRole('link', { name: 'hello' }).click();
    await page.getByRole('button', { name: 'Disable' }).click();
    await page.getByText('hello is disabled').waitFor();
    await page.locator('h1 .badge', { hasText: 'disabled' }).waitFor();
    const refused = await page.evaluate(async () => {
      const r = await fetch('/api/hello/greet?name=Ada');
      return { status: r.status, body: await r.json() };
    });
    expect(refused.status === 503 && refused.body.error.code === 'plugin_disabled', `a disabled plugin's route answered ${JSON.stringify(refused)}`);
    await page.reload();
    expect((await nav('Hello page').count()) === 0, "a disabled plugin's page is still in the navigation");
    await shot('plugin-disabled');
  });

  if (process.env.UCMS_CONTENT === '1') {
    await run('create a content type with several field types', async () => {
      await nav('Content').click();
      await heading('Content').waitFor();
      await page.getByRole('link', { name: 'New content type' }).click();
      await heading('New content type').waitFor();
      await page.locator('#type-name').fill('article');
      await page.locator('#type-display').fill('Article');
      const add = async (i, name, type) => {
        await page.getByRole('button', { name: '+ Add field', exact: true }).click();
        await page.locator(`#f-${i}-name`).fill(name);
        await page.locator(`#f-${i}-type`).selectOption(type);
      };
      await add(1, 'price', 'decimal');
      await page.locator('#f-1-min').fill('0');
      await add(2, 'state', 'enumeration');
      await page.locator('#f-2-values').fill('new, used');
      await page.locator('#f-2-values').blur();
      await add(3, 'related', 'relation');
      await page.locator('#f-3-target').fill('article');
      await add(4, 'seo', 'component');
      await add(5, 'blocks', 'dynamic-zone');
      await add(6, 'body', 'rich-text');
      await shot('content-type-builder');
      await page.getByRole('button', { name: 'Save type' }).click();
      await heading('Article').waitFor();
    });

    await run('create, publish and find an entry', async () => {
      await page.getByRole('link', { name: 'New entry' }).click();
      await heading('New article').waitFor();
      await page.locator('#entry-title').fill('Hello from the browser');
      await page.locator('#entry-price').fill('12.5');
      await page.locator('#entry-state').selectOption('new');
      await page.locator('#entry-seo-title').fill('An SEO title');
      await page.getByRole('button', { name: '+ text' }).click();
      await page.locator('#entry-blocks-0-text').fill('A block of text');
      await page.locator('#entry-body').fill('Some *markdown*.');
      await page.getByRole('button', { name: 'Create' }).click();
      await heading(/Edit article/).waitFor();
      await page.getByRole('button', { name: 'Publish' }).click();
      await page.getByText('Published.').waitFor();
      await page.locator('h1 .badge', { hasText: 'published' }).waitFor();
      await shot('content-entry-editor');
      await page.getByRole('link', { name: '← Article' }).click();
      await page.getByLabel('Search').fill('browser');
      await page.getByLabel('Show').selectOption('published');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByRole('link', { name: 'Hello from the browser' }).waitFor();
      await shot('content-entries');
      // The public delivery API serves it as published.
      const found = await page.evaluate(async () => (await fetch('/api/content/article?q=browser')).json());
      expect(found.data?.[0]?.fields?.title === 'Hello from the browser', `delivery answered ${JSON.stringify(found)}`);
    });
  }

  if (process.env.UCMS_CONTENT === '1') {
    await run("change a plugin's setting and read its log", async () => {
      await nav('Plugins').click();
      await page.locator('tr[data-plugin="content"]').getByRole('link', { name: 'content' }).click();
      await heading(/content\s+0\.1\.0/).waitFor();
      const field = page.locator('#setting-cache-max-age');
      await field.fill('30');
      await page.getByRole('button', { name: 'Save settings' }).click();
      await page.getByText('Saved; the plugin was reloaded with them.').waitFor();
      // The delivery API now tells caches 30 seconds (an anonymous read: no cookie).
      const cache = await page.evaluate(
        async () => (await fetch('/api/content/article?q=browser', { credentials: 'omit' })).headers.get('cache-control'),
      );
      expect(/max-age=30\b/.test(cache ?? ''), `after saving, public reads say cache-control: ${cache}`);
      await field.fill('thirty');
      await page.getByRole('button', { name: 'Save settings' }).click();
      await page.getByText('is not a valid integer').waitFor();
      await page.getByRole('heading', { name: 'Log (this node)' }).scrollIntoViewIfNeeded();
      await page.getByLabel('Level').selectOption('trace');
      // The content plugin logs little; what it has (or that it has nothing) is shown.
      await page.locator('table.log tbody tr').first().or(page.getByText('No lines yet.')).waitFor();
      await shot('plugin-settings-and-log');
    });
  }

  await run('users, roles and the audit log', async () => {
    await nav('Users').click();
    await heading('Users').waitFor();
    await page.getByRole('rowheader', { name: email }).waitFor();
    await page.getByLabel('Email', { exact: true }).fill('editor@example.com');
    await page.getByLabel('Initial password').fill('another long password');
    await page.getByLabel('Role', { exact: true }).selectOption('editor');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('rowheader', { name: 'editor@example.com' }).waitFor();
    await shot('users');
    await nav('Roles').click();
    await heading('Roles and permissions').waitFor();
    await page.getByRole('rowheader', { name: /^admin/ }).waitFor();
    await shot('roles');
    await nav('Audit log').click();
    await heading('Audit log').waitFor();
    await page.locator('code', { hasText: 'auth.sign-in' }).first().waitFor();
    await shot('audit');
  });

  await run('sign out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to UCMS' }).waitFor();
    const me = await page.evaluate(async () => (await fetch('/api/ucms/auth/me')).status);
    expect(me === 401, `after signing out /auth/me answers ${me}`);
  });

  const unexpected = consoleErrors.filter((e) => !/status of (401|403|404|503)/.test(e));
  expect(unexpected.length === 0, `console errors: ${unexpected.join(' | ')}`);
  console.log('all browser steps passed');
} catch (error) {
  console.error(`FAILED at step "${step}": ${error?.stack ?? error}`);
  if (consoleErrors.length) console.error(`console errors: ${consoleErrors.join(' | ')}`);
  await page.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
