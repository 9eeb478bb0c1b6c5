// The guide from the tenant administrator's side, in Debian's chromium through Playwright: the
// product (this test, with the operator's token) mints a sign-in link for one of its users, and
// the person does Settings › Security › SCIM themselves on the page — without ever seeing the
// operator's token:
//
//   sign in from the link → generate (masked, copy, leave warning, http:// warning) → Entra's
//   sync (driven from Node with the URL and token the page showed) → Users → change a role (an
//   explicit confirm; arrowing saves nothing) → a user's detail → urgent removal → Groups →
//   log search and export → sign out;
//   a System Technician's and a base user's views; an expired link, a reused link, a session of
//   tenant A asking for tenant B, a disabled user's session.
//
// Same environment as admin-page.test.mjs (SCIM_EDGE_URL, SCIM_EDGE_ADMIN_TOKEN, SCIM_EDGE_HOST).
// Screenshots of every view at 1280 and 390 px wide: target/browser-screenshots/<host>/tenant/.
// Never a sleep: Playwright's waits, and for the expired link a wait for the expiry the API
// stated.

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
const SHOTS = path.join(process.env.SCIM_EDGE_SCREENSHOTS || path.join(ROOT, 'target', 'browser-screenshots', HOST), 'tenant');
const WAIT = Number(process.env.SCIM_EDGE_WAIT_MS || 15000);

if (!BASE || !ADMIN_TOKEN) {
  throw new Error('set SCIM_EDGE_URL (e.g. http://127.0.0.1:8787) and SCIM_EDGE_ADMIN_TOKEN');
}

