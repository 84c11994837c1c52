// Small pieces every view uses: building elements, formatting times and
// sizes, status badges, collapsible JSON, dialogs and toasts.

// h('div.card#id', {attrs, onclick}, children...): an element. Children may
// be strings, elements, arrays, or null/false (skipped).
export function h(spec, attrs, ...children) {
  if (attrs === null || typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs)) {
    if (attrs !== undefined) children.unshift(attrs);
    attrs = {};
  }
  // 'tag', then any '.class' and '#id' parts in any order.
  const parts = spec.match(/^[^.#]*|[.#][^.#]+/g);
  const el = document.createElement(parts[0] || 'div');
  const classes = [];
  for (const part of parts.slice(1)) {
    if (part[0] === '#') el.id = part.slice(1);
    else classes.push(part.slice(1));
  }
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Replaces el's children with these.
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

const pad = (n) => String(n).padStart(2, '0');

// A time (ms since the epoch) as local YYYY-MM-DD HH:MM:SS.
export function time(ms) {
  if (!ms && ms !== 0) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// How long ago, in words: "3 s ago", "5 min ago", "2 h ago", "4 d ago".
export function ago(ms) {
  if (!ms) return '—';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 0) return `in ${span(-s * 1000)}`;
  if (s < 5) return 'just now';
  return `${span(s * 1000)} ago`;
}

// A span of milliseconds, short: "850 ms", "4.2 s", "3 min 5 s", "2 h 10 min".
export function span(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// A time with how long ago as its tooltip, or the other way round.
export function when(ms) {
  return h('time', { datetime: ms ? new Date(ms).toISOString() : null, title: ago(ms) }, time(ms));
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function number(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en');
}

// A status badge: its class is the status, so colours come from the CSS.
export function badge(status, extra) {
  return h(`span.badge.s-${status}`, { dataset: { status } }, status.replace(/_/g, ' '), extra ? ` ${extra}` : null);
}

// JSON as a collapsible tree: objects and arrays open to `depth` levels.
export function json(value, depth = 2) {
  return h('div.json', node(value, depth));
}

function node(value, depth) {
  if (value === null) return h('span.j-null', 'null');
  if (Array.isArray(value) || typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
    if (entries.length === 0) return h('span', open + close);
    const details = h('details', { open: depth > 0 });
    // Closed: `{ 3 keys }`; open: `{`, the entries, `}`.
    details.append(h('summary', open, h('span.closed', ` ${entries.length} ${Array.isArray(value) ? 'items' : 'keys'} ${close}`)));
    const list = h('div.j-body');
    for (const [k, v] of entries) {
      list.append(h('div.j-row', Array.isArray(value) ? null : h('span.j-key', `${JSON.stringify(k)}: `), node(v, depth - 1)));
    }
    details.append(list, h('span.j-close', close));
    return details;
  }
  if (typeof value === 'string') return h('span.j-str', JSON.stringify(value));
  if (typeof value === 'number') return h('span.j-num', String(value));
  return h('span.j-bool', String(value));
}

// An error {code, message, step?} as a box.
export function failure(error) {
  if (!error) return null;
  return h('div.failure', h('strong', error.code), error.step ? h('span.muted', ` at ${error.step}`) : null,
    h('div', error.message));
}

// A brief message in the corner; kind is 'ok' or 'error'.
export function toast(message, kind = 'ok') {
  const t = h(`div.toast.t-${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, message);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// A modal form. fields: [{name, label, type: 'text'|'json'|'select'|'textarea',
// options, value, required, placeholder}]. Answers the values, or null when
// cancelled. `submit` may throw to keep the dialog open with the message.
export function dialog(title, fields, submitLabel, submit) {
  return new Promise((resolve) => {
    const error = h('div.form-error', { role: 'alert' });
    const inputs = {};
    const rows = fields.map((f) => {
      let input;
      if (f.type === 'select') {
        input = h('select', { name: f.name }, f.options.map((o) => h('option', { value: o.value ?? o, selected: (o.value ?? o) === f.value }, o.label ?? o)));
      } else if (f.type === 'json' || f.type === 'textarea') {
        input = h('textarea', { name: f.name, rows: f.rows || 6, placeholder: f.placeholder, spellcheck: 'false' });
        input.value = f.value ?? '';
      } else {
        input = h('input', { name: f.name, type: f.type || 'text', placeholder: f.placeholder, required: f.required, autocomplete: 'off' });
        input.value = f.value ?? '';
      }
      inputs[f.name] = [f, input];
      return h('label.field', h('span', f.label), input, f.hint ? h('small.muted', f.hint) : null);
    });
    const close = (value) => { backdrop.remove(); resolve(value); };
    const form = h('form.dialog', { role: 'dialog', 'aria-label': title },
      h('h2', title), rows, error,
      h('div.buttons',
        h('button.secondary', { type: 'button', onclick: () => close(null) }, 'Cancel'),
        h('button.primary', { type: 'submit', dataset: { submit: '' } }, submitLabel)));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const values = {};
      try {
        for (const [name, [f, input]] of Object.entries(inputs)) {
          if (f.type === 'json') {
            const text = input.value.trim();
            try { values[name] = text ? JSON.parse(text) : f.empty; } catch (err) { throw new Error(`${f.label}: not JSON (${err.message})`); }
          } else values[name] = input.value;
        }
        const result = submit ? await submit(values) : values;
        close(result === undefined ? values : result);
      } catch (err) {
        fill(error, err.message);
      }
    });
    const backdrop = h('div.backdrop', { onclick: (e) => { if (e.target === backdrop) close(null); } }, form);
    backdrop.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(null); });
    document.body.append(backdrop);
    const first = form.querySelector('input, textarea, select');
    if (first) first.focus();
  });
}

// Asks for a yes or no; answers true for yes.
export function confirm(title, text, label) {
  return new Promise((resolve) => {
    const close = (v) => { backdrop.remove(); resolve(v); };
    const box = h('div.dialog', { role: 'dialog', 'aria-label': title }, h('h2', title), h('p', text),
      h('div.buttons',
        h('button.secondary', { type: 'button', onclick: () => close(false) }, 'Cancel'),
        h('button.primary', { type: 'button', dataset: { submit: '' }, onclick: () => close(true) }, label)));
    const backdrop = h('div.backdrop', box);
    document.body.append(backdrop);
    box.querySelector('.primary').focus();
  });
}

// A table: columns [{label, cell(row) -> node, class}], rows, onclick(row).
export function table(columns, rows, onRow, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p.empty', empty);
  return h('table.list',
    h('thead', h('tr', columns.map((c) => h('th', { class: c.class }, c.label)))),
    h('tbody', rows.map((r) => h('tr', { class: onRow ? 'link' : null, onclick: onRow ? (e) => { if (!e.target.closest('a,button')) onRow(r); } : null },
      columns.map((c) => h('td', { class: c.class }, c.cell(r)))))));
}

export function link(href, ...children) {
  return h('a', { href }, ...children);
}

// The fragment as a path and its query: '#/runs?status=failed'.
export function here() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, q] = raw.split('?');
  return { path, params: new URLSearchParams(q || '') };
}

// Shows the view at `hash`, again if it is the one shown.
export function go(hash) {
  if (window.location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else window.location.hash = hash;
}
