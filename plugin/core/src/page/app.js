// scim-edge admin page: a small single-page app over the admin API (/admin/v1/…).
//
// No framework and no build step: the plugin serves this file as it is, under a
// Content-Security-Policy that forbids inline code and other origins. Every piece of text that
// comes from the API is put into the page with textContent (the `h` helper below); nothing is
// ever parsed as HTML.
//
// State lives in the URL hash (#/tenants, #/tenants/{id}/scim|users|groups|log, …/users/{user}),
// so reloading keeps the view, and in sessionStorage (the admin token, the "Acting as" choice per
// tenant), so closing the tab forgets the token.
//
// Two ways in: the operator's admin token (every tenant, "Acting as"), or a tenant person's
// browser session from a sign-in link the product minted (an HttpOnly cookie the page never
// sees; GET v1/session says who is signed in and hands over the anti-CSRF token). With a
// session the page is that tenant's page only, with the controls the person's role allows.
'use strict';

(() => {
  const TOKEN_KEY = 'scim-edge.adminToken';
  const ACTING_KEY = 'scim-edge.actingAs';
  // Relative to the page (/admin/): keeps working behind a gateway that mounts it elsewhere.
  const API = 'v1/';
  const BUILTIN_ROLES = [
    { name: 'user', builtin: true, permissions: [] },
    { name: 'administrator', builtin: true, permissions: ['viewUsers', 'manageScim', 'manageUsers'] },
    { name: 'system_technician', builtin: true, permissions: ['viewUsers', 'manageScim'] },
  ];
  const OPERATIONS = [
    'tenant.create', 'tenant.update',
    'scim.generate', 'scim.regenerate', 'scim.revoke', 'connection.tested', 'signIn.refused',
    'user.create', 'user.match', 'user.replace', 'user.update', 'user.delete', 'user.role', 'user.remove',
    'user.block', 'user.unblock',
    'group.create', 'group.replace', 'group.update', 'group.delete',
    'session.link', 'session.start', 'session.refused', 'session.end', 'session.revoke',
  ];
  // Roles by the names people know them by; extra roles are shown from their id.
  const ROLE_LABELS = { user: 'User', administrator: 'Administrator', system_technician: 'System Technician' };
  const roleLabel = (name) => ROLE_LABELS[name]
    || String(name || '').split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
  // Why a sign-in link did not work (/admin/#/link/{code}).
  const LINK_PROBLEMS = {
    expired: ['This sign-in link has expired', 'Sign-in links work for a few minutes only.'],
    used: ['This sign-in link was already used', 'Each sign-in link signs in once.'],
    invalid: ['This sign-in link is not valid', 'It may be incomplete, revoked, or already used by a session that has ended.'],
    refused: ['This sign-in link cannot sign you in', 'Its user was removed or disabled since it was made.'],
  };
  // What an administrator does about a refused sign-in (lastRefusedReason, in the API's words).
  const REFUSAL_HINT = {
    'wrong token': 'The Secret Token in Entra is not this connection\'s: paste the Authorization Header value '
      + 'of the latest generated configuration (regenerate if it is lost).',
    'no token sent': 'The request carried no Secret Token: fill in Secret Token in Entra\'s Admin Credentials.',
    'token expired': 'Generate a new configuration and paste its URL and Authorization Header value into Entra.',
    'SCIM turned off by a plan change': 'SCIM needs the Advanced plan; after moving back, generate a new configuration.',
    'too many requests (rate limit)': 'Entra sent more requests than the rate limit allows; it retries by itself.',
  };
  const PERMISSION_TEXT = {
    viewUsers: 'view users and the log',
    manageScim: 'manage SCIM',
    manageUsers: 'change roles and remove users',
  };
  const LOG_PAGE = 50;

  // ---------------------------------------------------------------------------------------
  // DOM helpers

  /** The element with `data-testid="id"` (every element the code touches has one). */
  const $ = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

  /** createElement with attributes and children; strings become text nodes, never markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) el.dataset[dk] = String(dv);
      }
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'testid') el.setAttribute('data-testid', v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const show = (el, on = true) => { el.hidden = !on; };

  function fmtTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  /** A <time> element, or `fallback` text when there is no time. */
  function timeEl(iso, fallback) {
    if (!iso) return h('span', { class: 'muted', text: fallback });
    return h('time', { datetime: iso, title: iso, text: fmtTime(iso) });
  }

  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString() : '—');

  function badge(text, kind, testid) {
    return h('span', { class: `badge badge-${kind}`, testid, text });
  }

  // ---------------------------------------------------------------------------------------
  // State

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    // The browser session of a tenant person (GET v1/session), or null for the operator.
    session: null,
    // The secret just generated is on screen (leaving the page asks first).
    secretShown: false,
    groups: { startIndex: 1, count: 25 },
    roles: BUILTIN_ROLES,
    tenantId: null,
    tenant: null,
    tab: 'scim',
    acting: null, // {id, userName, role, state} or null for the operator
    candidates: [],
    // scan: a filtered list's place ({from, next, back: [earlier froms]}), null when unfiltered.
    users: { startIndex: 1, count: 25, total: 0, scan: null },
    log: { next: null, shown: 0 },
    // Bumped on every navigation: answers to requests of an older view are dropped.
    seq: 0,
    // A message for the view being navigated to (navigation clears the banners first).
    flash: null,
  };

  /**
   * A new navigation or reload: answers to older requests are dropped from now on. The counter
   * and the last finished load are mirrored on <body> (data-seq, data-loaded) so tests can wait
   * for the load an action started instead of guessing with sleeps.
   */
  function bump() {
    state.seq += 1;
    document.body.dataset.seq = String(state.seq);
    return state.seq;
  }
  function loaded(seq) {
    if (seq === state.seq) document.body.dataset.loaded = String(seq);
  }

  function actingChoices() {
    try { return JSON.parse(sessionStorage.getItem(ACTING_KEY) || '{}') || {}; } catch { return {}; }
  }
  function saveActing(tenantId, userId) {
    const all = actingChoices();
    if (userId) all[tenantId] = userId; else delete all[tenantId];
    sessionStorage.setItem(ACTING_KEY, JSON.stringify(all));
  }

  // ---------------------------------------------------------------------------------------
  // The API

  class ApiError extends Error {
    constructor(status, detail, body) {
      super(detail);
      this.status = status;
      this.detail = detail;
      this.body = body;
    }
  }

  /**
   * One admin API call. `tenant: true` marks a call about the current tenant: it then carries
   * `X-Acting-User` when someone is chosen under "Acting as". Calls about no tenant (the roles,
   * the tenant list) and the operator's own look-ups (`tenant: false`) never do.
   */
  async function api(method, path, { body, tenant = false, token = state.token } = {}) {
    const headers = { Accept: 'application/json' };
    const session = state.session && !token;
    if (session) {
      // The cookie authenticates; changes carry the anti-CSRF token.
      if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = state.session.csrfToken;
    } else {
      headers.Authorization = `Bearer ${token}`;
    }
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (tenant && state.acting && !session) headers['X-Acting-User'] = state.acting.id;
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: session ? 'same-origin' : 'omit',
        redirect: 'error',
      });
    } catch (e) {
      throw new ApiError(0, `The server cannot be reached (${e.message}).`, null);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const detail = data && typeof data.detail === 'string' && data.detail
        ? data.detail
        : `${res.status} ${res.statusText || 'error'}`.trim();
      const err = new ApiError(res.status, detail, data);
      if (res.status === 401 && session) sessionEnded(detail);
      else if (res.status === 401 && token === state.token && state.token) signOut(`The admin token was rejected: ${detail}`);
      throw err;
    }
    return { status: res.status, data };
  }

  const enc = encodeURIComponent;
  const tenantPath = (sub = '') => `tenants/${enc(state.tenantId)}${sub}`;
  const tapi = (method, sub, opts = {}) => api(method, tenantPath(sub), { ...opts, tenant: true });

  // ---------------------------------------------------------------------------------------
  // Banners and the confirm dialog

  function clearMessages() {
    show($('error-banner'), false);
    show($('notice'), false);
  }

  function showError(err, what) {
    const status = err instanceof ApiError ? err.status : 0;
    let title = what ? `${what} failed` : 'Request failed';
    if (status === 403 && state.session) title = `Not allowed for your role (${roleLabel(state.session.role)})`;
    else if (status === 403 && state.acting) title = `Forbidden for ${state.acting.userName} (${state.acting.role})`;
    else if (status === 403) title = 'Forbidden';
    if (status) title += ` · ${status}`;
    $('error-title').textContent = title;
    $('error-detail').textContent = err instanceof ApiError ? err.detail : String(err && err.message || err);
    const banner = $('error-banner');
    banner.dataset.status = String(status);
    show(banner, true);
    show($('notice'), false);
  }

  function notify(text) {
    $('notice-text').textContent = text;
    show($('notice'), true);
  }

  /** A modal confirm; resolves true when the user chose the (destructive) action. */
  function confirmDialog({ title, text, ok }) {
    const dlg = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = ok;
    dlg.returnValue = '';
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
      dlg.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ---------------------------------------------------------------------------------------
  // Navigation

  function parseHash() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch { return p; }
    });
    if (parts[0] === 'tenants' && parts[1]) {
      const tab = ['scim', 'users', 'groups', 'log'].includes(parts[2]) ? parts[2] : 'scim';
      const item = (tab === 'users' || tab === 'groups') && parts[3] ? parts[3] : null;
      return { view: 'tenant', tenantId: parts[1], tab, item };
    }
    if (parts[0] === 'link') return { view: 'link', problem: parts[1] || 'invalid' };
    return { view: 'tenants' };
  }

  const tenantHash = (id, tab) => `#/tenants/${enc(id)}/${tab}`;

  function setView(name) {
    const changed = document.body.dataset.screen !== name;
    for (const v of document.querySelectorAll('[data-view]')) show(v, v.dataset.view === name);
    show($('session'), name !== 'signin' && name !== 'link');
    document.body.dataset.screen = name;
    // Keyboard and screen-reader users land on the new view's heading.
    if (changed) {
      const heading = document.querySelector(`[data-view="${name}"] h1`);
      if (heading) {
        if (!heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1');
        heading.focus({ preventScroll: true });
      }
    }
  }

  async function route() {
    const seq = bump();
    clearMessages();
    if (state.flash) {
      notify(state.flash);
      state.flash = null;
    }
    const r = parseHash();
    if (state.session) {
      await routeSession(r, seq);
      return;
    }
    if (!state.token) {
      if (r.view === 'link') {
        showLinkProblem(LINK_PROBLEMS[r.problem] || LINK_PROBLEMS.invalid, null);
      } else {
        setView('signin');
        document.title = 'Sign in · scim-edge admin';
        $('signin-token').focus();
      }
      loaded(seq);
      return;
    }
    if (r.view === 'tenant') {
      setView('tenant');
      await openTenant(r.tenantId, r.tab, seq, r.item);
    } else {
      setView('tenants');
      document.title = 'Tenants · scim-edge admin';
      await loadTenants(seq);
    }
  }

  // ---------------------------------------------------------------------------------------
  // A tenant person's session (from a sign-in link)

  const can = (permission) => !state.session || (state.session.permissions || []).includes(permission);

  /** Reads the browser session, if any (the cookie is HttpOnly: only the API can tell). */
  async function loadSession() {
    try {
      const res = await fetch(`${API}session`, {
        headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store', redirect: 'error',
      });
      if (!res.ok) return null;
      return await res.json();
    } catch {
      return null;
    }
  }

  function setReturnLink(el) {
    const url = state.session && state.session.returnUrl;
    if (url && /^https?:\/\//.test(url)) el.href = url;
    show(el, Boolean(url && /^https?:\/\//.test(url)));
  }

  function renderSessionChrome() {
    const s = state.session;
    document.body.classList.toggle('tenant-session', Boolean(s));
    if (!s) return;
    const who = (s.user && (s.user.displayName || s.user.userName)) || 'you';
    $('session-label').textContent = `${who} · ${roleLabel(s.role)} · ${s.tenantName || s.tenant}`;
    $('brand').href = tenantHash(s.tenant, 'scim');
    setReturnLink($('return-link'));
  }

  async function routeSession(r, seq) {
    const s = state.session;
    renderSessionChrome();
    if (!can('viewUsers')) {
      setView('norole');
      document.title = 'Role needed · scim-edge';
      const who = (s.user && (s.user.displayName || s.user.userName)) || 'You';
      $('norole-text').textContent = `${who} is signed in to ${s.tenantName || s.tenant} with the `
        + `${roleLabel(s.role)} role. SCIM provisioning and the users of your organization are managed by `
        + 'Administrators and System Technicians.';
      setReturnLink($('norole-return'));
      loaded(seq);
      return;
    }
    if (r.view !== 'tenant' || r.tenantId !== s.tenant) {
      location.replace(tenantHash(s.tenant, r.tab || 'scim'));
      loaded(seq);
      return;
    }
    setView('tenant');
    await openTenant(r.tenantId, r.tab, seq, r.item);
  }

  function showLinkProblem([title, text], returnUrl) {
    setView('link');
    document.title = `${title} · scim-edge`;
    $('link-title').textContent = title;
    $('link-text').textContent = text;
    const back = $('link-return');
    if (returnUrl) back.href = returnUrl;
    show(back, Boolean(returnUrl));
  }

  /** The session ended (signed out, expired, revoked, or the user lost access). */
  function sessionEnded(detail) {
    const returnUrl = state.session && state.session.returnUrl;
    state.session = null;
    state.tenantId = null;
    state.tenant = null;
    hideSecret();
    bump();
    clearMessages();
    renderSessionChrome();
    showLinkProblem(['You are signed out', detail || 'Your session has ended.'], returnUrl);
  }

  async function signOutSession() {
    try {
      await api('DELETE', 'session');
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) {
        showError(e, 'Signing out');
        return;
      }
    }
    if (state.session) sessionEnded('You signed out. Open the SCIM settings from your product to sign in again.');
  }

  // ---------------------------------------------------------------------------------------
  // Sign in / out

  async function signIn(ev) {
    ev.preventDefault();
    const input = $('signin-token');
    const token = input.value.trim();
    const error = $('signin-error');
    show(error, false);
    if (!token) return;
    const btn = $('signin-submit');
    btn.disabled = true;
    try {
      await api('GET', 'tenants', { token });
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = '';
      await loadRoles();
      if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/tenants';
      else await route();
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status
        ? `${e.detail} (HTTP ${e.status})`
        : (e.detail || String(e));
      show(error, true);
      input.select();
    } finally {
      btn.disabled = false;
    }
  }

  function signOut(reason) {
    state.token = null;
    state.tenantId = null;
    state.tenant = null;
    state.acting = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ACTING_KEY);
    hideSecret();
    bump();
    setView('signin');
    const error = $('signin-error');
    error.textContent = reason || '';
    show(error, Boolean(reason));
    clearMessages();
    $('signin-token').focus();
  }

  async function loadRoles() {
    try {
      const { data } = await api('GET', 'roles');
      if (data && Array.isArray(data.roles) && data.roles.length) state.roles = data.roles;
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) state.roles = BUILTIN_ROLES;
    }
    const filter = $('users-role');
    const keep = filter.value;
    filter.replaceChildren(h('option', { value: '', text: 'All' }),
      ...state.roles.map((r) => h('option', { value: r.name, text: r.name })));
    filter.value = state.roles.some((r) => r.name === keep) ? keep : '';
  }

  // ---------------------------------------------------------------------------------------
  // Tenants

  function scimBadge(t) {
    if (t.scimOff) {
      const b = badge(t.plan === 'advanced' ? 'Off' : 'Off (plan)', 'warn', 'tenant-scim');
      b.title = t.scimOff.detail || '';
      return b;
    }
    if (!t.scim) return badge('Off', 'neutral', 'tenant-scim');
    if (t.scim.expired) return badge('Expired', 'danger', 'tenant-scim');
    return badge('On', 'ok', 'tenant-scim');
  }

  async function loadTenants(seq) {
    const body = $('tenants-body');
    body.setAttribute('aria-busy', 'true');
    try {
      const { data } = await api('GET', 'tenants');
      if (seq !== state.seq) return;
      const tenants = (data && data.tenants) || [];
      body.replaceChildren(...tenants.map((t) => h('tr', { testid: 'tenant-row', dataset: { tenantId: t.id } },
        h('td', {},
          h('a', { href: tenantHash(t.id, 'scim'), class: 'strong', testid: 'tenant-link', text: t.name || t.id }),
          h('div', { class: 'muted small mono', text: t.id })),
        h('td', {}, badge(t.plan, t.plan === 'advanced' ? 'info' : 'neutral', 'tenant-plan-cell')),
        h('td', {}, scimBadge(t)),
        h('td', { class: 'num', testid: 'tenant-active', text: fmtNum(t.users && t.users.active) }),
        h('td', { class: 'num', testid: 'tenant-disabled', text: fmtNum(t.users && t.users.disabled) }))));
      show($('tenants-empty'), tenants.length === 0);
    } catch (e) {
      if (seq === state.seq) showError(e, 'Loading the tenants');
    } finally {
      body.setAttribute('aria-busy', 'false');
      loaded(seq);
    }
  }

  function planFrom(select, other) {
    return select.value === 'other' ? other.value.trim() : select.value;
  }

  function setPlanControls(select, other, otherField, plan) {
    if (plan === 'advanced' || plan === 'basic') {
      select.value = plan;
      other.value = '';
      show(otherField, false);
    } else {
      select.value = 'other';
      other.value = plan || '';
      show(otherField, true);
    }
  }

  async function createTenant(ev) {
    ev.preventDefault();
    clearMessages();
    const id = $('create-tenant-id').value.trim();
    const name = $('create-tenant-name').value.trim();
    const plan = planFrom($('create-tenant-plan'), $('create-tenant-plan-other'));
    const adminUserName = $('create-tenant-admin-username').value.trim();
    const adminDisplayName = $('create-tenant-admin-displayname').value.trim();
    if (!plan) {
      showError(new ApiError(0, 'Enter the name of the plan.'), 'Creating the tenant');
      $('create-tenant-plan-other').focus();
      return;
    }
    const body = { name, plan };
    if (adminUserName) body.admin = { userName: adminUserName, ...(adminDisplayName ? { displayName: adminDisplayName } : {}) };
    const btn = $('create-tenant-submit');
    btn.disabled = true;
    try {
      // PUT creates or updates: refuse to overwrite an existing tenant from the "create" form.
      const exists = await api('GET', `tenants/${enc(id)}`).then(() => true, (e) => {
        if (e instanceof ApiError && e.status === 404) return false;
        throw e;
      });
      if (exists) throw new ApiError(409, `A tenant with the id "${id}" already exists.`);
      await api('PUT', `tenants/${enc(id)}`, { body });
      ev.target.reset();
      show($('create-tenant-plan-other-field'), false);
      state.flash = `Tenant "${name}" created${adminUserName ? ` with ${adminUserName} as its administrator` : ''}.`;
      location.hash = tenantHash(id, 'scim');
    } catch (e) {
      showError(e, 'Creating the tenant');
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // One tenant: header, "Acting as", tabs

  async function openTenant(id, tab, seq, item = null) {
    const switched = id !== state.tenantId;
    if (switched) {
      state.tenantId = id;
      state.tenant = null;
      state.acting = null;
      state.candidates = [];
      state.users.startIndex = 1;
      state.groups.startIndex = 1;
      hideSecret();
      renderTenantHead();
    }
    // The secret stays on its panel while the person looks at other tabs (it is lost only by
    // "I have copied them", leaving the tenant, or leaving the page, which asks first).
    const tabChanged = tab !== state.tab;
    state.tab = tab;
    state.item = item;
    for (const t of document.querySelectorAll('[data-tab]')) {
      const on = t.dataset.tab === tab;
      t.href = tenantHash(id, t.dataset.tab);
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      t.classList.toggle('active', on);
    }
    for (const p of document.querySelectorAll('[data-panel]')) show(p, p.dataset.panel === tab);
    const tabTitle = { scim: 'SCIM Provisioning', users: 'Users', groups: 'Groups', log: 'Provisioning log' }[tab];
    const where = state.session ? (state.session.tenantName || id) : id;
    document.title = `${tabTitle} · ${where} · scim-edge`;
    if (tabChanged && document.activeElement && document.activeElement.getAttribute('role') !== 'tab') {
      $('tenant-heading').focus({ preventScroll: true });
    }
    await loadTab(seq);
  }

  async function loadTab(seq = state.seq) {
    const panel = document.querySelector(`[data-panel="${state.tab}"]`);
    panel.dataset.state = 'loading';
    panel.setAttribute('aria-busy', 'true');
    let ok = false;
    // Who one can act as changes with every SCIM cycle: re-read it with each section.
    if (!state.session) await loadCandidates(seq);
    if (seq !== state.seq) return;
    try {
      // The header's data (name, plan, counts) comes with the tenant, fetched as the acting user.
      await loadTenant(seq);
      if (seq !== state.seq) return;
      if (state.tab === 'users') await loadUsers(seq);
      else if (state.tab === 'groups') await loadGroups(seq);
      else if (state.tab === 'log') await loadLog(seq, false);
      ok = true;
    } catch (e) {
      if (seq === state.seq) {
        const what = {
          scim: 'Opening SCIM Provisioning', users: 'Loading the users', groups: 'Loading the groups',
          log: 'Loading the provisioning log',
        }[state.tab];
        showError(e, what);
        renderForbidden(panel, e);
      }
    } finally {
      if (seq === state.seq) {
        panel.dataset.state = ok ? 'ready' : 'error';
        panel.setAttribute('aria-busy', 'false');
        loaded(seq);
      }
    }
  }

  /** The panel's content is hidden and replaced by one line when the API refused it. */
  function renderForbidden(panel, e) {
    let msg = panel.querySelector('.panel-error');
    if (!msg) {
      msg = h('p', { class: 'panel-error', testid: 'panel-error' });
      panel.prepend(msg);
    }
    msg.textContent = e instanceof ApiError && e.status === 403 && state.session
      ? `Your role (${roleLabel(state.session.role)}) cannot open this section.`
      : e instanceof ApiError && e.status === 403
      ? `Not available when acting as ${state.acting ? state.acting.userName : 'this user'}: ${e.detail}`
      : `Could not load this section: ${e instanceof ApiError ? e.detail : e}`;
  }

  function clearPanelError(panel) {
    const msg = panel.querySelector('.panel-error');
    if (msg) msg.remove();
  }

  async function loadTenant(seq) {
    const panel = document.querySelector(`[data-panel="${state.tab}"]`);
    try {
      const { data } = await tapi('GET', '');
      if (seq !== state.seq) return;
      state.tenant = data;
      clearPanelError(panel);
    } catch (e) {
      if (seq === state.seq) {
        state.tenant = null;
        renderTenantHead();
        renderScim();
      }
      throw e;
    }
    renderTenantHead();
    renderScim();
  }

  function renderTenantHead() {
    const t = state.tenant;
    $('crumb-tenant').textContent = t ? t.name : state.tenantId;
    $('tenant-name').textContent = t ? t.name : state.tenantId;
    $('tenant-id').textContent = state.tenantId || '';
    const plan = $('tenant-plan');
    plan.textContent = t ? `${t.plan} plan` : '';
    plan.className = `badge ${t && t.plan === 'advanced' ? 'badge-info' : 'badge-neutral'}`;
    show(plan, Boolean(t));
    renderActing();
  }

  /** The people of the tenant one can act as: the operator's own look-up, not the acting user's. */
  async function loadCandidates(seq) {
    try {
      const { data } = await api('GET', `${tenantPath('/users')}?startIndex=1&count=100`);
      if (seq !== state.seq) return;
      state.candidates = (data && data.users) || [];
    } catch (e) {
      if (seq !== state.seq) return;
      state.candidates = [];
      if (!(e instanceof ApiError) || e.status !== 404) showError(e, 'Loading the users to act as');
    }
    const wanted = actingChoices()[state.tenantId];
    const found = wanted && state.candidates.find((u) => u.id === wanted);
    if (wanted && !found) saveActing(state.tenantId, null);
    state.acting = found || null;
    renderActing();
  }

  function roleOf(name) {
    return state.roles.find((r) => r.name === name);
  }

  function renderActing() {
    show($('acting-box'), !state.session);
    show($('crumbs'), !state.session);
    if (state.session) return;
    const sel = $('acting-as');
    const opts = [h('option', { value: '', text: 'Operator (admin token)' })];
    for (const u of state.candidates) {
      const disabled = u.state === 'disabled' ? ', disabled' : '';
      opts.push(h('option', { value: u.id, text: `${u.userName} (${u.role}${disabled})` }));
    }
    sel.replaceChildren(...opts);
    sel.value = state.acting ? state.acting.id : '';
    const hint = $('acting-hint');
    const head = document.querySelector('.tenant-head');
    if (!state.acting) {
      hint.textContent = 'Calls carry only the admin token: everything is allowed.';
      head.classList.remove('acting-user');
      return;
    }
    const role = roleOf(state.acting.role);
    const perms = role ? role.permissions.map((p) => PERMISSION_TEXT[p] || p) : [];
    hint.textContent = `Calls send X-Acting-User. Role ${state.acting.role}: ${
      perms.length ? `may ${perms.join(', ')}` : 'no admin permissions'}. The server decides.`;
    head.classList.add('acting-user');
  }

  async function changeActing() {
    const id = $('acting-as').value;
    state.acting = state.candidates.find((u) => u.id === id) || null;
    saveActing(state.tenantId, state.acting && state.acting.id);
    renderActing();
    const seq = bump();
    clearMessages();
    hideSecret();
    await loadTab(seq);
  }

  // ---------------------------------------------------------------------------------------
  // Settings › Security › SCIM Provisioning

  function renderScim() {
    const t = state.tenant;
    const grid = $('scim-status').parentElement;
    show(grid, Boolean(t));
    const off = t && t.scimOff;
    show($('scim-off'), Boolean(off));
    $('scim-off-detail').textContent = off ? off.detail || 'SCIM provisioning is off for this tenant.' : '';
    if (!t) return;
    const c = t.scim;
    show($('scim-none'), !c);
    show($('scim-needs-plan'), t.plan !== 'advanced');
    show($('scim-props'), Boolean(c));
    show($('scim-generate'), !c);
    show($('scim-regenerate'), Boolean(c));
    show($('scim-revoke'), Boolean(c));
    $('scim-generate').disabled = t.plan !== 'advanced';
    $('scim-regenerate').disabled = t.plan !== 'advanced';
    if (c) {
      $('scim-url').textContent = c.url;
      $('scim-created').replaceChildren(timeEl(c.createdAt, '—'));
      const exp = $('scim-expires');
      exp.replaceChildren(timeEl(c.expiresAt, 'Never'));
      if (c.expired) exp.append(' ', badge('Expired', 'danger', 'scim-expired'));
      $('scim-last-used').replaceChildren(timeEl(c.lastUsedAt, 'Never'));
      $('scim-last-used').title = 'The last request that signed in with this URL and token (to the minute).';
      const refused = $('scim-last-refused');
      if (c.lastRefusedAt) {
        const hint = REFUSAL_HINT[c.lastRefusedReason];
        refused.replaceChildren(timeEl(c.lastRefusedAt, '—'), `, ${c.lastRefusedReason || 'refused'}`,
          hint ? h('div', { class: 'muted small', testid: 'scim-last-refused-hint', text: hint }) : '');
      } else {
        refused.replaceChildren('None');
      }
      $('scim-requests').textContent = fmtNum(c.requests);
      $('scim-requests').title = 'Writes, failures, Test Connection and the first request are counted exactly; '
        + 'other successful reads are sampled (one in eight counts eight).';
      const fail = $('scim-failures');
      fail.textContent = fmtNum(c.failures);
      fail.classList.toggle('text-danger', Boolean(c.failures));
    }
    // Changing the tenant is an Administrator's; the plan is the operator's.
    show($('tenant-settings-form'), can('manageUsers'));
    $('settings-plan').disabled = Boolean(state.session);
    show($('settings-plan-hint-session'), Boolean(state.session));
    show($('settings-plan-hint'), !state.session);
    $('scim-expires-hint').textContent = t.tokenLifetimeDays
      ? `Empty: the tenant default, ${t.tokenLifetimeDays} days.`
      : 'Empty: the token does not expire (no tenant default).';
    // The settings form shows what the server has, unless the user is editing it.
    const form = $('tenant-settings-form');
    if (!form.contains(document.activeElement)) {
      $('settings-name').value = t.name || '';
      setPlanControls($('settings-plan'), $('settings-plan-other'), $('settings-plan-other-field'), t.plan);
      $('settings-lifetime').value = t.tokenLifetimeDays == null ? '' : String(t.tokenLifetimeDays);
    }
  }

  function hideSecret() {
    for (const id of ['secret-url', 'secret-token', 'secret-auth-header']) $(id).value = '';
    for (const b of document.querySelectorAll('[data-reveal]')) setRevealed(b, false);
    show($('scim-secret'), false);
    state.secretShown = false;
  }

  function showSecret(conn) {
    $('secret-url').value = conn.url || '';
    $('secret-token').value = conn.token || '';
    $('secret-auth-header').value = conn.authorizationHeader || (conn.token ? `Bearer ${conn.token}` : '');
    for (const b of document.querySelectorAll('[data-reveal]')) setRevealed(b, false);
    show($('secret-http-warning'), /^http:\/\//i.test(conn.url || ''));
    show($('scim-secret'), true);
    state.secretShown = true;
    $('scim-secret').scrollIntoView({ block: 'nearest' });
    $('copy-url').focus();
  }

  /** The mask of a secret field: shown as dots until "Show". */
  function setRevealed(button, on) {
    const input = document.getElementById(button.dataset.reveal);
    input.type = on ? 'text' : 'password';
    button.textContent = on ? 'Hide' : 'Show';
    button.setAttribute('aria-pressed', String(on));
    const label = button.getAttribute('aria-label') || '';
    button.setAttribute('aria-label', label.replace(/^(Show|Hide)/, on ? 'Hide' : 'Show'));
  }

  async function generate(regenerate) {
    clearMessages();
    if (regenerate) {
      const ok = await confirmDialog({
        title: 'Regenerate the SCIM configuration?',
        text: 'A new Tenant URL and Secret Token replace the current ones, which stop working at once: '
          + 'the existing Microsoft Entra ID connection fails (401) until you paste the new values into '
          + 'Entra (Provisioning › Admin Credentials).',
        ok: 'Regenerate',
      });
      if (!ok) return;
    }
    const daysInput = $('scim-expires-days');
    const days = daysInput.value.trim();
    if (days && !(Number.isInteger(Number(days)) && Number(days) > 0)) {
      showError(new ApiError(0, 'The token lifetime must be a whole number of days.'), 'Generating');
      daysInput.focus();
      return;
    }
    const btn = $(regenerate ? 'scim-regenerate' : 'scim-generate');
    btn.disabled = true;
    const seq = state.seq;
    try {
      const { data } = await tapi('POST', '/scim', days ? { body: { expiresInDays: Number(days) } } : {});
      if (seq !== state.seq) return;
      daysInput.value = '';
      showSecret(data);
      notify(regenerate || data.regenerated
        ? 'New SCIM configuration generated. The previous URL and token no longer work.'
        : 'SCIM configuration generated.');
      await loadTenant(seq).catch((e) => showError(e, 'Reloading the tenant'));
    } catch (e) {
      showError(e, regenerate ? 'Regenerating the SCIM configuration' : 'Generating the SCIM configuration');
    } finally {
      btn.disabled = false;
      if (state.tenant) renderScim();
    }
  }

  async function revoke() {
    clearMessages();
    const ok = await confirmDialog({
      title: 'Turn off SCIM provisioning?',
      text: 'The Tenant URL and Secret Token stop working at once: Microsoft Entra ID\'s provisioning job '
        + 'gets 401 and will be quarantined. Users already provisioned stay as they are.',
      ok: 'Turn off SCIM',
    });
    if (!ok) return;
    const seq = state.seq;
    try {
      await tapi('DELETE', '/scim');
      hideSecret();
      notify('SCIM provisioning is off for this tenant.');
      await loadTenant(seq).catch((e) => showError(e, 'Reloading the tenant'));
    } catch (e) {
      showError(e, 'Turning off SCIM');
    }
  }

  async function saveSettings(ev) {
    ev.preventDefault();
    clearMessages();
    const t = state.tenant;
    if (!t) return;
    const plan = planFrom($('settings-plan'), $('settings-plan-other'));
    if (!plan) {
      showError(new ApiError(0, 'Enter the name of the plan.'), 'Saving');
      return;
    }
    const lifetime = $('settings-lifetime').value.trim();
    if (lifetime && !(Number.isInteger(Number(lifetime)) && Number(lifetime) > 0)) {
      showError(new ApiError(0, 'The token lifetime must be a whole number of days, or empty.'), 'Saving');
      return;
    }
    if (t.plan === 'advanced' && plan !== 'advanced' && t.scim) {
      const ok = await confirmDialog({
        title: `Move to the "${plan}" plan?`,
        text: 'SCIM provisioning needs the Advanced plan: the SCIM connection is turned off at once and '
          + 'Microsoft Entra ID\'s requests are refused. Moving back needs a new configuration.',
        ok: 'Change plan',
      });
      if (!ok) return;
    }
    const body = {
      name: $('settings-name').value.trim(),
      plan,
      tokenLifetimeDays: lifetime ? Number(lifetime) : null,
    };
    const btn = $('settings-save');
    btn.disabled = true;
    const seq = state.seq;
    try {
      const { data } = await tapi('PUT', '', { body });
      if (seq !== state.seq) return;
      document.activeElement.blur();
      if (data && data.id) {
        state.tenant = data;
        renderTenantHead();
        renderScim();
      } else {
        await loadTenant(seq);
      }
      notify(state.tenant && state.tenant.scimOff
        ? `Saved: the tenant is on the "${state.tenant.plan}" plan and SCIM provisioning is off.`
        : 'Saved.');
    } catch (e) {
      showError(e, 'Saving the tenant');
    } finally {
      btn.disabled = false;
    }
  }

  async function copyField(button) {
    const input = document.getElementById(button.dataset.copy);
    const label = button.textContent;
    let done = 'Copied';
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(input.value);
    } catch {
      // No clipboard API (plain http on a non-local address) or no permission: select the text
      // so Ctrl+C copies it, and try the legacy command.
      input.focus();
      input.select();
      let copied = false;
      try { copied = document.execCommand('copy'); } catch { copied = false; }
      done = copied ? 'Copied' : 'Selected: press Ctrl+C';
    }
    button.textContent = done;
    button.dataset.copied = 'true';
    setTimeout(() => { button.textContent = label; delete button.dataset.copied; }, 2000);
  }

  // ---------------------------------------------------------------------------------------
  // Users

  function userQuery() {
    const p = new URLSearchParams();
    p.set('startIndex', String(state.users.startIndex));
    p.set('count', $('users-count').value);
    for (const [k, id] of [['state', 'users-state'], ['role', 'users-role'], ['source', 'users-source'], ['q', 'users-q']]) {
      const v = $(id).value.trim();
      if (v) p.set(k, v);
    }
    if (state.users.scan && state.users.scan.from) p.set('scanFrom', String(state.users.scan.from));
    return p.toString();
  }

  /** State "Blocked": the users removed by hand, from /blocks (role, source and search do not apply). */
  const blockedView = () => $('users-state').value === 'blocked';

  async function loadUsers(seq) {
    for (const id of ['users-role', 'users-source', 'users-q']) $(id).disabled = blockedView();
    const detail = $('user-detail');
    show(detail, Boolean(state.item));
    if (state.item) await loadUserDetail(seq, state.item);
    if (blockedView()) return loadBlocks(seq);
    const { data } = await tapi('GET', `/users?${userQuery()}`);
    if (seq !== state.seq) return;
    const users = (data && data.users) || [];
    const total = (data && data.totalResults) || 0;
    const start = (data && data.startIndex) || state.users.startIndex;
    state.users.total = total;
    state.users.startIndex = start;
    state.users.count = Number($('users-count').value);
    $('users-body').replaceChildren(...users.map(userRow));
    const filtered = ['users-state', 'users-role', 'users-source', 'users-q'].some((id) => $(id).value.trim());
    $('users-empty').textContent = filtered || total > 0
      ? 'No users match.'
      : 'No users yet. Assign users to the application in Microsoft Entra ID (Users and groups) and start '
        + 'provisioning: they appear here after its next cycle, with the User role.';
    show($('users-empty'), users.length === 0);
    if (data && data.scanned) {
      // A filtered list: the server searched part of the tenant (at most 1,000 users a
      // request); "Next" searches on from where it stopped.
      const sc = data.scanned;
      const scan = state.users.scan || { from: 0, back: [] };
      scan.next = data.nextScanFrom == null ? null : data.nextScanFrom;
      state.users.scan = scan;
      const matches = `${users.length.toLocaleString()} match${users.length === 1 ? '' : 'es'}`;
      $('users-range').textContent = sc.of === 0
        ? matches
        : `${matches} in users ${(sc.from + 1).toLocaleString()}–${sc.to.toLocaleString()} of ${sc.of.toLocaleString()}`;
      if (users.length === 0 && scan.next != null) {
        $('users-empty').textContent = 'No users match here: Next searches the rest of the tenant.';
      }
      $('users-prev').disabled = scan.back.length === 0;
      $('users-next').disabled = scan.next == null;
      return;
    }
    state.users.scan = null;
    $('users-range').textContent = users.length
      ? `${start}–${start + users.length - 1} of ${total.toLocaleString()}`
      : `0 of ${total.toLocaleString()}`;
    $('users-prev').disabled = start <= 1;
    $('users-next').disabled = start + users.length > total || users.length === 0;
  }

  /** A user's detail: what Entra sent, state, role, source, groups and the user's log entries. */
  async function loadUserDetail(seq, id) {
    const [{ data: u }, { data: log }] = await Promise.all([
      tapi('GET', `/users/${enc(id)}`),
      tapi('GET', `/log?${new URLSearchParams({ user: id, count: '20' })}`),
    ]);
    if (seq !== state.seq) return;
    const a = u.attributes || {};
    const ent = a['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'] || {};
    const name = a.name ? [a.name.givenName, a.name.familyName].filter(Boolean).join(' ') || a.name.formatted : null;
    const emails = Array.isArray(a.emails) ? a.emails.map((e) => e && e.value).filter(Boolean).join(', ') : null;
    const manager = ent.manager ? (ent.manager.displayName || ent.manager.value) : null;
    const rows = [
      ['User name', u.userName], ['Display name', u.displayName], ['Name', name], ['Emails', emails],
      ['Department', ent.department], ['Manager', manager], ['externalId', u.externalId],
      ['State', u.state === 'active' ? 'Active' : 'Disabled'], ['Role', roleLabel(u.role)],
      ['Source', u.source === 'scim' ? 'SCIM (Microsoft Entra ID)' : 'Local'],
      ['Created', fmtTime(u.created)], ['Last changed', fmtTime(u.lastModified)],
    ];
    $('user-detail-title').textContent = u.displayName || u.userName;
    $('user-detail-props').replaceChildren(...rows.flatMap(([k, v]) => [
      h('dt', { text: k }), h('dd', { testid: `user-detail-${k.toLowerCase().replace(/\s+/g, '-')}`, text: v || '—' })]));
    const groups = u.groups || [];
    $('user-detail-groups').replaceChildren(...(groups.length
      ? groups.map((g) => h('li', { testid: 'user-detail-group', text: g.displayName || g.id }))
      : [h('li', { class: 'muted', text: 'In no provisioned group.' })]));
    const entries = (log && log.entries) || [];
    $('user-detail-log').replaceChildren(...(entries.length
      ? entries.map((e) => h('li', { testid: 'user-detail-log-entry' },
        timeEl(e.time, '—'), ' ', h('code', { text: e.operation }), ` by ${actorText(e.actor)}`,
        e.outcome === 'success' ? '' : ` — failed (${e.status}): ${e.detail || ''}`))
      : [h('li', { class: 'muted', text: 'No entries for this user.' })]));
    $('user-detail-close').href = tenantHash(state.tenantId, 'users');
    $('user-detail').focus({ preventScroll: false });
  }

  async function loadBlocks(seq) {
    const p = new URLSearchParams({ startIndex: String(state.users.startIndex), count: $('users-count').value });
    const { data } = await tapi('GET', `/blocks?${p}`);
    if (seq !== state.seq) return;
    const blocks = (data && data.blocks) || [];
    const total = (data && data.totalResults) || 0;
    const start = (data && data.startIndex) || state.users.startIndex;
    state.users.total = total;
    state.users.startIndex = start;
    state.users.count = Number($('users-count').value);
    $('users-body').replaceChildren(...blocks.map(blockRow));
    show($('users-empty'), blocks.length === 0);
    $('users-range').textContent = blocks.length
      ? `${start}–${start + blocks.length - 1} of ${total.toLocaleString()} blocked`
      : `0 of ${total.toLocaleString()} blocked`;
    $('users-prev').disabled = start <= 1;
    $('users-next').disabled = start + blocks.length > total || blocks.length === 0;
  }

  function blockedByText(a) {
    if (!a) return '';
    if (a.type === 'user') return ` by ${a.userName || a.id}`;
    if (a.type === 'operator') return ' by the operator';
    return '';
  }

  function blockRow(b) {
    return h('tr', { testid: 'block-row', dataset: { userId: b.id, userName: b.userName, state: 'blocked' } },
      h('td', {},
        h('div', { class: 'strong', testid: 'user-username', text: b.userName }),
        b.externalId ? h('div', { class: 'muted small', text: `externalId ${b.externalId}` }) : null),
      h('td', { testid: 'user-displayname' }, b.displayName || h('span', { class: 'muted', text: '—' })),
      h('td', {},
        badge('Blocked', 'danger', 'user-state'),
        h('div', { class: 'muted small', testid: 'block-since' }, 'since ', timeEl(b.blockedAt, '—'), blockedByText(b.blockedBy))),
      h('td', {}, h('span', { class: 'muted', text: '—' })),
      h('td', {}, h('span', { class: 'muted', text: '—' })),
      h('td', { class: 'row-actions' },
        can('manageUsers') ? h('button', {
          type: 'button', class: 'btn btn-small', testid: 'block-unblock',
          'aria-label': `Unblock ${b.userName}`, text: 'Unblock', onclick: () => unblock(b),
        }) : null));
  }

  async function unblock(b) {
    clearMessages();
    const ok = await confirmDialog({
      title: `Unblock ${b.userName}?`,
      text: 'Microsoft Entra ID may then create this user again (with the base role) on its next cycle, '
        + 'if the user is still assigned to the application there.',
      ok: 'Unblock',
    });
    if (!ok) return;
    const seq = state.seq;
    try {
      await tapi('DELETE', `/blocks/${enc(b.id)}`);
      notify(`${b.userName} is no longer blocked.`);
      if (seq !== state.seq) return;
      await loadUsers(seq);
    } catch (e) {
      showError(e, `Unblocking ${b.userName}`);
    }
  }

  const isSelf = (u) => Boolean(state.session && state.session.user && state.session.user.id === u.id);

  /**
   * The role cell: the role by name, and for who may change it a selector with an explicit
   * "Change" button and a confirm, so arrowing through the options saves nothing.
   */
  function roleCell(u) {
    if (!can('manageUsers') || isSelf(u)) {
      return h('span', { testid: 'user-role-name', text: roleLabel(u.role) });
    }
    const names = state.roles.map((r) => r.name);
    if (!names.includes(u.role)) names.push(u.role);
    const sel = h('select', { testid: 'user-role', 'aria-label': `Role of ${u.userName}` },
      names.map((n) => h('option', { value: n, text: roleLabel(n) })));
    sel.value = u.role;
    sel.dataset.current = u.role;
    const apply = h('button', {
      type: 'button', class: 'btn btn-small', testid: 'user-role-apply', disabled: true,
      'aria-label': `Change the role of ${u.userName}`, text: 'Change',
    });
    sel.addEventListener('change', () => { apply.disabled = sel.value === sel.dataset.current; });
    apply.addEventListener('click', () => changeRole(u, sel, apply));
    return h('div', { class: 'role-cell' }, sel, apply);
  }

  function userRow(u) {
    return h('tr', { testid: 'user-row', dataset: { userId: u.id, userName: u.userName, state: u.state, role: u.role } },
      h('td', {},
        h('a', {
          class: 'strong', testid: 'user-username', text: u.userName,
          href: `${tenantHash(state.tenantId, 'users')}/${enc(u.id)}`, 'aria-label': `Details of ${u.userName}`,
        }),
        u.email && u.email !== u.userName ? h('div', { class: 'muted small', text: u.email }) : null),
      h('td', { testid: 'user-displayname' }, u.displayName || h('span', { class: 'muted', text: '—' })),
      h('td', {}, badge(u.state === 'active' ? 'Active' : 'Disabled', u.state === 'active' ? 'ok' : 'neutral', 'user-state')),
      h('td', {}, roleCell(u)),
      h('td', {}, badge(u.source === 'scim' ? 'SCIM' : 'Local', u.source === 'scim' ? 'info' : 'neutral', 'user-source')),
      h('td', { class: 'row-actions' },
        can('manageUsers') && !isSelf(u) ? h('button', {
          type: 'button', class: 'btn btn-small btn-danger-quiet', testid: 'user-remove',
          'aria-label': `Remove ${u.userName}`, text: 'Remove', onclick: () => removeUser(u),
        }) : null));
  }

  async function changeRole(u, sel, apply) {
    clearMessages();
    const role = sel.value;
    const before = sel.dataset.current;
    if (role === before) return;
    const ok = await confirmDialog({
      title: `Change the role of ${u.userName}?`,
      text: `From ${roleLabel(before)} to ${roleLabel(role)}. ${role === 'user'
        ? 'The user can then no longer manage SCIM or users here.'
        : 'The role decides what the user may do on this page.'}`,
      ok: `Make ${roleLabel(role)}`,
    });
    if (!ok) {
      sel.value = before;
      apply.disabled = true;
      sel.focus();
      return;
    }
    sel.disabled = true;
    apply.disabled = true;
    const seq = state.seq;
    try {
      const { data } = await tapi('PATCH', `/users/${enc(u.id)}`, { body: { role } });
      const now = (data && data.role) || role;
      sel.dataset.current = now;
      sel.value = now;
      u.role = now;
      const row = sel.closest('tr');
      if (row) row.dataset.role = now;
      notify(`${u.userName} is now ${roleLabel(now)}.`);
      if (seq === state.seq && !state.session) await refreshCandidates(seq);
    } catch (e) {
      sel.value = before;
      showError(e, `Changing the role of ${u.userName}`);
    } finally {
      sel.disabled = false;
      apply.disabled = sel.value === sel.dataset.current;
    }
  }

  async function removeUser(u) {
    clearMessages();
    const ok = await confirmDialog({
      title: `Remove ${u.userName}?`,
      text: 'The user and every trace of it are deleted at once, and the user is blocked: SCIM cannot '
        + 'create, update or re-enable it until an administrator unblocks it (State: Blocked) or it is '
        + 'deleted in Microsoft Entra ID.',
      ok: 'Remove user',
    });
    if (!ok) return;
    const seq = state.seq;
    try {
      await tapi('DELETE', `/users/${enc(u.id)}`);
      notify(`${u.userName} was removed and blocked.`);
      if (seq !== state.seq) return;
      await loadUsers(seq);
      if (!state.session) await refreshCandidates(seq);
    } catch (e) {
      showError(e, `Removing ${u.userName}`);
    }
  }

  async function refreshCandidates(seq) {
    const keep = state.acting && state.acting.id;
    await loadCandidates(seq);
    if (keep && !state.acting) notify('The user you were acting as is gone: acting as the operator again.');
  }

  async function reloadUsers(resetPage) {
    if (resetPage) {
      state.users.startIndex = 1;
      state.users.scan = null;
    }
    const seq = bump();
    clearMessages();
    await loadTab(seq);
  }

  // ---------------------------------------------------------------------------------------
  // Groups

  async function loadGroups(seq) {
    const p = new URLSearchParams({ startIndex: String(state.groups.startIndex), count: String(state.groups.count) });
    const { data } = await tapi('GET', `/groups?${p}`);
    if (seq !== state.seq) return;
    const groups = (data && data.groups) || [];
    const total = (data && data.totalResults) || 0;
    const start = (data && data.startIndex) || 1;
    $('groups-body').replaceChildren(...groups.map((g) => h('tr', { testid: 'group-row', dataset: { groupId: g.id, name: g.displayName } },
      h('td', {},
        h('a', {
          class: 'strong', testid: 'group-name', text: g.displayName || g.id,
          href: `${tenantHash(state.tenantId, 'groups')}/${enc(g.id)}`, 'aria-label': `Members of ${g.displayName || g.id}`,
        }),
        g.externalId ? h('div', { class: 'muted small', text: `externalId ${g.externalId}` }) : null),
      h('td', { class: 'num', testid: 'group-members-count', text: fmtNum(g.members) }))));
    show($('groups-empty'), groups.length === 0);
    $('groups-range').textContent = groups.length ? `${start}–${start + groups.length - 1} of ${total.toLocaleString()}` : '';
    $('groups-prev').disabled = start <= 1;
    $('groups-next').disabled = start + groups.length > total || groups.length === 0;
    const box = $('group-members');
    show(box, Boolean(state.item));
    if (!state.item) return;
    const { data: g } = await tapi('GET', `/groups/${enc(state.item)}?count=100`);
    if (seq !== state.seq) return;
    $('group-members-title').textContent = `Members of ${g.displayName || g.id}`;
    const members = g.members || [];
    $('group-members-list').replaceChildren(...(members.length
      ? members.map((m) => h('li', { testid: 'group-member' },
        h('a', { href: `${tenantHash(state.tenantId, 'users')}/${enc(m.id)}`, text: m.userName || m.id }),
        m.displayName ? h('span', { class: 'muted', text: ` ${m.displayName}` }) : null,
        m.state === 'disabled' ? h('span', { class: 'muted', text: ' (disabled)' }) : null))
      : [h('li', { class: 'muted', text: 'No members.' })]));
    $('group-members-range').textContent = g.totalResults > members.length
      ? `The first ${members.length} of ${g.totalResults} members.` : `${g.totalResults} ${g.totalResults === 1 ? 'member' : 'members'}.`;
    box.focus({ preventScroll: false });
  }

  // ---------------------------------------------------------------------------------------
  // Provisioning log

  function actorText(a) {
    if (!a) return '—';
    if (a.type === 'scim') return `SCIM client${a.connection ? ` (${String(a.connection).slice(0, 8)}…)` : ''}`;
    if (a.type === 'user') return a.userName || a.id || 'user';
    if (a.type === 'operator') return 'Operator';
    return a.type || '—';
  }

  function logRow(e) {
    const target = e.targetName || e.target;
    return h('tr', { testid: 'log-row', dataset: { seq: e.seq, operation: e.operation, outcome: e.outcome } },
      h('td', { class: 'nowrap' }, timeEl(e.time, '—')),
      h('td', { testid: 'log-actor-cell', dataset: { actor: e.actor && e.actor.type } },
        h('span', { class: `actor actor-${e.actor && e.actor.type}`, text: actorText(e.actor) })),
      h('td', {}, h('code', { testid: 'log-op', text: e.operation })),
      h('td', { testid: 'log-target' },
        target ? h('span', { title: e.target || '', text: target }) : h('span', { class: 'muted', text: '—' }),
        e.resourceType ? h('div', { class: 'muted small', text: e.resourceType }) : null),
      h('td', {}, badge(e.outcome === 'success' ? 'Success' : 'Failure', e.outcome === 'success' ? 'ok' : 'danger', 'log-outcome-badge')),
      h('td', { class: 'num', text: e.status == null ? '' : String(e.status) }),
      h('td', { class: 'detail', text: e.detail || '' }));
  }

  function logQuery(before) {
    const p = new URLSearchParams({ count: $('log-count').value || String(LOG_PAGE) });
    for (const [k, id] of [['operation', 'log-operation'], ['outcome', 'log-outcome'], ['actor', 'log-actor'], ['user', 'log-target-filter']]) {
      const v = $(id).value.trim();
      if (v) p.set(k, v);
    }
    // Whole days, in UTC (the log's times).
    if ($('log-from').value) p.set('since', `${$('log-from').value}T00:00:00.000Z`);
    if ($('log-to').value) p.set('until', `${$('log-to').value}T23:59:59.999Z`);
    if (before != null) p.set('before', String(before));
    return p.toString();
  }

  async function loadLog(seq, older) {
    const { data } = await tapi('GET', `/log?${logQuery(older ? state.log.next : null)}`);
    if (seq !== state.seq) return;
    const entries = (data && data.entries) || [];
    const rows = entries.map(logRow);
    if (older) $('log-body').append(...rows); else $('log-body').replaceChildren(...rows);
    state.log.entries = (older ? (state.log.entries || []) : []).concat(entries);
    $('log-empty').textContent = logFiltered() ? 'No entries match.'
      : 'Nothing logged yet. Generate the SCIM configuration and start provisioning in Microsoft Entra ID: '
        + 'every change it makes, and every change made here, is listed.';
    state.log.shown = (older ? state.log.shown : 0) + entries.length;
    state.log.next = data && data.next != null ? data.next : null;
    show($('log-empty'), state.log.shown === 0);
    $('log-range').textContent = `${state.log.shown.toLocaleString()} ${state.log.shown === 1 ? 'entry' : 'entries'}, newest first`;
    $('log-older').disabled = state.log.next == null || entries.length === 0;
  }

  function logFiltered() {
    return ['log-operation', 'log-outcome', 'log-actor', 'log-target-filter', 'log-from', 'log-to'].some((id) => $(id).value.trim());
  }

  /** Downloads the entries shown (with the filters applied) as CSV or JSON. */
  function exportLog(format) {
    const entries = state.log.entries || [];
    let blob;
    if (format === 'json') {
      blob = new Blob([JSON.stringify(entries, null, 2)], { type: 'application/json' });
    } else {
      const cols = ['seq', 'time', 'actor', 'operation', 'resourceType', 'target', 'targetName', 'outcome', 'status', 'detail'];
      const cell = (v) => {
        const t = v == null ? '' : String(v);
        // Quoted, and formula-looking cells defused for spreadsheets.
        return `"${(/^[=+\-@]/.test(t) ? `'${t}` : t).replace(/"/g, '""')}"`;
      };
      const lines = [cols.join(',')].concat(entries.map((e) => cols.map((c) => cell(c === 'actor' ? actorText(e.actor) : e[c])).join(',')));
      blob = new Blob([`${lines.join('\r\n')}\r\n`], { type: 'text/csv' });
    }
    const a = h('a', { href: URL.createObjectURL(blob), download: `provisioning-log-${state.tenantId}.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  async function loadOlder() {
    clearMessages();
    const btn = $('log-older');
    btn.disabled = true;
    btn.dataset.busy = 'true';
    try {
      await loadLog(state.seq, true);
    } catch (e) {
      showError(e, 'Loading older entries');
      btn.disabled = false;
    } finally {
      delete btn.dataset.busy;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Wiring

  function init() {
    $('log-operation').append(...OPERATIONS.map((o) => h('option', { value: o, text: o })));
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => (state.session ? signOutSession() : signOut()));
    $('norole-sign-out').addEventListener('click', signOutSession);
    $('link-operator').addEventListener('click', () => {
      setView('signin');
      $('signin-token').focus();
    });
    for (const b of document.querySelectorAll('[data-reveal]')) {
      b.addEventListener('click', () => setRevealed(b, b.getAttribute('aria-pressed') !== 'true'));
    }
    // The secret is shown once: leaving or reloading the page asks first.
    window.addEventListener('beforeunload', (e) => {
      if (!state.secretShown) return;
      e.preventDefault();
      e.returnValue = '';
    });
    // Tabs: arrow keys move between them (and open the one reached), Home/End to the ends.
    $('tab-scim').parentElement.addEventListener('keydown', (e) => {
      const tabs = [...document.querySelectorAll('[data-tab]')];
      const i = tabs.indexOf(document.activeElement);
      if (i < 0) return;
      let j = null;
      if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
      else if (e.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
      else if (e.key === 'Home') j = 0;
      else if (e.key === 'End') j = tabs.length - 1;
      if (j === null) return;
      e.preventDefault();
      tabs[j].focus();
      location.hash = tabs[j].getAttribute('href');
    });
    $('groups-prev').addEventListener('click', () => {
      state.groups.startIndex = Math.max(1, state.groups.startIndex - state.groups.count);
      const seq = bump(); loadTab(seq);
    });
    $('groups-next').addEventListener('click', () => {
      state.groups.startIndex += state.groups.count;
      const seq = bump(); loadTab(seq);
    });
    $('log-export-csv').addEventListener('click', () => exportLog('csv'));
    $('log-export-json').addEventListener('click', () => exportLog('json'));
    $('error-dismiss').addEventListener('click', () => show($('error-banner'), false));
    $('notice-dismiss').addEventListener('click', () => show($('notice'), false));
    $('tenants-refresh').addEventListener('click', () => route());
    $('create-tenant-form').addEventListener('submit', createTenant);
    $('create-tenant-plan').addEventListener('change', (e) => {
      show($('create-tenant-plan-other-field'), e.target.value === 'other');
      if (e.target.value === 'other') $('create-tenant-plan-other').focus();
    });
    $('settings-plan').addEventListener('change', (e) => {
      show($('settings-plan-other-field'), e.target.value === 'other');
      if (e.target.value === 'other') $('settings-plan-other').focus();
    });
    $('acting-as').addEventListener('change', changeActing);
    $('scim-generate').addEventListener('click', () => generate(false));
    $('scim-regenerate').addEventListener('click', () => generate(true));
    $('scim-revoke').addEventListener('click', revoke);
    $('scim-secret-done').addEventListener('click', () => { hideSecret(); clearMessages(); });
    $('tenant-settings-form').addEventListener('submit', saveSettings);
    for (const b of document.querySelectorAll('[data-copy]')) b.addEventListener('click', () => copyField(b));

    $('users-filters').addEventListener('submit', (e) => { e.preventDefault(); reloadUsers(true); });
    for (const id of ['users-state', 'users-role', 'users-source', 'users-count']) {
      $(id).addEventListener('change', () => reloadUsers(true));
    }
    // The search runs on Enter or "Search", not per keystroke: a filtered list scans up to
    // 1,000 of the tenant's users on the server (the filters are not indexed), so it is not run
    // for every letter.
    $('users-refresh').addEventListener('click', () => reloadUsers(false));
    $('users-prev').addEventListener('click', () => {
      const scan = state.users.scan;
      if (scan && !blockedView()) {
        scan.from = scan.back.pop() || 0;
      } else {
        state.users.startIndex = Math.max(1, state.users.startIndex - state.users.count);
      }
      reloadUsers(false);
    });
    $('users-next').addEventListener('click', () => {
      const scan = state.users.scan;
      if (scan && !blockedView()) {
        if (scan.next == null) return;
        scan.back.push(scan.from);
        scan.from = scan.next;
      } else {
        state.users.startIndex += state.users.count;
      }
      reloadUsers(false);
    });

    for (const id of ['log-operation', 'log-outcome', 'log-actor', 'log-count', 'log-from', 'log-to']) {
      $(id).addEventListener('change', () => { const seq = bump(); clearMessages(); loadTab(seq); });
    }
    $('log-refresh').addEventListener('click', () => { const seq = bump(); clearMessages(); loadTab(seq); });
    // Enter in a filter field must not submit the form (a page load); the field's change reloads.
    $('log-filters').addEventListener('submit', (e) => e.preventDefault());
    // On Enter or leaving the field (change), not per keystroke.
    $('log-target-filter').addEventListener('change', () => { const seq = bump(); clearMessages(); loadTab(seq); });
    $('log-older').addEventListener('click', loadOlder);

    window.addEventListener('hashchange', () => route());
    if (state.token) {
      loadRoles().finally(route);
    } else {
      // Opened from a sign-in link? The session (if any) decides what this page is.
      loadSession().then(async (session) => {
        state.session = session;
        if (session) await loadRoles();
        route();
      });
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
