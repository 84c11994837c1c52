// The server admin's pages: tenants with their quotas and keys, the nodes
// serving the store, and the server-level audit trail.

import { get, post, call } from './api.js';
import { h, fill, badge, when, span, number, table, dialog, confirm, toast, go } from './ui.js';
import { trail } from './pages.js';

export async function tenants(main) {
  const { tenants: list } = await get('/v1/admin/tenants');
  const add = async () => {
    const made = await dialog('Add a tenant', [{ name: 'name', label: 'Name', required: true, placeholder: 'acme' }], 'Add', (v) => post('/v1/admin/tenants', { name: v.name.trim() }));
    if (made) {
      await dialog(`Tenant ${made.tenant.id}`, [{ name: 'token', label: `Its admin key ${made.api_key.key_id}: shown this once`, value: made.api_key.token }], 'Done');
      await tenants(main);
    }
  };
  fill(main,
    h('div.page-head', h('h1', 'Tenants'), h('button.primary', { dataset: { action: 'add-tenant' }, onclick: () => add().catch((e) => toast(e.message, 'error')) }, 'Add a tenant')),
    table([
      { label: 'Tenant', cell: (t) => h('a', { href: `#/admin/tenants/${encodeURIComponent(t.id)}` }, t.id) },
      { label: 'State', cell: (t) => badge(t.disabled ? 'disabled' : 'enabled') },
      { label: 'Runs at once', class: 'num', cell: (t) => number(t.quotas.max_concurrent_runs) },
      { label: 'Start rate', class: 'num', cell: (t) => `${number(t.quotas.start_rate)}/s` },
      { label: 'Retention', class: 'num', cell: (t) => `${t.quotas.retention_days} d` },
      { label: 'Since', cell: (t) => when(t.created_at) },
    ], list, (t) => go(`#/admin/tenants/${encodeURIComponent(t.id)}`), 'No tenants: add one.'));
}

export async function tenant(main, id) {
  const path = `/v1/admin/tenants/${encodeURIComponent(id)}`;
  const [t, { keys }] = await Promise.all([get(path), get(`${path}/keys`)]);
  const reload = () => tenant(main, id);
  const toggle = async () => {
    const verb = t.disabled ? 'enable' : 'disable';
    if (!t.disabled && !(await confirm(`Disable ${id}?`, 'Its keys are refused with 403 until it is enabled; its runs go on.', 'Disable'))) return;
    await post(`${path}/${verb}`);
    toast(`${id} ${verb}d.`);
    await reload();
  };
  const make = async () => {
    const made = await dialog(`A key for ${id}`, [
      { name: 'role', label: 'Role', type: 'select', options: ['viewer', 'operator', 'developer', 'admin'], value: 'viewer' },
    ], 'Make the key', (v) => post(`${path}/keys`, { role: v.role }));
    if (made) {
      await dialog('The new key', [{ name: 'token', label: `Token of ${made.key_id} (${made.role}): shown this once`, value: made.token }], 'Done');
      await reload();
    }
  };
  const revoke = (k) => async () => {
    if (!(await confirm(`Revoke ${k.key_id}?`, 'Requests with it are refused at once.', 'Revoke'))) return;
    await call('DELETE', `${path}/keys/${encodeURIComponent(k.key_id)}`);
    toast(`${k.key_id} revoked.`);
    await reload();
  };
  const guard = (f) => () => f().catch((e) => toast(e.message, 'error'));
  fill(main,
    h('div.page-head', h('h1', id, ' ', badge(t.disabled ? 'disabled' : 'enabled')),
      h('div.actions',
        h('button.secondary', { dataset: { action: 'make-key' }, onclick: guard(make) }, 'Make a key'),
        h(t.disabled ? 'button.primary' : 'button.danger', { dataset: { action: t.disabled ? 'enable' : 'disable' }, onclick: guard(toggle) }, t.disabled ? 'Enable' : 'Disable'))),
    h('h2', 'Keys'),
    table([
      { label: 'Key', cell: (k) => h('code', k.key_id) },
      { label: 'Role', cell: (k) => h('span.role', k.role) },
      { label: 'Made', cell: (k) => when(k.created_at) },
      { label: '', cell: (k) => h('button.danger.small', { dataset: { action: 'revoke' }, onclick: guard(revoke(k)) }, 'Revoke') },
    ], keys, null, 'No keys: make one.'),
    h('h2', 'Quotas'),
    table([
      { label: 'Quota', cell: ([k]) => h('code', k) },
      { label: 'Value', class: 'wide', cell: ([, v]) => (typeof v === 'object' ? JSON.stringify(v) : String(v)) },
    ], Object.entries(t.quotas)),
    h('p.muted', 'Change quotas with ', h('code', `weft tenant set ${id} …`), ' or PATCH ', h('code', path), '.'));
}

export async function nodes(main) {
  const { nodes: list } = await get('/v1/admin/nodes');
  fill(main,
    h('div.page-head', h('h1', 'Nodes')),
    table([
      { label: 'Node', cell: (n) => h('code', n.node_id) },
      { label: 'State', cell: (n) => badge(n.state) },
      { label: 'Address', cell: (n) => n.address || '—' },
      { label: 'Version', cell: (n) => n.version },
      { label: 'Running / capacity', class: 'num', cell: (n) => `${number(n.running)} / ${number(n.capacity)}` },
      { label: 'Claims/s', class: 'num', cell: (n) => number(Math.round(n.claims_per_s * 10) / 10) },
      { label: 'Heartbeat', class: 'num', cell: (n) => `${span(n.heartbeat_age_ms)} ago` },
      { label: 'Started', cell: (n) => when(n.started_at) },
    ], list, null, 'No nodes recorded: the embedded store has one node, this one, and keeps no heartbeats.'));
}

export const audit = (main) => trail(main, '/v1/admin/audit', 'Server audit trail');
