// The runs list: the tenant's runs newest first, filtered by workflow,
// status and time in the store, a page at a time, its first page refreshed
// every few seconds while the tab is shown; and starting a run.

import { get, call, query, session } from './api.js';
import { h, fill, badge, when, span, table, dialog, toast, go } from './ui.js';

const STATUSES = ['running', 'succeeded', 'failed', 'cancelled'];
const RANGES = [['', 'any time'], ['15m', 'last 15 minutes'], ['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days']];
const RANGE_MS = { '15m': 9e5, '1h': 3.6e6, '24h': 8.64e7, '7d': 6.048e8, '30d': 2.592e9 };
const REFRESH_MS = 3000;

export async function list(main, params) {
  const filter = {
    workflow: params.get('workflow') || '',
    status: params.get('status') || '',
    range: params.get('range') || '',
  };
  const workflows = (await get('/v1/workflows')).workflows.map((w) => w.name);
  const rows = new Map();
  let cursor = null;
  const body = h('div.table-wrap');
  const more = h('button.secondary#more', { onclick: () => load(cursor) }, 'Load more');
  const count = h('span.muted.count');
  const setFilter = (key, value) => {
    const next = { ...filter, [key]: value };
    go(`#/runs${query(next)}`);
  };
  const select = (key, options, label) => h('label.inline', h('span', label),
    h('select', { name: key, onchange: (e) => setFilter(key, e.target.value) },
      options.map(([value, text]) => h('option', { value, selected: value === filter[key] }, text))));
  fill(main,
    h('div.page-head',
      h('h1', 'Runs'),
      session.can('operate') ? h('button.primary#start-run', { onclick: () => start(workflows, filter.workflow) }, 'Start a run') : null),
    h('div.filters',
      select('workflow', [['', 'all workflows'], ...workflows.map((w) => [w, w])], 'Workflow'),
      select('status', [['', 'any status'], ...STATUSES.map((s) => [s, s])], 'Status'),
      select('range', RANGES, 'Created'),
      count),
    body,
    h('div.more', more));

  function url(from) {
    const since = RANGE_MS[filter.range];
    return `/v1/runs${query({
      workflow: filter.workflow,
      status: filter.status,
      created_from: since ? Date.now() - since : '',
      limit: 50,
      cursor: from || '',
    })}`;
  }

  function render() {
    const sorted = [...rows.values()].sort((a, b) => b.id - a.id);
    fill(body, table([
      { label: 'Run', cell: (r) => h('a', { href: `#/runs/${r.id}` }, `#${r.id}`) },
      { label: 'Workflow', cell: (r) => r.workflow },
      { label: 'Status', cell: (r) => [badge(r.status), r.paused ? badge('paused') : null] },
      { label: 'Created', cell: (r) => when(r.created_at) },
      { label: 'Took', class: 'num', cell: (r) => (r.status === 'running' ? h('span.muted', span(Date.now() - r.created_at)) : span(r.updated_at - r.created_at)) },
      { label: 'Error', class: 'wide', cell: (r) => (r.error ? h('span.error-text', { title: r.error.message }, `${r.error.code}${r.error.step ? ` at ${r.error.step}` : ''}: ${r.error.message}`) : '') },
    ], sorted, (r) => go(`#/runs/${r.id}`), 'No runs match. Start one, or widen the filters.'));
    fill(count, `${sorted.length} run${sorted.length === 1 ? '' : 's'} shown`);
    more.hidden = cursor === null;
  }

  async function load(from) {
    const page = await get(url(from));
    if (!from) {
      // A refresh of the first page: the newest runs, updated in place.
      for (const r of page.runs) rows.set(r.id, r);
      if (cursor === null) cursor = page.next_cursor || null;
    } else {
      for (const r of page.runs) rows.set(r.id, r);
      cursor = page.next_cursor || null;
    }
    render();
  }

  await load(null);
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') load(null).catch(() => { /* shown on the next success */ });
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

// Asks for a workflow and an input, starts the run and opens it.
export async function start(workflows, chosen) {
  if (!workflows.length) {
    toast('No workflows yet: push one with `weft workflow push`.', 'error');
    return;
  }
  const started = await dialog('Start a run', [
    { name: 'workflow', label: 'Workflow', type: 'select', options: workflows, value: chosen || workflows[0] },
    { name: 'input', label: 'Input (a JSON object)', type: 'json', value: '{}', empty: {}, rows: 10 },
    { name: 'priority', label: 'Priority', type: 'number', value: '0', hint: 'Higher runs first when slots are short.' },
  ], 'Start', async (v) => {
    const priority = Number.parseInt(v.priority || '0', 10);
    const answer = await call('POST', `/v1/workflows/${encodeURIComponent(v.workflow)}/runs`, { input: v.input, priority });
    return answer;
  });
  if (started) {
    toast(`Run #${started.id} started.`);
    go(`#/runs/${started.id}`);
  }
}
