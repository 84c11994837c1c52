// The tenant's other pages: workflows (each with its graph and document),
// modules, schedules, pending approvals, the audit trail and the tenant's
// keys.

import { get, post, call, query, session } from './api.js';
import { h, fill, badge, when, bytes, table, dialog, confirm, toast, go } from './ui.js';
import { draw } from './dag.js';
import { start } from './runs.js';

export async function workflows(main) {
  const { workflows: list } = await get('/v1/workflows');
  fill(main,
    h('div.page-head', h('h1', 'Workflows')),
    table([
      { label: 'Name', cell: (w) => h('a', { href: `#/workflows/${encodeURIComponent(w.name)}` }, w.name) },
      { label: 'Version', class: 'num', cell: (w) => `v${w.latest.version}` },
      { label: 'Updated', cell: (w) => when(w.latest.created_at) },
      { label: 'Digest', cell: (w) => h('code', w.latest.digest.slice(0, 19)) },
    ], list, (w) => go(`#/workflows/${encodeURIComponent(w.name)}`), 'No workflows yet: push one with `weft workflow push FILE`.'));
}

export async function workflow(main, name) {
  const w = await get(`/v1/workflows/${encodeURIComponent(name)}`);
  const nodes = w.steps.map((s) => ({ ...s, status: 'step', note: s.for_each ? 'for each item' : ((s.compensates || []).length ? 'on failure' : null) }));
  fill(main,
    h('div.page-head',
      h('h1', w.name, h('span.muted', ` v${w.latest.version}`)),
      h('div.actions',
        h('a.button.secondary', { href: `#/runs${query({ workflow: w.name })}` }, 'Its runs'),
        session.can('operate') ? h('button.primary', { dataset: { action: 'start' }, onclick: () => start([w.name], w.name) }, 'Start a run') : null)),
    h('div.graph', draw(nodes, null, () => {})),
    h('div.columns',
      h('section', h('h2', 'Document'), h('pre.source', w.source)),
      h('section', h('h2', 'Versions'), table([
        { label: 'Version', cell: (v) => `v${v.version}` },
        { label: 'Pushed', cell: (v) => when(v.created_at) },
        { label: 'Digest', cell: (v) => h('code', { title: v.digest }, v.digest.slice(0, 19)) },
      ], [...w.versions].reverse()))));
}

export async function modules(main) {
  const { modules: list } = await get('/v1/modules');
  const rows = list.flatMap((m) => [...m.versions].reverse().map((v) => ({ ...v, latest: v.version === m.latest })));
  fill(main,
    h('div.page-head', h('h1', 'Modules')),
    table([
      { label: 'Name', cell: (v) => h('strong', v.name) },
      { label: 'Version', cell: (v) => [v.version, v.latest ? h('span.tag', 'latest') : null] },
      { label: 'Size', class: 'num', cell: (v) => bytes(v.size) },
      { label: 'Digest', cell: (v) => h('code', { title: v.digest }, v.digest.slice(0, 19)) },
      { label: 'Imports', class: 'wide', cell: (v) => imports(v.imports) },
      { label: 'Uploaded', cell: (v) => when(v.created_at) },
    ], rows, null, 'No modules yet: build a task and upload it with `weft task push`.'));
}

