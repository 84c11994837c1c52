// One run: its graph changing live, its steps with their attempts, logs,
// outputs and errors, its input and output, and the actions the key's role
// allows. Live: the run's event stream (server-sent events) says when to
// read the run again.

import { get, post, call, follow, session } from './api.js';
import { h, fill, badge, when, span, number, json, failure, dialog, confirm, toast } from './ui.js';
import { draw } from './dag.js';

export async function show(main, id) {
  const state = { run: null, selected: null, item: null, shownKey: null, logsKey: null, approvals: [] };
  const head = h('div.run-head');
  const actions = h('div.actions');
  const error = h('div');
  const graph = h('div.graph');
  const panel = h('aside.panel');
  const io = h('div.io');
  fill(main, head, actions, error, h('div.run-body', graph, panel), io);

  async function refresh() {
    const run = await get(`/v1/runs/${id}`);
    state.run = run;
    if (run.status === 'running' && run.steps.some((s) => s.kind === 'approval' && s.status === 'waiting')) {
      state.approvals = (await get('/v1/approvals')).approvals.filter((a) => a.run === run.id);
    } else state.approvals = [];
    render();
  }

  function groups() {
    // One node per step: a fan-out's items counted under it.
    const byStep = new Map();
    for (const view of state.run.steps) {
      if (!byStep.has(view.step)) byStep.set(view.step, { id: view.step, kind: view.kind, needs: view.needs, compensates: view.compensates || [], unit: null, items: [] });
      const g = byStep.get(view.step);
      if (view.item === undefined) g.unit = view;
      else g.items.push(view);
    }
    return [...byStep.values()].map((g) => {
      const status = g.unit ? g.unit.status : (g.items[0] ? g.items[0].status : 'pending');
      const node = { ...g, status, note: null };
      if (g.items.length) {
        const by = {};
        for (const item of g.items) by[item.status] = (by[item.status] || 0) + 1;
        node.items = { total: g.items.length, by };
        node.note = `${by.succeeded || 0}/${g.items.length} items`;
      } else if (g.unit && g.unit.due && (status === 'retrying' || status === 'waiting')) {
        node.note = `${status} until ${new Date(g.unit.due).toLocaleTimeString()}`;
      }
      return node;
    });
  }

  function render() {
    const run = state.run;
    const nodes = groups();
    if (state.selected === null) {
      const interesting = nodes.find((n) => ['failed', 'running', 'waiting', 'retrying'].includes(n.status));
      state.selected = (interesting || nodes[0] || {}).id ?? null;
    }
    const ended = run.status !== 'running';
    fill(head,
      h('div.title',
        h('h1', `Run #${run.id}`),
        badge(run.status),
        run.paused ? badge('paused') : null,
        h('span.muted', ' of '), h('a', { href: `#/workflows/${encodeURIComponent(run.workflow)}` }, run.workflow)),
      h('dl.meta',
        h('dt', 'Created'), h('dd', when(run.created_at)),
        h('dt', ended ? 'Took' : 'Running for'), h('dd', span((ended ? run.updated_at : Date.now()) - run.created_at)),
        h('dt', 'Priority'), h('dd', String(run.priority)),
        run.parent ? [h('dt', 'Parent'), h('dd', h('a', { href: `#/runs/${run.parent.run}` }, `#${run.parent.run}`), ` step ${run.parent.step}`)] : null,
        h('dt', 'Definition'), h('dd', h('code', { title: run.workflow_digest }, run.workflow_digest.slice(0, 19)))));
    // Buttons are redrawn only when what they depend on changes, so one is
    // never replaced under the pointer.
    const actionsKey = JSON.stringify([run.status, run.paused, nodes.map((n) => [n.id, n.status])]);
    if (actions.dataset.key !== actionsKey) {
      actions.dataset.key = actionsKey;
      fill(actions, session.can('operate') ? runActions(run, nodes) : null);
    }
    fill(error, failure(run.error));
    fill(graph, draw(nodes, state.selected, (step) => { state.selected = step; state.item = null; render(); }));
    renderPanel(nodes);
    if (!io.dataset.shown || (ended && io.dataset.shown !== 'ended')) {
      // Input and output are drawn once (and once more at the end), so an
      // open tree stays open while the run goes on.
      io.dataset.shown = ended ? 'ended' : 'running';
      fill(io,
        h('section', h('h2', 'Input'), json(run.input)),
        h('section', h('h2', 'Output'), run.output === null || run.output === undefined ? h('p.muted', ended ? 'None.' : 'Not yet.') : json(run.output)));
    }
  }

  function runActions(run, nodes) {
    const button = (label, action, handler, kind = 'secondary') => h(`button.${kind}`, { dataset: { action }, onclick: () => handler().catch((e) => toast(e.message, 'error')) }, label);
    const act = (path, done) => async () => {
      await post(`/v1/runs/${run.id}/${path}`);
      toast(done);
      if (path === 'retry') follower(); // the ended stream starts again
      await refresh();
    };
    const out = [];
    if (run.status === 'running') {
      out.push(run.paused ? button('Resume', 'resume', act('resume', 'Resumed.')) : button('Pause', 'pause', act('pause', 'Paused: no new attempts start.')));
      if (nodes.some((n) => n.kind === 'wait_for')) out.push(button('Send a signal…', 'signal', () => signal(run, nodes)));
      out.push(button('Cancel', 'cancel', async () => {
        if (await confirm(`Cancel run #${run.id}?`, 'Running attempts stop and nothing else starts. Compensation steps do not run.', 'Cancel the run')) await act('cancel', 'Cancelled.')();
      }, 'danger'));
    } else {
      if (run.status === 'failed' || run.status === 'cancelled') out.push(button('Retry', 'retry', act('retry', 'Retrying from the failed steps.'), 'primary'));
      const done = nodes.filter((n) => n.status === 'succeeded' && !n.compensates.length).map((n) => n.id);
      if (done.length) out.push(button('Reset from a step…', 'reset', () => reset(run, done)));
    }
    return out;
  }

  async function signal(run, nodes) {
    const waiting = nodes.filter((n) => n.kind === 'wait_for').map((n) => n.id);
    const sent = await dialog('Send a signal', [
      { name: 'name', label: 'Signal', placeholder: 'payment_received', required: true, hint: `Steps waiting for signals: ${waiting.join(', ')}` },
      { name: 'payload', label: 'Payload (any JSON)', type: 'json', value: '', empty: null },
    ], 'Send', (v) => call('POST', `/v1/runs/${run.id}/signals/${encodeURIComponent(v.name.trim())}`, v.payload));
    if (sent) { toast(`Signal ${sent.signal}: ${sent.outcome}${sent.step ? ` by ${sent.step}` : ''}.`); await refresh(); }
  }

  async function reset(run, steps) {
    const done = await dialog('Reset the run from a step', [
      { name: 'from', label: 'From step', type: 'select', options: steps, hint: 'That step, what failed, and everything downstream run again.' },
    ], 'Reset', (v) => post(`/v1/runs/${run.id}/reset`, { from: v.from }));
    if (done) { toast('Reset: running again.'); follower(); await refresh(); }
  }

  async function decide(step, decision) {
    const approval = state.approvals.find((a) => a.step === step);
    const done = await dialog(decision === 'approve' ? `Approve ${step}` : `Reject ${step}`, [
      { name: 'by', label: 'As', required: true, placeholder: approval ? approval.deciders[0] : 'you@example.com', hint: approval ? `Who may decide: ${approval.deciders.join(', ')}` : null },
      { name: 'comment', label: 'Comment', type: 'textarea', rows: 3 },
    ], decision === 'approve' ? 'Approve' : 'Reject', (v) => post(`/v1/runs/${id}/approvals/${encodeURIComponent(step)}`, { decision, by: v.by.trim(), comment: v.comment || undefined }));
    if (done) { toast(`${decision === 'approve' ? 'Approved' : 'Rejected'} by ${done.by}.`); await refresh(); }
  }

  function renderPanel(nodes) {
    const node = nodes.find((n) => n.id === state.selected);
    if (!node) return fill(panel, h('p.muted', 'Choose a step in the graph.'));
    const view = state.item !== null ? node.items.find((i) => i.item === state.item) : node.unit || node.items[0];
    const key = JSON.stringify([node.id, state.item, view, state.approvals]);
    if (key === state.shownKey) return;
    state.shownKey = key;
    const logs = h('div.logs');
    fill(panel,
      h('div.panel-head', h('h2', node.id, state.item !== null ? h('span.muted', ` item ${state.item}`) : null), badge(view ? view.status : node.status)),
      h('dl.meta',
        h('dt', 'Kind'), h('dd', node.kind),
        node.needs.length ? [h('dt', 'Needs'), h('dd', node.needs.join(', '))] : null,
        node.compensates.length ? [h('dt', 'Compensates'), h('dd', node.compensates.join(', '))] : null,
        view && view.due ? [h('dt', view.status === 'retrying' ? 'Next attempt' : 'Wakes'), h('dd', when(view.due))] : null,
        view && view.child ? [h('dt', 'Child run'), h('dd', h('a', { href: `#/runs/${view.child}` }, `#${view.child}`))] : null),
      approvalButtons(node, view),
      view ? failure(view.error) : null,
      node.items.length ? itemList(node) : null,
      view && view.attempts.length ? [h('h3', 'Attempts'), attempts(view.attempts)]
        : h('p.muted', node.kind === 'task' ? 'No attempts yet.' : `A ${node.kind.replace('_', ' ')} step runs no task.`),
      view && view.output !== null && view.output !== undefined ? [h('h3', 'Output'), json(view.output, 1)] : null,
      h('h3', 'Logs'), logs);
    loadLogs(node, logs, view);
  }

  function approvalButtons(node, view) {
    if (node.kind !== 'approval' || !view || view.status !== 'waiting' || !session.can('operate')) return null;
    return h('div.actions',
      h('button.primary', { dataset: { action: 'approve' }, onclick: () => decide(node.id, 'approve').catch((e) => toast(e.message, 'error')) }, 'Approve…'),
      h('button.danger', { dataset: { action: 'reject' }, onclick: () => decide(node.id, 'reject').catch((e) => toast(e.message, 'error')) }, 'Reject…'));
  }

  function itemList(node) {
    const shown = node.items.slice(0, 200);
    return [h('h3', `Items (${node.items.length})`),
      h('div.items', shown.map((i) => h('button.item', { class: `s-${i.status}${i.item === state.item ? ' selected' : ''}`, title: `item ${i.item}: ${i.status}`, dataset: { item: i.item, status: i.status }, onclick: () => { state.item = i.item; state.shownKey = null; render(); } }, String(i.item)))),
      node.items.length > shown.length ? h('p.muted', `and ${node.items.length - shown.length} more`) : null];
  }

  function attempts(list) {
    return h('ol.attempts', list.map((a) => h('li.attempt', { dataset: { attempt: a.attempt, outcome: a.outcome } },
      h('strong', `#${a.attempt} `), badge(a.outcome === 'ok' ? 'succeeded' : a.outcome),
      h('span.facts', ` ${span(a.duration_us / 1000)} · ${number(a.fuel_used)} fuel · `, when(a.started_at)),
      a.http && a.http.length ? h('span.facts', ` · ${a.http.length} HTTP`) : null,
      a.node ? h('span.facts', ` · on ${a.node}`) : null,
      a.error ? failure(a.error) : null)));
  }

  async function loadLogs(node, into, view) {
    const logsKey = JSON.stringify([node.id, state.item, view ? view.attempts.length : 0]);
    const kept = state.logsKey === logsKey && state.logs;
    state.logsKey = logsKey;
    let answer = kept;
    if (!answer) {
      fill(into, h('p.muted', 'Loading logs…'));
      try {
        answer = await get(`/v1/runs/${id}/steps/${encodeURIComponent(node.id)}/logs`);
        state.logs = answer;
      } catch (e) {
        return fill(into, h('p.error-text', e.message));
      }
    }
    const wanted = answer.attempts.filter((a) => state.item === null ? true : a.item === state.item);
    if (!wanted.length) return fill(into, h('p.muted', 'Nothing logged yet.'));
    fill(into, wanted.map((a) => h('div.attempt-log', { dataset: { attempt: a.attempt } },
      h('div.log-head', `attempt ${a.attempt}`, a.item !== undefined ? ` · item ${a.item}` : '', ' · ', badge(a.outcome === 'ok' ? 'succeeded' : a.outcome), a.truncated ? h('span.muted', ' (cut at the cap)') : null),
      a.lines.length ? h('ol.lines', a.lines.map((l) => h(`li.l-${l.level}`, h('span.level', l.level), l.message))) : null,
      a.stdout ? [h('div.stream-name', 'stdout'), h('pre', a.stdout)] : null,
      a.stderr ? [h('div.stream-name', 'stderr'), h('pre.stderr', a.stderr)] : null,
      a.http && a.http.length ? [h('div.stream-name', 'HTTP'), h('ul.http', a.http.map((c) => h('li', `${c.method} ${c.url} → ${c.status ?? c.refused ?? c.error ?? '?'}`)))] : null,
      !a.lines.length && !a.stdout && !a.stderr ? h('p.muted', 'Nothing logged.') : null)));
  }

  // Following the run: each event (coalesced) reads the run again.
  let stop = new AbortController();
  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh().catch(() => {}); }, 150);
  };
  function follower() {
    stop.abort();
    stop = new AbortController();
    const mine = stop;
    follow(id, soon, mine.signal).then(() => { if (!mine.signal.aborted) refresh().catch(() => {}); });
  }
  await refresh();
  follower();
  // A safety net if the stream is cut by something in between.
  const poll = setInterval(() => { if (state.run && state.run.status === 'running') soon(); }, 10000);
  return () => { stop.abort(); clearInterval(poll); clearTimeout(pending); };
}
