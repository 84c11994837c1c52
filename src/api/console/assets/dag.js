// A workflow's graph as SVG: steps in layers by their longest chain of
// `needs`, left to right, compensation steps in a last layer with dashed
// edges from the steps they compensate. Each node's class carries its
// status, so the colours (and their changes) come from the stylesheet.

const NS = 'http://www.w3.org/2000/svg';
const W = 176;
const H = 52;
const GAP_X = 64;
const GAP_Y = 18;
const PAD = 12;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

// Column and row of every step. steps: [{id, needs, compensates}].
export function layout(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const layer = new Map();
  const depth = (s, seen = new Set()) => {
    if (layer.has(s.id)) return layer.get(s.id);
    if (seen.has(s.id)) return 0; // a cycle cannot be stored; be safe anyway
    seen.add(s.id);
    const needs = s.needs.map((n) => byId.get(n)).filter(Boolean);
    const d = needs.length ? 1 + Math.max(...needs.map((n) => depth(n, seen))) : 0;
    layer.set(s.id, d);
    return d;
  };
  const normal = steps.filter((s) => !(s.compensates || []).length);
  const compensations = steps.filter((s) => (s.compensates || []).length);
  normal.forEach((s) => depth(s));
  const last = normal.length ? Math.max(...normal.map((s) => layer.get(s.id))) : -1;
  compensations.forEach((s) => layer.set(s.id, last + 1));
  const columns = [];
  for (const s of steps) (columns[layer.get(s.id)] ||= []).push(s);
  // Order each column by the mean row of what it hangs from, twice over.
  const row = new Map();
  columns.forEach((col) => col.forEach((s, i) => row.set(s.id, i)));
  for (let pass = 0; pass < 2; pass++) {
    for (const col of columns.slice(1)) {
      const key = (s) => {
        const from = s.needs.concat(s.compensates || []).filter((n) => row.has(n));
        return from.length ? from.reduce((a, n) => a + row.get(n), 0) / from.length : row.get(s.id);
      };
      col.sort((a, b) => key(a) - key(b));
      col.forEach((s, i) => row.set(s.id, i));
    }
  }
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const place = new Map();
  columns.forEach((col, x) => {
    const offset = (tallest - col.length) / 2; // centre short columns
    col.forEach((s, y) => place.set(s.id, {
      x: PAD + x * (W + GAP_X),
      y: PAD + (y + offset) * (H + GAP_Y),
    }));
  });
  return {
    place,
    width: PAD * 2 + Math.max(1, columns.length) * (W + GAP_X) - GAP_X,
    height: PAD * 2 + tallest * (H + GAP_Y) - GAP_Y,
  };
}

const short = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

// The graph. nodes: [{id, kind, needs, compensates, status, note, items}]
// where items (fan-outs only) counts items by status. onSelect(id) on click.
export function draw(nodes, selected, onSelect) {
  const { place, width, height } = layout(nodes);
  const root = svg('svg', { class: 'dag', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'the workflow\'s steps and their dependencies' });
  // Shrunk to fit its box down to 70%; wider than that, the box scrolls.
  root.style.minWidth = `${Math.round(width * 0.7)}px`;
  root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrowhead' }))));
  const edge = (from, to, dashed) => {
    const a = place.get(from);
    const b = place.get(to);
    if (!a || !b) return;
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const bend = Math.max(24, (x2 - x1) / 2);
    root.append(svg('path', { class: dashed ? 'edge compensation' : 'edge', d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' }));
  };
  for (const n of nodes) {
    n.needs.forEach((need) => edge(need, n.id, false));
    (n.compensates || []).forEach((c) => edge(c, n.id, true));
  }
  for (const n of nodes) {
    const p = place.get(n.id);
    const g = svg('g', { class: `node s-${n.status}${n.id === selected ? ' selected' : ''}`, transform: `translate(${p.x},${p.y})`, 'data-step': n.id, 'data-status': n.status, tabindex: 0, role: 'button', 'aria-label': `${n.id}: ${n.status}` });
    g.append(svg('title', {}, document.createTextNode(`${n.id} (${n.kind}): ${n.status}${n.note ? ` — ${n.note}` : ''}`)));
    g.append(svg('rect', { width: W, height: H, rx: 8 }));
    g.append(svg('rect', { class: 'stripe', width: 6, height: H, rx: 3 }));
    const name = svg('text', { x: 16, y: 21, class: 'name' });
    name.textContent = short(n.id, 21);
    g.append(name);
    const sub = svg('text', { x: 16, y: 39, class: 'sub' });
    // A workflow's graph has no statuses ('step'): the kind alone.
    const state = n.status === 'step' ? null : n.status.replace(/_/g, ' ');
    sub.textContent = short([n.kind, n.note || state].filter(Boolean).join(' · '), 26);
    g.append(sub);
    if (n.items && n.items.total) {
      // A bar of the items by status.
      let x = 16;
      const bar = W - 28;
      for (const [status, count] of Object.entries(n.items.by)) {
        const w = (bar * count) / n.items.total;
        g.append(svg('rect', { class: `item-bar s-${status}`, x, y: H - 8, width: Math.max(w, 1), height: 4 }));
        x += w;
      }
    }
    const pick = () => onSelect(n.id);
    g.addEventListener('click', pick);
    g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(); } });
    root.append(g);
  }
  return root;
}