const RUN = `${Date.now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;
const TENANT = `ts-${HOST}-${RUN}`;
const OTHER = `ts-other-${RUN}`;
const ADA = `ada@${RUN}.example`;
const RETURN_URL = 'https://app.example.test/settings/security';
const WIDE = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

let browser;
let shot = 0;
const problems = [];
const contexts = [];

// ---------------------------------------------------------------------------------------------
// Helpers

async function admin(method, p, body) {
  const res = await fetch(`${BASE}/admin/v1/${p}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The product mints a sign-in link for `user` (the operator's token never reaches the browser). */
async function mintLink(tenant, user, extra = {}) {
  const r = await admin('POST', `tenants/${tenant}/sessions`, { user, returnUrl: RETURN_URL, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.match(r.body.url, /\/admin\/v1\/sign-in\?t=sel_[0-9a-f]{96}$/);
  // The URL is the one the hosts route to the plugin; the test reaches it on BASE.
  return { ...r.body, url: `${BASE}${new URL(r.body.url).pathname}${new URL(r.body.url).search}` };
}

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

/** Entra's create-user body, with the enterprise extension it sends. */
function entraUser(userName, displayName, department, manager) {
  const [given, family] = displayName.split(' ');
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
    externalId: crypto.randomUUID(),
    userName,
    active: true,
    displayName,
    emails: [{ primary: true, type: 'work', value: userName }],
    name: { formatted: displayName, familyName: family, givenName: given },
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': {
      department, ...(manager ? { manager: { value: manager } } : {}),
    },
  };
}

/** A new browser (its own cookies), at 1280 px, failing the run on CSP violations or page errors. */
async function newPage() {
  const context = await browser.newContext({ viewport: WIDE, locale: 'en-GB', timezoneId: 'UTC', acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return page;
}

/** A full-page screenshot at 1280 and at 390 px wide. */
async function screenshots(page, name) {
  shot += 1;
  const n = String(shot).padStart(2, '0');
  await page.screenshot({ path: path.join(SHOTS, `${n}-${name}-1280.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, `${n}-${name}-390.png`), fullPage: true });
  // Nothing sticks out sideways on a phone but what scrolls inside its own box.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 1) {
    const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && e.getClientRects().length)
      .slice(0, 5).map((e) => `${e.tagName}.${e.className}[${e.dataset.testid || ''}] right=${Math.round(e.getBoundingClientRect().right)}`));
    assert.fail(`${name}: the page is ${overflow}px wider than a 390px phone: ${wide.join(', ')}`);
  }
  await page.setViewportSize(WIDE);
}

const byId = (page, id) => page.getByTestId(id);

async function waitText(locator, re) {
  try {
    await locator.filter({ hasText: re }).first().waitFor({ state: 'visible', timeout: WAIT });
  } catch (e) {
    const now = await locator.first().textContent({ timeout: 1000 }).catch(() => '(absent)');
    throw new Error(`expected text ${re} in ${locator}, found ${JSON.stringify(now)}: ${e.message}`);
  }
}

async function panelReady(page, tab, state = 'ready') {
  await page.locator(`[data-testid="panel-${tab}"][data-state="${state}"]`).waitFor({ timeout: WAIT });
}

async function afterLoad(page, action) {
  const before = await page.evaluate(() => Number(document.body.dataset.seq || 0));
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.loaded || 0) > n, before, { timeout: WAIT });
}

async function openTab(page, tab) {
  await afterLoad(page, () => byId(page, `tab-${tab}`).click());
  await panelReady(page, tab);
}

const userRow = (page, userName) => page.locator(`[data-testid="user-row"][data-user-name="${userName}"]`);

async function confirm(page, expect) {
  const dialog = byId(page, 'confirm-dialog');
  await dialog.waitFor({ state: 'visible', timeout: WAIT });
  await waitText(byId(page, 'confirm-text'), expect);
  await byId(page, 'confirm-ok').click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
}

/** Opens a sign-in link as the person would (a top-level navigation). */
async function openLink(page, link) {
  await page.goto(link.url);
  assert.doesNotMatch(page.url(), /[?&]t=/, 'the link token does not stay in the address bar');
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
  // The tenant and its first administrator, as the product creates them. Nothing else: the
  // administrator does the rest on the page.
  const r = await admin('PUT', `tenants/${TENANT}`, { name: `Acme ${RUN}`, admin: { userName: ADA, displayName: 'Ada Admin' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const o = await admin('PUT', `tenants/${OTHER}`, { name: `Other ${RUN}` });
  assert.equal(o.status, 201, JSON.stringify(o.body));
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (browser) await browser.close();
});

test(`a tenant administrator from a sign-in link through ${HOST} (${BASE}), tenant ${TENANT}`, async (t) => {
  let failed = null;
  let current = null;
  const step = (name, fn) => t.test(name, { skip: failed ? `after the failure of "${failed}"` : false }, async () => {
    try {
      await fn();
    } catch (e) {
      failed = name;
      if (current) {
        await current.screenshot({ path: path.join(SHOTS, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`), fullPage: true }).catch(() => {});
        e.message += `\npage: ${current.url()} screen=${await current.evaluate(() => document.body.dataset.screen).catch(() => '?')}`;
      }
      throw e;
    }
  });

  let ada;
  let adaLink;
  let scimUrl;
  let scimToken;
  const ids = {};
  const TESS = `tess_${RUN}@example.com`;
  const BOB = `bob_${RUN}@example.com`;
  const CARL = `carl_${RUN}@example.com`;
  const DAN = `dan_${RUN}@example.com`;

  await step('sign in from the link: the tenant page, as Ada, no operator token anywhere', async () => {
    ada = await newPage();
    current = ada;
    adaLink = await mintLink(TENANT, ADA);
    await openLink(ada, adaLink);
    await ada.waitForURL(new RegExp(`/admin/#/tenants/${TENANT}/scim$`));
    await panelReady(ada, 'scim');
    await waitText(byId(ada, 'session-label'), /Ada Admin · Administrator · Acme/);
    assert.equal(await byId(ada, 'acting-box').isVisible(), false, 'no "Acting as" for a tenant person');
    assert.equal(await byId(ada, 'crumbs').isVisible(), false, 'no tenant list');
    assert.equal(await byId(ada, 'return-link').getAttribute('href'), RETURN_URL);
    assert.equal(await ada.evaluate(() => sessionStorage.getItem('scim-edge.adminToken')), null);
    const html = await ada.content();
    assert.ok(!html.includes(ADMIN_TOKEN), 'the operator token is nowhere on the page');
    // The cookie is the session's, HttpOnly (invisible to the page) and SameSite=Strict.
    const cookies = await ada.context().cookies();
    const c = cookies.find((k) => k.name === 'scim_edge_session');
    assert.ok(c && c.httpOnly && c.sameSite === 'Strict' && c.path === '/admin/v1', JSON.stringify(cookies));
    assert.equal(await ada.evaluate(() => document.cookie), '');
    await byId(ada, 'scim-none').waitFor();
    await screenshots(ada, 'scim-empty');
  });

  await step('Settings › Security › SCIM: generate; masked, copyable, http:// warned, leaving asks', async () => {
    await byId(ada, 'scim-generate').click();
    await byId(ada, 'scim-secret').waitFor();
    scimUrl = await byId(ada, 'secret-url').inputValue();
    scimToken = await byId(ada, 'secret-token').inputValue();
    assert.match(scimUrl, /\/scim\/v2\/[0-9a-f]{32}$/);
    assert.equal(await byId(ada, 'secret-auth-header').getAttribute('type'), 'password', 'masked');
    assert.equal(await byId(ada, 'secret-http-warning').isVisible(), scimUrl.startsWith('http://'));
    await byId(ada, 'reveal-auth').click();
    assert.equal(await byId(ada, 'secret-auth-header').getAttribute('type'), 'text');
    assert.equal(await byId(ada, 'reveal-auth').getAttribute('aria-pressed'), 'true');
    await byId(ada, 'copy-url').click();
    await ada.locator('[data-testid="copy-url"][data-copied="true"]').waitFor();
    assert.equal(await ada.evaluate(() => navigator.clipboard.readText()), scimUrl);
    // Leaving the page while the secret is shown asks first.
    const asks = await ada.evaluate(() => {
      const e = new Event('beforeunload', { cancelable: true });
      window.dispatchEvent(e);
      return e.defaultPrevented;
    });
    assert.equal(asks, true, 'beforeunload is cancelled while the secret is shown');
    await byId(ada, 'reveal-auth').click();
    await screenshots(ada, 'scim-generated');
    // Looking at another tab keeps it; "I have copied them" ends it.
    await openTab(ada, 'users');
    await openTab(ada, 'scim');
    assert.equal(await byId(ada, 'secret-token').inputValue(), scimToken);
    await byId(ada, 'scim-secret-done').click();
    await byId(ada, 'scim-secret').waitFor({ state: 'hidden' });
    const asksAfter = await ada.evaluate(() => {
      const e = new Event('beforeunload', { cancelable: true });
      window.dispatchEvent(e);
      return e.defaultPrevented;
    });
    assert.equal(asksAfter, false);
  });

  await step('Users before Entra: the empty state tells the next step', async () => {
    // Only Ada (local) exists: filter to SCIM users to see the empty state's text.
    await openTab(ada, 'users');
    await afterLoad(ada, () => byId(ada, 'users-source').selectOption('scim'));
    await waitText(byId(ada, 'users-empty'), /No users match/);
    await afterLoad(ada, () => byId(ada, 'users-source').selectOption(''));
    await userRow(ada, ADA).waitFor();
    await openTab(ada, 'groups');
    await waitText(byId(ada, 'groups-empty'), /Assign groups to the application/);
    await screenshots(ada, 'groups-empty');
  });

  await step("Entra's sync: users and a group appear", async () => {
    for (const [name, display, dept] of [[TESS, 'Tess Tech', 'IT'], [BOB, 'Bob Builder', 'Sales'], [DAN, 'Dan Base', 'Ops']]) {
      const r = await scim(scimUrl, scimToken, 'POST', '/Users', entraUser(name, display, dept));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids[name] = r.body.id;
    }
    const carl = await scim(scimUrl, scimToken, 'POST', '/Users', entraUser(CARL, 'Carl Finance', 'Finance', ids[TESS]));
    assert.equal(carl.status, 201, JSON.stringify(carl.body));
    ids[CARL] = carl.body.id;
    const g = await scim(scimUrl, scimToken, 'POST', '/Groups', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
      displayName: `Engineering ${RUN}`,
      externalId: crypto.randomUUID(),
      members: [ids[TESS], ids[BOB], ids[CARL]].map((value) => ({ value })),
    });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    ids.group = g.body.id;
    await openTab(ada, 'users');
    for (const n of [TESS, BOB, CARL, DAN]) await userRow(ada, n).waitFor();
    await screenshots(ada, 'users');
  });

  await step('change a role: by name, arrowing saves nothing, an explicit confirm saves', async () => {
    const row = userRow(ada, TESS);
    const select = row.getByTestId('user-role');
    assert.deepEqual(await select.locator('option').allTextContents(), ['User', 'Administrator', 'System Technician']);
    await select.focus();
    await ada.keyboard.press('ArrowDown');
    await ada.keyboard.press('ArrowDown');
    assert.equal(await byId(ada, 'confirm-dialog').isVisible(), false, 'arrowing opens nothing');
    const still = await admin('GET', `tenants/${TENANT}/users/${ids[TESS]}`);
    assert.equal(still.body.role, 'user', 'arrowing through the options saved nothing');
    await select.selectOption('system_technician');
    await row.getByTestId('user-role-apply').click();
    await confirm(ada, /From User to System Technician/);
    await waitText(byId(ada, 'notice'), /is now System Technician/);
    await ada.locator(`[data-testid="user-row"][data-user-name="${TESS}"][data-role="system_technician"]`).waitFor();
    const now = await admin('GET', `tenants/${TENANT}/users/${ids[TESS]}`);
    assert.equal(now.body.role, 'system_technician');
    // Ada cannot change her own role or remove herself: no controls on her row.
    assert.equal(await userRow(ada, ADA).getByTestId('user-role').count(), 0);
    assert.equal(await userRow(ada, ADA).getByTestId('user-remove').count(), 0);
  });

  await step("a user's detail: what Entra sent, role, groups and the user's log", async () => {
    await afterLoad(ada, () => userRow(ada, CARL).getByTestId('user-username').click());
    await byId(ada, 'user-detail').waitFor();
    await waitText(byId(ada, 'user-detail-title'), /Carl Finance/);
    await waitText(byId(ada, 'user-detail-department'), /Finance/);
    await waitText(byId(ada, 'user-detail-manager'), new RegExp(ids[TESS]));
    await waitText(byId(ada, 'user-detail-source'), /SCIM/);
    await waitText(byId(ada, 'user-detail-group'), new RegExp(`Engineering ${RUN}`));
    await waitText(byId(ada, 'user-detail-log-entry'), /user\.create/);
    await screenshots(ada, 'user-detail');
    await afterLoad(ada, () => byId(ada, 'user-detail-close').click());
    await byId(ada, 'user-detail').waitFor({ state: 'hidden' });
  });

  await step('urgent removal: Bob is removed and blocked at once', async () => {
    await userRow(ada, BOB).getByTestId('user-remove').click();
    await confirm(ada, /blocked/);
    await waitText(byId(ada, 'notice'), /removed and blocked/);
    await userRow(ada, BOB).waitFor({ state: 'detached' });
    const again = await scim(scimUrl, scimToken, 'PATCH', `/Users/${ids[BOB]}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'Replace', path: 'active', value: 'True' }],
    });
    assert.ok(again.status >= 400, `Entra cannot bring Bob back: ${again.status}`);
  });

  await step('Groups: member counts and the members of a group', async () => {
    await openTab(ada, 'groups');
    const row = ada.locator(`[data-testid="group-row"][data-group-id="${ids.group}"]`);
    await waitText(row.getByTestId('group-members-count'), /^2$/);
    await afterLoad(ada, () => row.getByTestId('group-name').click());
    await byId(ada, 'group-members').waitFor();
    const members = await byId(ada, 'group-member').allTextContents();
    assert.equal(members.length, 2, JSON.stringify(members));
    assert.ok(members.some((m) => m.includes(TESS)) && members.some((m) => m.includes(CARL)));
    await screenshots(ada, 'groups');
  });

  await step('the log: search by user and date, export CSV and JSON', async () => {
    await openTab(ada, 'log');
    await ada.locator('[data-testid="log-row"]').first().waitFor();
    await screenshots(ada, 'log');
    await byId(ada, 'log-target-filter').fill(CARL);
    await afterLoad(ada, () => byId(ada, 'log-target-filter').press('Enter'));
    await panelReady(ada, 'log');
    const targets = await ada.locator('[data-testid="log-target"]').allTextContents();
    assert.ok(targets.length >= 1 && targets.every((x) => x.includes(CARL)), JSON.stringify(targets));
    const today = new Date().toISOString().slice(0, 10);
    await afterLoad(ada, () => byId(ada, 'log-from').fill(today));
    await afterLoad(ada, () => byId(ada, 'log-to').fill(today));
    await ada.locator('[data-testid="log-row"]').first().waitFor();
    const [csv] = await Promise.all([ada.waitForEvent('download'), byId(ada, 'log-export-csv').click()]);
    const csvText = fs.readFileSync(await csv.path(), 'utf8');
    assert.match(csvText, /^seq,time,actor,operation,/);
    assert.match(csvText, /"user\.create"/);
    assert.ok(csvText.includes(CARL));
    const [json] = await Promise.all([ada.waitForEvent('download'), byId(ada, 'log-export-json').click()]);
    const entries = JSON.parse(fs.readFileSync(await json.path(), 'utf8'));
    assert.ok(entries.length >= 1 && entries.every((e) => e.targetName === CARL || e.target === ids[CARL]), JSON.stringify(entries));
    await screenshots(ada, 'log-search');
    // The session's own sign-in is in the log, naming the link, never a token.
    const log = await admin('GET', `tenants/${TENANT}/log?operation=session.start`);
    assert.ok(log.body.entries.some((e) => e.detail.includes(adaLink.id) && e.actor.userName === ADA));
    assert.ok(!JSON.stringify(log.body).includes(adaLink.url.split('t=')[1]));
  });

  await step('tenant A asking for tenant B: refused, and the page stays on its tenant', async () => {
    const status = await ada.evaluate(async (other) => {
      const r = await fetch(`v1/tenants/${other}/users`, { credentials: 'same-origin' });
      return r.status;
    }, OTHER);
    assert.equal(status, 403);
    await ada.evaluate((other) => { location.hash = `#/tenants/${other}/users`; }, OTHER);
    await ada.waitForURL(new RegExp(`#/tenants/${TENANT}/users$`));
    await panelReady(ada, 'users');
  });

  await step('a reused link does not sign in again', async () => {
    const page = await newPage();
    current = page;
    await openLink(page, adaLink);
    await page.waitForURL(/#\/link\/used$/);
    await waitText(byId(page, 'link-title'), /already used/);
    await screenshots(page, 'link-used');
  });

  await step('an expired link', async () => {
    const page = await newPage();
    current = page;
    const link = await mintLink(TENANT, ADA, { ttlSeconds: 10 });
    // Wait for the expiry the API stated (not a guess), then one second for clock granularity.
    const until = Date.parse(link.expiresAt) + 1000;
    await page.waitForFunction((u) => Date.now() > u, until, { timeout: 20000, polling: 250 });
    await openLink(page, link);
    await page.waitForURL(/#\/link\/expired$/);
    await waitText(byId(page, 'link-title'), /expired/);
    await screenshots(page, 'link-expired');
  });

  let tess;
  await step("a System Technician's view: SCIM, but no role selector and no Remove", async () => {
    tess = await newPage();
    current = tess;
    await openLink(tess, await mintLink(TENANT, TESS));
    await panelReady(tess, 'scim');
    await waitText(byId(tess, 'session-label'), /System Technician/);
    await byId(tess, 'scim-regenerate').waitFor();
    assert.equal(await byId(tess, 'tenant-settings-form').isVisible(), false);
    await screenshots(tess, 'technician-scim');
    await openTab(tess, 'users');
    await userRow(tess, CARL).waitFor();
    assert.equal(await tess.getByTestId('user-role').count(), 0, 'no role selector');
    assert.equal(await tess.getByTestId('user-remove').count(), 0, 'no Remove');
    await waitText(userRow(tess, ADA).getByTestId('user-role-name'), /^Administrator$/);
    await screenshots(tess, 'technician-users');
  });

  await step("a base user's view: what role is needed, not a 403", async () => {
    const page = await newPage();
    current = page;
    await openLink(page, await mintLink(TENANT, DAN));
    await byId(page, 'view-norole').waitFor();
    await waitText(byId(page, 'norole-title'), /Administrator or System Technician role/);
    assert.equal(await byId(page, 'error-banner').isVisible(), false);
    await screenshots(page, 'base-user');
  });

  await step("a disabled user's session ends", async () => {
    current = tess;
    const r = await scim(scimUrl, scimToken, 'PATCH', `/Users/${ids[TESS]}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
    });
    assert.ok([200, 204].includes(r.status), JSON.stringify(r.body));
    await byId(tess, 'users-refresh').click();
    await byId(tess, 'view-link').waitFor();
    await waitText(byId(tess, 'link-text'), /disabled/);
    await screenshots(tess, 'session-ended-disabled');
    const ends = await admin('GET', `tenants/${TENANT}/log?operation=session.end`);
    assert.ok(ends.body.entries.some((e) => /disabled/.test(e.detail)), JSON.stringify(ends.body));
  });

  await step('sign out: the session is gone, back to the product', async () => {
    current = ada;
    await byId(ada, 'sign-out').click();
    await byId(ada, 'view-link').waitFor();
    await waitText(byId(ada, 'link-title'), /signed out/);
    assert.equal(await byId(ada, 'link-return').getAttribute('href'), RETURN_URL);
    await screenshots(ada, 'signed-out');
    const status = await ada.evaluate(async () => (await fetch('v1/session', { credentials: 'same-origin' })).status);
    assert.equal(status, 401);
  });

  await step('no CSP violation or script error on any page', async () => {
    assert.deepEqual(problems, []);
  });
});
