// The API client: the signed-in session, JSON requests and the run event
// stream. The key lives in sessionStorage only and goes in a header, never
// in a URL.

const KEY = 'weft.session';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  token: null,
  // {mode: 'tenant', tenant, key_id, role, permissions} or {mode: 'admin'}
  who: null,
  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(KEY) || 'null');
      if (saved && saved.token) {
        this.token = saved.token;
        this.who = saved.who;
      }
    } catch (_) { /* a damaged entry is as good as none */ }
    return this.token !== null;
  },
  save(token, who) {
    this.token = token;
    this.who = who;
    sessionStorage.setItem(KEY, JSON.stringify({ token, who }));
  },
  clear() {
    this.token = null;
    this.who = null;
    sessionStorage.removeItem(KEY);
  },
  can(permission) {
    return this.who && this.who.mode === 'tenant' && this.who.permissions.includes(permission);
  },
  isAdmin() {
    return this.who && this.who.mode === 'admin';
  },
};

function headers(extra) {
  const out = { Accept: 'application/json', ...extra };
  if (session.token) out.Authorization = `Bearer ${session.token}`;
  return out;
}

// Calls the API; answers the parsed JSON (null for 204), or throws an
// ApiError with the server's code and message.
export async function call(method, path, body, extraHeaders) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the server cannot be reached (${e.message})`);
  }
  if (response.status === 401 && session.who) {
    window.dispatchEvent(new CustomEvent('weft:signed-out', { detail: 'the key was refused (revoked or expired?)' }));
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    const code = json && json.error ? json.error.code : `http_${response.status}`;
    const message = json && json.error ? json.error.message : (text || response.statusText);
    throw new ApiError(response.status, code, message);
  }
  return json;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);

// Builds a query string from the values that are set.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Follows a run's events as server-sent events, read with fetch so the key
// goes in a header (EventSource cannot send one). Calls onEvent({id, kind,
// data}) for each; reconnects after a drop with Last-Event-ID; ends when the
// run's stream ends (the run ended) or when `signal` aborts. Answers a
// promise that settles then.
export async function follow(runId, onEvent, signal) {
  let last = null;
  for (let tries = 0; !signal.aborted && tries < 50; tries++) {
    const h = headers({ Accept: 'text/event-stream' });
    if (last !== null) h['Last-Event-ID'] = String(last);
    let response;
    try {
      response = await fetch(`/v1/runs/${runId}/events`, { headers: h, signal });
    } catch (e) {
      if (signal.aborted) return;
      await pause(1000);
      continue;
    }
    if (!response.ok || !response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return; // the stream ends with the run
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = { id: null, kind: 'message', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) event.id = line.slice(3).trim();
            else if (line.startsWith('event:')) event.kind = line.slice(6).trim();
            else if (line.startsWith('data:')) event.data += line.slice(5).trim();
          }
          if (event.id !== null) last = event.id;
          if (event.data || event.id !== null) onEvent(event);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      await pause(500);
    }
  }
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
