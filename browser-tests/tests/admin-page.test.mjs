// The admin page in Debian's chromium, driven by Playwright, against a running scim-edge
// (the Spin component on the wasmtime dev host, or the Envoy filter with etcd):
//
//   SCIM_EDGE_URL=http://127.0.0.1:8787 SCIM_EDGE_ADMIN_TOKEN=… SCIM_EDGE_HOST=spin \
//     node --test tests/
//
// One story, step by step, as an operator and Entra would go through it: sign in, create a
// tenant with its first administrator, generate the SCIM configuration and read it off the page,
// provision users through SCIM exactly as Entra does (from Node, with the URL and token the page
// showed), manage roles, act as users of the tenant, remove a user, read the provisioning log,
// change the plan and regenerate. Every step asserts what the page or the API shows, with
// Playwright's waits (never a sleep), and leaves a full-page screenshot in
// target/browser-screenshots/<host>/NN-name.png.
//
// Launches the system chromium (CHROMIUM, default /usr/bin/chromium): playwright-core downloads
// no browser.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BASE = (process.env.SCIM_EDGE_URL || '').replace(/\/+$/, '');
const ADMIN_TOKEN = process.env.SCIM_EDGE_ADMIN_TOKEN || '';
const HOST = process.env.SCIM_EDGE_HOST || 'local';
const SHOTS = process.env.SCIM_EDGE_SCREENSHOTS || path.join(ROOT, 'target', 'browser-screenshots', HOST);
const WAIT = Number(process.env.SCIM_EDGE_WAIT_MS || 15000);

if (!BASE || !ADMIN_TOKEN) {
  throw new Error('set SCIM_EDGE_URL (e.g. http://127.0.0.1:8787) and SCIM_EDGE_ADMIN_TOKEN');
}

const RUN = `${Date.now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;
const TENANT = `bt-${HOST}-${RUN}`;
const TENANT_NAME = `Browser Test ${HOST} ${RUN}`;
const ADMIN_USER = `ada@${RUN}.example`;

let browser;
let context;
let page;
let shot = 0;
const problems = [];

// ---------------------------------------------------------------------------------------------
// Helpers

async function screenshot(name) {
  shot += 1;
  const file = path.join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

const byId = (id) => page.getByTestId(id);

/** Waits until the locator's text matches `re` (Playwright's wait on a text filter). */
async function waitText(locator, re) {
  try {
    await locator.filter({ hasText: re }).first().waitFor({ state: 'visible', timeout: WAIT });
  } catch (e) {
    const now = await locator.first().textContent({ timeout: 1000 }).catch(() => '(absent)');
    throw new Error(`expected text ${re} in ${locator}, found ${JSON.stringify(now)}: ${e.message}`);
  }
}

/** The panel of a tab has loaded (its data-state is set after each load). */
async function panelReady(tab, state = 'ready') {
  await page.locator(`[data-testid="panel-${tab}"][data-state="${state}"]`).waitFor({ timeout: WAIT });
}

function userRow(userName) {
  return page.locator(`[data-testid="user-row"][data-user-name="${userName}"]`);
}

async function admin(method, p, body) {
  const res = await fetch(`${BASE}/admin/v1/${p}`, {
    method,
    headers: {
      Authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A SCIM request as Entra's provisioning service sends it. */
async function scim(url, token, method, p, body) {
  const res = await fetch(`${url}${p}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      Accept: 'application/scim+json',
      ...(body ? { 'Content-Type': 'application/scim+json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

/** Entra's create-user body (docs: "Create user", the tutorial's Example 2 shape). */
function entraUser(userName, displayName) {
  const [given, family] = displayName.split(' ');
  return {
    schemas: [
      'urn:ietf:params:scim:schemas:core:2.0:User',
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
    ],
    externalId: crypto.randomUUID(),
    userName,
    active: true,
    displayName,
    emails: [{ primary: true, type: 'work', value: userName }],
    meta: { resourceType: 'User' },
    name: { formatted: displayName, familyName: family, givenName: given },
    roles: [],
    addresses: null,
    phoneNumbers: null,
    preferredLanguage: null,
    title: null,
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Finance' },
  };
}

/** Accepts or cancels the page's confirm dialog, checking what it warns about. */
async function confirm(expect, { accept = true, name } = {}) {
  const dialog = byId('confirm-dialog');
  await dialog.waitFor({ state: 'visible', timeout: WAIT });
  await waitText(byId('confirm-text'), expect);
  if (name) await screenshot(name);
  await byId(accept ? 'confirm-ok' : 'confirm-cancel').click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
}

/**
 * Runs `action` and waits until the page has finished the load it started: the page mirrors its
 * navigation counter on <body> (data-seq) and sets data-loaded when that load is done.
 */
async function afterLoad(action) {
  const before = await page.evaluate(() => Number(document.body.dataset.seq || 0));
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.loaded || 0) > n, before, { timeout: WAIT });
}

