// The console's frame: sign-in, the navigation bar and the router. Routes
// live in the URL's fragment (#/runs/42), so the server serves one page and
// a link or a reload lands on the same view.

import { session, get, ApiError } from './api.js';
import { h, fill, toast, go, here } from './ui.js';
import * as runs from './runs.js';
import * as run from './run.js';
import * as pages from './pages.js';
import * as admin from './admin.js';

// [pattern, view, who may see it ('tenant' | 'admin')]
const ROUTES = [
  [/^\/runs$/, runs.list, 'tenant'],
  [/^\/runs\/(\d+)$/, run.show, 'tenant'],
  [/^\/workflows$/, pages.workflows, 'tenant'],
  [/^\/workflows\/([^/]+)$/, pages.workflow, 'tenant'],
  [/^\/modules$/, pages.modules, 'tenant'],
  [/^\/schedules$/, pages.schedules, 'tenant'],
  [/^\/approvals$/, pages.approvals, 'tenant'],
  [/^\/audit$/, pages.audit, 'tenant'],
  [/^\/keys$/, pages.keys, 'tenant'],
  [/^\/admin\/tenants$/, admin.tenants, 'admin'],
  [/^\/admin\/tenants\/([^/]+)$/, admin.tenant, 'admin'],
  [/^\/admin\/nodes$/, admin.nodes, 'admin'],
  [/^\/admin\/audit$/, admin.audit, 'admin'],
];

const TENANT_NAV = [
  ['Runs', '#/runs'], ['Workflows', '#/workflows'], ['Modules', '#/modules'],
  ['Schedules', '#/schedules'], ['Approvals', '#/approvals'], ['Audit', '#/audit'],
];
const ADMIN_NAV = [['Tenants', '#/admin/tenants'], ['Nodes', '#/admin/nodes'], ['Audit', '#/admin/audit']];

let cleanup = null;

function frame(active) {
  const top = document.getElementById('top');
  if (!session.who) return fill(top);
  const nav = session.isAdmin() ? ADMIN_NAV : TENANT_NAV.concat(session.can('manage_keys') ? [['Keys', '#/keys']] : []);
  const who = session.isAdmin()
    ? [h('span.who-name', 'server admin')]
    : [h('span.who-name', session.who.tenant), h('span.muted', ` · ${session.who.key_id} · `), h('span.role', session.who.role)];
  fill(top,
    h('a.brand', { href: session.isAdmin() ? '#/admin/tenants' : '#/runs' }, h('img', { src: '/ui/favicon.svg', alt: '' }), 'weft'),
    h('nav', nav.map(([label, href]) => h('a', { href, class: active.startsWith(href.slice(1)) ? 'active' : null }, label))),
    h('div.who', who, h('button.link#sign-out', { onclick: signOut }, 'Sign out')));
}

function signOut() {
  session.clear();
  go('#/');
}

async function route() {
  if (cleanup) { try { cleanup(); } catch (_) { /* the old view is gone anyway */ } cleanup = null; }
  const main = document.getElementById('main');
  const { path, params } = here();
  if (!session.who) {
    frame('');
    return signIn(main);
  }
  const home = session.isAdmin() ? '/admin/tenants' : '/runs';
  if (path === '/') return go(`#${home}`);
  for (const [pattern, view, audience] of ROUTES) {
    const m = path.match(pattern);
    if (!m) continue;
    if ((audience === 'admin') !== session.isAdmin()) break;
    frame(path);
    fill(main, h('p.muted', 'Loading…'));
    try {
      cleanup = (await view(main, ...m.slice(1).map(decodeURIComponent), params)) || null;
    } catch (e) {
      fill(main, h('div.failure', h('strong', e.code || 'error'), h('div', e.message)));
    }
    return;
  }
  frame(path);
  fill(main, h('h1', 'Not found'), h('p', 'Nothing lives at ', h('code', path), '. ', h('a', { href: `#${home}` }, 'Back to the start.')));
}

function signIn(main) {
  const error = h('div.form-error', { role: 'alert' });
  const input = h('input#token', { type: 'password', name: 'token', autocomplete: 'off', required: true, placeholder: 'wk_… or the admin token' });
  const form = h('form.signin',
    h('h1', 'Sign in to weft'),
    h('p.muted', 'With an API key of your tenant (', h('code', 'weft key create'), ') or the server\'s admin token. The key stays in this tab only.'),
    h('label.field', h('span', 'API key'), input),
    error,
    h('button.primary#sign-in', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(error);
    const token = input.value.trim();
    session.token = token;
    try {
      const who = await identify();
      session.save(token, who);
      route();
    } catch (err) {
      session.token = null;
      fill(error, err.message);
    }
  });
  fill(main, form);
  input.focus();
}

// Who the token is: a tenant's key (with its role) or the admin token.
async function identify() {
  try {
    const me = await get('/v1/whoami');
    return { mode: 'tenant', ...me };
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
  }
  try {
    await get('/v1/admin/tenants');
    return { mode: 'admin' };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw new Error('This server does not know that key.');
    throw e;
  }
}

window.addEventListener('weft:signed-out', (e) => {
  session.clear();
  toast(`Signed out: ${e.detail}`, 'error');
  route();
});
window.addEventListener('hashchange', route);
session.load();
route();