// weft's own imports by name, the WASI ones counted; all on hover.
function imports(list) {
  const weft = list.filter((i) => i.startsWith('weft:')).map((i) => i.replace(/^weft:task\//, '').replace(/@.*$/, ''));
  const others = list.length - weft.length;
  return h('span.imports', { title: list.join('\n') }, weft.join(', ') || '—', others ? h('span.muted', ` + ${others} WASI`) : null);
}

export async function schedules(main) {
  const { schedules: list } = await get('/v1/schedules');
  const toggle = (s) => async () => {
    try {
      await post(`/v1/schedules/${encodeURIComponent(s.name)}/${s.paused ? 'resume' : 'pause'}`);
      toast(`${s.name} ${s.paused ? 'resumed' : 'paused'}.`);
      await schedules(main);
    } catch (e) { toast(e.message, 'error'); }
  };
  fill(main,
    h('div.page-head', h('h1', 'Schedules')),
    table([
      { label: 'Name', cell: (s) => [h('strong', s.name), s.paused ? badge('paused') : null] },
      { label: 'When', cell: (s) => [h('code', s.cron), h('span.muted', ` ${s.timezone}`)] },
      { label: 'Workflow', cell: (s) => h('a', { href: `#/workflows/${encodeURIComponent(s.workflow)}` }, s.workflow) },
      { label: 'Next', cell: (s) => (s.paused ? h('span.muted', 'paused') : (s.next_fires[0] || '—')) },
      { label: 'Last run', cell: (s) => (s.state.last_run ? h('a', { href: `#/runs/${s.state.last_run}` }, `#${s.state.last_run}`) : '—') },
      { label: 'Fired / skipped / missed', class: 'num', cell: (s) => `${s.state.fired} / ${s.state.skipped} / ${s.state.missed}` },
      { label: 'Last error', class: 'wide', cell: (s) => (s.state.last_error ? h('span.error-text', s.state.last_error) : '') },
      { label: '', cell: (s) => (session.can('operate') ? h('button.secondary.small', { dataset: { action: s.paused ? 'resume' : 'pause' }, onclick: toggle(s) }, s.paused ? 'Resume' : 'Pause') : null) },
    ], list, null, 'No schedules: set one with `weft schedule set`.'));
}

export async function approvals(main) {
  const { approvals: list } = await get('/v1/approvals');
  const decide = (a, decision) => async () => {
    const done = await dialog(`${decision === 'approve' ? 'Approve' : 'Reject'} ${a.step} of run #${a.run}`, [
      { name: 'by', label: 'As', required: true, placeholder: a.deciders[0], hint: `Who may decide: ${a.deciders.join(', ')}` },
      { name: 'comment', label: 'Comment', type: 'textarea', rows: 3 },
    ], decision === 'approve' ? 'Approve' : 'Reject', (v) => post(`/v1/runs/${a.run}/approvals/${encodeURIComponent(a.step)}`, { decision, by: v.by.trim(), comment: v.comment || undefined }));
    if (done) { toast(`${decision === 'approve' ? 'Approved' : 'Rejected'}.`); await approvals(main); }
  };
  fill(main,
    h('div.page-head', h('h1', 'Approvals waiting')),
    table([
      { label: 'Run', cell: (a) => h('a', { href: `#/runs/${a.run}` }, `#${a.run}`) },
      { label: 'Workflow', cell: (a) => a.workflow },
      { label: 'Step', cell: (a) => h('strong', a.step) },
      { label: 'Who decides', class: 'wide', cell: (a) => [a.deciders.join(', '), a.escalated ? badge('escalated') : null] },
      { label: 'Waiting since', cell: (a) => when(a.since) },
      { label: 'Expires', cell: (a) => (a.expires_at ? when(a.expires_at) : '—') },
      { label: '', cell: (a) => (session.can('operate') ? h('span.row-actions',
        h('button.primary.small', { dataset: { action: 'approve' }, onclick: () => decide(a, 'approve')().catch((e) => toast(e.message, 'error')) }, 'Approve'),
        h('button.danger.small', { dataset: { action: 'reject' }, onclick: () => decide(a, 'reject')().catch((e) => toast(e.message, 'error')) }, 'Reject')) : null) },
    ], list, null, 'Nothing waits for a decision.'));
}

// An audit trail, a page at a time: `path` is /v1/audit or /v1/admin/audit.
export async function trail(main, path, title) {
  const rows = [];
  let cursor = null;
  const body = h('div.table-wrap');
  const more = h('button.secondary#more', { onclick: () => load() }, 'Older entries');
  fill(main, h('div.page-head', h('h1', title)), body, h('div.more', more));
  async function load() {
    const page = await get(`${path}${query({ limit: 100, cursor: cursor || '' })}`);
    rows.push(...page.entries);
    cursor = page.next_cursor || null;
    fill(body, table([
      { label: 'When', cell: (e) => when(e.at) },
      { label: 'Who', cell: (e) => [e.actor, e.key_id ? h('span.muted', ` ${e.key_id}`) : null, e.role ? h('span.role', ` ${e.role}`) : null] },
      { label: 'What', class: 'wide', cell: (e) => [h('code', e.method), ' ', h('code', e.path)] },
      { label: 'Answer', cell: (e) => badge(e.outcome, String(e.status)) },
      { label: 'From', cell: (e) => e.address || '—' },
    ], rows, null, 'No changes recorded yet.'));
    more.hidden = cursor === null;
  }
  await load();
}

export const audit = (main) => trail(main, '/v1/audit', 'Audit trail');

export async function keys(main) {
  const { keys: list } = await get('/v1/api-keys');
  const make = async () => {
    const made = await dialog('Make an API key', [
      { name: 'role', label: 'Role', type: 'select', options: ['viewer', 'operator', 'developer', 'admin'], value: 'viewer' },
    ], 'Make the key', (v) => post('/v1/api-keys', { role: v.role }));
    if (made) {
      await dialog('The new key', [{ name: 'token', label: `Token of ${made.key_id} (${made.role}): shown this once`, value: made.token }], 'Done');
      await keys(main);
    }
  };
  const revoke = (k) => async () => {
    if (!(await confirm(`Revoke ${k.key_id}?`, 'Requests with it are refused at once.', 'Revoke'))) return;
    try { await call('DELETE', `/v1/api-keys/${encodeURIComponent(k.key_id)}`); toast(`${k.key_id} revoked.`); await keys(main); } catch (e) { toast(e.message, 'error'); }
  };
  fill(main,
    h('div.page-head', h('h1', 'API keys'), h('button.primary', { dataset: { action: 'make-key' }, onclick: () => make().catch((e) => toast(e.message, 'error')) }, 'Make a key')),
    table([
      { label: 'Key', cell: (k) => [h('code', k.key_id), k.current ? h('span.tag', 'this session') : null] },
      { label: 'Role', cell: (k) => h('span.role', k.role) },
      { label: 'Made', cell: (k) => when(k.created_at) },
      { label: '', cell: (k) => (k.current ? null : h('button.danger.small', { dataset: { action: 'revoke' }, onclick: revoke(k) }, 'Revoke')) },
    ], list));
}