async function openTab(tab) {
  await afterLoad(() => byId(`tab-${tab}`).click());
  assert.match(page.url(), new RegExp(`#/tenants/${TENANT}/${tab}$`));
}

async function actAs(label) {
  const select = byId('acting-as');
  const value = await select.locator('option', { hasText: label }).first().getAttribute('value');
  await afterLoad(() => select.selectOption(value));
  return value;
}

/** Picks a role in a user's row and confirms the change (the page saves only on confirm). */
async function setRole(userName, role) {
  const row = userRow(userName);
  await row.getByTestId('user-role').selectOption(role);
  await row.getByTestId('user-role-apply').click();
  await confirm(/From .* to /);
}

const click = (id) => afterLoad(() => byId(id).click());
const choose = (id, value) => afterLoad(() => byId(id).selectOption(value));

async function expectErrorBanner(status, re) {
  const banner = byId('error-banner');
  await page.locator(`[data-testid="error-banner"][data-status="${status}"]`).waitFor({ state: 'visible', timeout: WAIT });
  if (re) await waitText(banner, re);
  return (await banner.textContent()).trim();
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (f.endsWith('.png')) fs.rmSync(path.join(SHOTS, f));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB', timezoneId: 'UTC' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  // A CSP violation or an uncaught exception fails the run, whatever the step.
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** What the page shows, for the message of a failed step. */
async function pageState() {
  try {
    return await page.evaluate(() => ({
      url: location.href,
      screen: document.body.dataset.screen,
      seq: document.body.dataset.seq,
      loaded: document.body.dataset.loaded,
      error: document.querySelector('[data-testid="error-banner"]').hidden
        ? null : document.querySelector('[data-testid="error-banner"]').textContent.replace(/\s+/g, ' ').trim(),
      notice: document.querySelector('[data-testid="notice"]').hidden
        ? null : document.querySelector('[data-testid="notice"]').textContent.replace(/\s+/g, ' ').trim(),
    }));
  } catch (e) {
    return { unavailable: e.message };
  }
}

test(`admin page through ${HOST} (${BASE}), tenant ${TENANT}`, async (t) => {
  // The steps build on each other: after the first failure the rest are skipped, and the failure
  // carries what the page showed (and a screenshot named FAILED-…).
  let failed = null;
  const step = (name, fn) => t.test(name, { skip: failed ? `after the failure of "${failed}"` : false }, async () => {
    try {
      await fn();
    } catch (e) {
      failed = name;
      await page.screenshot({ path: path.join(SHOTS, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`), fullPage: true }).catch(() => {});
      e.message += `\npage: ${JSON.stringify(await pageState())}`;
      throw e;
    }
  });

  let scimUrl;
  let scimToken;
  let entraId;
  const entraName = `Test_User_${RUN}@testuser.com`;
  const bobName = `bob_${RUN}@testuser.com`;
  let bobId;

  await step('the page is served with its security headers', async () => {
    const res = await fetch(`${BASE}/admin`, { redirect: 'manual' });
    assert.equal(res.status, 308);
    assert.equal(res.headers.get('location'), '/admin/');
    for (const [file, type] of [['', 'text/html'], ['app.js', 'text/javascript'], ['app.css', 'text/css']]) {
      const r = await fetch(`${BASE}/admin/${file}`);
      assert.equal(r.status, 200, file);
      assert.match(r.headers.get('content-type') || '', new RegExp(`^${type}`), file);
      assert.match(r.headers.get('content-security-policy') || '', /script-src 'self'/, file);
      assert.match(r.headers.get('content-security-policy') || '', /frame-ancestors 'none'/, file);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', file);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', file);
      await r.arrayBuffer();
    }
    // Only the page's own paths are scim-edge's: through Envoy the rest of /admin/ belongs to
    // the product behind the gateway (here the demo upstream); the Spin app has nothing there.
    const other = await fetch(`${BASE}/admin/nope.js`);
    assert.equal(other.headers.get('content-security-policy'), null, 'not served by the page');
    if (HOST.startsWith('spin')) assert.equal(other.status, 404);
    await other.arrayBuffer();
  });

  await step('sign in: a wrong token shows the API detail, the right one the tenants', async () => {
    await page.goto(`${BASE}/admin`);
    assert.match(page.url(), /\/admin\/$/);
    await byId('view-signin').waitFor();
    await screenshot('signin');

    await byId('signin-token').fill('not-the-admin-token');
    await byId('signin-submit').click();
    await waitText(byId('signin-error'), /401/);
    await screenshot('signin-wrong-token');

    await byId('signin-token').fill(ADMIN_TOKEN);
    await click('signin-submit');
    await byId('view-tenants').waitFor();
    await page.waitForURL(/#\/tenants$/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('scim-edge.adminToken')), ADMIN_TOKEN);
    await screenshot('tenants');
  });

  await step('create a tenant with its first administrator', async () => {
    await byId('create-tenant-id').fill(TENANT);
    await byId('create-tenant-name').fill(TENANT_NAME);
    await byId('create-tenant-plan').selectOption('advanced');
    await byId('create-tenant-admin-username').fill(ADMIN_USER);
    await byId('create-tenant-admin-displayname').fill('Ada Admin');
    await screenshot('create-tenant-form');
    await click('create-tenant-submit');

    await page.waitForURL(new RegExp(`#/tenants/${TENANT}/scim$`));
    await panelReady('scim');
    await waitText(byId('tenant-name'), new RegExp(TENANT_NAME));
    await waitText(byId('notice'), /created/);
    await byId('scim-none').waitFor();
    await byId('scim-generate').waitFor();
    assert.equal(await byId('scim-regenerate').isVisible(), false);

    const { status, body } = await admin('GET', `tenants/${TENANT}`);
    assert.equal(status, 200);
    assert.equal(body.plan, 'advanced');
    assert.equal(body.scim, null);
    assert.equal(body.users.active, 1, 'the first administrator');
    const users = await admin('GET', `tenants/${TENANT}/users?q=${encodeURIComponent(ADMIN_USER)}`);
    assert.equal(users.body.users.length, 1);
    assert.equal(users.body.users[0].role, 'administrator');
    assert.equal(users.body.users[0].source, 'local');
    await screenshot('scim-not-configured');
  });

  await step('generate the SCIM configuration: URL and token shown once, with copy buttons', async () => {
    await byId('scim-generate').click();
    await byId('scim-secret').waitFor();
    await waitText(byId('scim-secret-notice'), /only once/);
    scimUrl = await byId('secret-url').inputValue();
    scimToken = await byId('secret-token').inputValue();
    assert.match(scimUrl, /^https?:\/\/.+\/scim\/v2\/[0-9a-f]{32}$/);
    assert.match(scimToken, /^sce_/);
    assert.equal(await byId('secret-auth-header').inputValue(), `Bearer ${scimToken}`);

    await byId('copy-token').click();
    await waitText(byId('copy-token'), /Copied|Selected/);
    const copied = await page.evaluate(() => navigator.clipboard.readText().catch(() => null));
    if (copied !== null) assert.equal(copied, scimToken, 'the clipboard holds the token');
    await screenshot('scim-generated');

    // The status card shows the connection; the secret goes away for good.
    await byId('scim-props').waitFor();
    await waitText(byId('scim-url'), new RegExp(scimUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await waitText(byId('scim-last-used'), /Never/);
    await byId('scim-regenerate').waitFor();
    await byId('scim-secret-done').click();
    await byId('scim-secret').waitFor({ state: 'hidden' });
    assert.equal(await byId('secret-token').inputValue(), '');
    await screenshot('scim-status');
  });

  await step('Entra provisions a user through the URL and token from the page', async () => {
    // Test Connection: a filter on a user that does not exist.
    const probe = await scim(scimUrl, scimToken, 'GET', `/Users?filter=${encodeURIComponent(`userName eq "${crypto.randomUUID()}"`)}`);
    assert.equal(probe.status, 200, JSON.stringify(probe.body));
    assert.equal(probe.body.totalResults, 0);

    const created = await scim(scimUrl, scimToken, 'POST', '/Users', entraUser(entraName, 'Tess Tuser'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    entraId = created.body.id;
    assert.ok(entraId);

    await openTab('users');
    await page.reload();
    await panelReady('users');
    const row = userRow(entraName);
    await row.waitFor();
    await waitText(row.getByTestId('user-state'), /Active/);
    await waitText(row.getByTestId('user-source'), /SCIM/);
    assert.equal(await row.getByTestId('user-role').inputValue(), 'user');
    const adaRow = userRow(ADMIN_USER);
    assert.equal(await adaRow.getByTestId('user-role').inputValue(), 'administrator');
    await waitText(adaRow.getByTestId('user-source'), /Local/);
    await screenshot('users-provisioned');
  });

  await step('raise the SCIM user to administrator from the page', async () => {
    await setRole(entraName, 'administrator');
    await waitText(byId('notice'), /is now Administrator/);
    await page.locator(`[data-testid="user-row"][data-user-name="${entraName}"][data-role="administrator"]`).waitFor();
    const { status, body } = await admin('GET', `tenants/${TENANT}/users/${entraId}`);
    assert.equal(status, 200);
    assert.equal(body.role, 'administrator');
    await screenshot('role-administrator');
  });

  await step('Entra disables the user (PATCH active "False"): the page shows it disabled', async () => {
    const patched = await scim(scimUrl, scimToken, 'PATCH', `/Users/${entraId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
    });
    assert.ok([200, 204].includes(patched.status), JSON.stringify(patched.body));
    await click('users-refresh');
    await page.locator(`[data-testid="user-row"][data-user-name="${entraName}"][data-state="disabled"]`).waitFor();
    await waitText(userRow(entraName).getByTestId('user-state'), /Disabled/);
    // The role survived the SCIM PATCH.
    assert.equal(await userRow(entraName).getByTestId('user-role').inputValue(), 'administrator');

    await choose('users-state', 'disabled');
    await panelReady('users');
    await page.locator('[data-testid="user-row"]').first().waitFor();
    const states = await page.locator('[data-testid="user-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.state));
    assert.ok(states.length >= 1 && states.every((s) => s === 'disabled'), `filtered states ${states}`);
    // A filtered list says how many matched and which part of the tenant it searched.
    await waitText(byId('users-range'), /\b1 match in users 1–\d+ of \d+/);
    await screenshot('users-filter-disabled');
    await choose('users-state', '');
    await userRow(ADMIN_USER).waitFor();
  });

  await step('acting as a user with the "user" role: 403 from the API in a banner', async () => {
    const bob = await scim(scimUrl, scimToken, 'POST', '/Users', entraUser(bobName, 'Bob Builder'));
    assert.equal(bob.status, 201, JSON.stringify(bob.body));
    bobId = bob.body.id;
    await click('users-refresh');
    await userRow(bobName).waitFor();

    assert.equal(await actAs(bobName), bobId);
    await waitText(byId('acting-hint'), /X-Acting-User/);
    const onUsers = await expectErrorBanner(403, /user/);
    await byId('panel-error').waitFor();
    await screenshot('acting-user-403-users');

    await openTab('scim');
    const onScim = await expectErrorBanner(403);
    await panelReady('scim', 'error');
    assert.equal(await byId('scim-generate').isVisible(), false);
    assert.equal(await byId('scim-regenerate').isVisible(), false);
    await screenshot('acting-user-403-scim');
    assert.ok(onUsers.length > 10 && onScim.length > 10);
  });

  await step('acting as a system technician: SCIM is visible, changing a role is refused', async () => {
    await actAs('Operator');
    await panelReady('scim');
    await openTab('users');
    await panelReady('users');
    await setRole(bobName, 'system_technician');
    await waitText(byId('notice'), /is now System Technician/);

    await actAs(bobName);
    await panelReady('users');
    await waitText(byId('acting-hint'), /system_technician/);
    await setRole(ADMIN_USER, 'user');
    await expectErrorBanner(403);
    // The select goes back to what the server has.
    await page.waitForFunction(
      (name) => document.querySelector(`[data-testid="user-row"][data-user-name="${name}"] [data-testid="user-role"]`).value === 'administrator',
      ADMIN_USER,
    );
    await screenshot('acting-technician-403-role');
    const ada = await admin('GET', `tenants/${TENANT}/users?q=${encodeURIComponent(ADMIN_USER)}`);
    assert.equal(ada.body.users[0].role, 'administrator', 'the refused change did not happen');

    await openTab('scim');
    await panelReady('scim');
    await byId('scim-regenerate').waitFor();
    await screenshot('acting-technician-scim');

    await actAs('Operator');
    await panelReady('scim');
  });

  await step('remove the user from the page: SCIM then answers 404 for it, and it is blocked', async () => {
    await openTab('users');
    await panelReady('users');
    await userRow(entraName).getByTestId('user-remove').click();
    await confirm(/deleted at once/, { name: 'remove-confirm' });
    await waitText(byId('notice'), /was removed and blocked/);
    await userRow(entraName).waitFor({ state: 'detached' });
    const gone = await scim(scimUrl, scimToken, 'GET', `/Users/${entraId}`);
    assert.equal(gone.status, 404);
    const viaAdmin = await admin('GET', `tenants/${TENANT}/users/${entraId}`);
    assert.equal(viaAdmin.status, 404);
    await screenshot('user-removed');
  });

  await step('the removed user is blocked: Entra cannot create it again until it is unblocked', async () => {
    const again = await scim(scimUrl, scimToken, 'POST', '/Users', entraUser(entraName, 'Back Again'));
    assert.equal(again.status, 403, JSON.stringify(again.body));
    assert.match(again.body.detail, /blocked by a tenant administrator/);
    await choose('users-state', 'blocked');
    await panelReady('users');
    const row = page.locator(`[data-testid="block-row"][data-user-name="${entraName}"]`);
    await row.waitFor();
    await waitText(row.getByTestId('user-state'), /Blocked/);
    await waitText(byId('users-range'), /of 1 blocked/);
    assert.equal(await byId('users-role').isDisabled(), true, 'role does not apply to blocks');
    await screenshot('users-blocked');
    await row.getByTestId('block-unblock').click();
    await confirm(/create this user again/, { name: 'unblock-confirm' });
    await waitText(byId('notice'), /no longer blocked/);
    await row.waitFor({ state: 'detached' });
    const created = await scim(scimUrl, scimToken, 'POST', '/Users', entraUser(entraName, 'Back Again'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await choose('users-state', '');
    await userRow(entraName).waitFor();
  });

  await step('the provisioning log shows what happened, newest first, with filters and paging', async () => {
    // A few updates as Entra sends them (one PATCH per changed attribute), so the log has more
    // than one small page.
    for (const name of ['Bob Builder Jr', 'Bob the Builder', 'Robert Builder']) {
      const r = await scim(scimUrl, scimToken, 'PATCH', `/Users/${bobId}`, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'Replace', path: 'displayName', value: name }],
      });
      assert.ok([200, 204].includes(r.status), JSON.stringify(r.body));
    }
    await openTab('log');
    await panelReady('log');
    for (const op of ['scim.generate', 'user.create', 'user.role', 'user.remove', 'user.block', 'user.unblock']) {
      await page.locator(`[data-testid="log-row"][data-operation="${op}"][data-outcome="success"]`).first().waitFor();
    }
    const seqs = await page.locator('[data-testid="log-row"]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a), 'newest first');
    const text = await byId('log-body').textContent();
    assert.ok(!text.includes(scimToken), 'the log never shows a token');
    await screenshot('log');

    await choose('log-operation', 'user.role');
    await panelReady('log');
    const ops = await page.locator('[data-testid="log-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.operation));
    assert.ok(ops.length >= 2 && ops.every((o) => o === 'user.role'), `filtered operations ${ops}`);
    await waitText(page.locator('[data-testid="log-row"]').first().getByTestId('log-actor-cell'), /Operator|SCIM|@/);
    await screenshot('log-filter-role');
    await choose('log-operation', '');

    await choose('log-actor', 'scim');
    await panelReady('log');
    const actors = await page.locator('[data-testid="log-actor-cell"]').evaluateAll((cells) => cells.map((c) => c.dataset.actor));
    assert.ok(actors.length >= 1 && actors.every((a) => a === 'scim'), `filtered actors ${actors}`);
    await choose('log-actor', '');
    await panelReady('log');

    // Paging: a small page, then "Older entries" (before=<cursor>) appends older ones.
    await choose('log-count', '10');
    await panelReady('log');
    assert.equal(await page.locator('[data-testid="log-row"]').count(), 10);
    await waitText(byId('log-range'), /^10 entries/);
    const lastSeq = Number(await page.locator('[data-testid="log-row"]').last().getAttribute('data-seq'));
    await byId('log-older').click();
    await page.locator('[data-testid="log-row"]').nth(10).waitFor();
    await page.locator('[data-testid="log-older"]:not([data-busy])').waitFor();
    const all = await page.locator('[data-testid="log-row"]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
    assert.ok(all.slice(10).every((s) => s < lastSeq), `older entries follow: ${all}`);
    assert.deepEqual(all, [...new Set(all)].sort((a, b) => b - a), 'no entry twice, newest first');
    // The oldest entry of the tenant is its creation.
    while (await byId('log-older').isEnabled()) {
      await byId('log-older').click();
      await page.locator('[data-testid="log-older"]:not([data-busy])').waitFor();
    }
    await page.locator('[data-testid="log-row"][data-operation="tenant.create"]').waitFor();
    await screenshot('log-older');
    await choose('log-count', '50');
    await panelReady('log');
  });

  await step('regenerate: the old URL and token get 401 at once, the new ones work', async () => {
    await openTab('scim');
    await panelReady('scim');
    await waitText(byId('scim-requests'), /[1-9]/);
    await byId('scim-regenerate').click();
    await confirm(/stop working at once/, { name: 'regenerate-confirm' });
    await byId('scim-secret').waitFor();
    const newUrl = await byId('secret-url').inputValue();
    const newToken = await byId('secret-token').inputValue();
    assert.notEqual(newToken, scimToken);
    assert.notEqual(newUrl, scimUrl);
    await waitText(byId('notice'), /no longer work/);
    await screenshot('regenerated');

    const old = await scim(scimUrl, scimToken, 'GET', '/Users');
    assert.equal(old.status, 401);
    const oldTokenNewUrl = await scim(newUrl, scimToken, 'GET', '/Users');
    assert.equal(oldTokenNewUrl.status, 401);
    const fresh = await scim(newUrl, newToken, 'GET', '/Users');
    assert.equal(fresh.status, 200);
    assert.ok(fresh.body.Resources.some((u) => u.id === bobId), 'the users stay');
    scimUrl = newUrl;
    scimToken = newToken;
    await byId('scim-secret-done').click();

    await openTab('log');
    await page.locator('[data-testid="log-row"][data-operation="scim.regenerate"]').first().waitFor();
  });

  await step('moving off the advanced plan turns SCIM off with the API\'s detail', async () => {
    await openTab('scim');
    await panelReady('scim');
    await byId('settings-plan').selectOption('basic');
    await byId('settings-save').click();
    await confirm(/Advanced plan/);
    await byId('scim-off').waitFor();
    const detail = (await byId('scim-off-detail').textContent()).trim();
    assert.ok(detail.length > 10, `scimOff detail: ${detail}`);
    await waitText(byId('tenant-plan'), /basic/);
    assert.equal(await byId('scim-generate').isDisabled() || !(await byId('scim-generate').isVisible()), true);
    await screenshot('plan-basic-scim-off');
    const refused = await scim(scimUrl, scimToken, 'GET', '/Users');
    assert.ok([401, 403].includes(refused.status), `SCIM after the plan change: ${refused.status}`);

    await byId('settings-plan').selectOption('advanced');
    await byId('settings-save').click();
    await waitText(byId('tenant-plan'), /advanced/);
    await byId('scim-generate').waitFor();
    assert.equal(await byId('scim-generate').isEnabled(), true);
  });

  await step('the tenant list shows the tenant; sign out forgets the token', async () => {
    await byId('crumb-tenants').click();
    await byId('view-tenants').waitFor();
    const row = page.locator(`[data-testid="tenant-row"][data-tenant-id="${TENANT}"]`);
    await row.waitFor();
    await waitText(row.getByTestId('tenant-plan-cell'), /advanced/);
    // Ada, Bob, and the removed user Entra created again once it was unblocked.
    await waitText(row.getByTestId('tenant-active'), /^3$/);
    await screenshot('tenants-after');

    await byId('sign-out').click();
    await byId('view-signin').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('scim-edge.adminToken')), null);
    await page.reload();
    await byId('view-signin').waitFor();
    await screenshot('signed-out');
  });

  assert.deepEqual(problems, [], 'no CSP violation or script error in the page');
});
