/**
 * Calls HTTP services with the standard `fetch` and returns what each
 * answered: the JavaScript counterpart of the Rust
 * `example-tasks/http_fetch`, for the tests of outbound HTTP from a JS
 * guest (the host's `http.allow`, injected headers, caps and journal).
 *
 * Input: `{"fetches": [{...}, ...]}`, made one after the other, each
 * `{"url": "...", "method": "POST", "json": {...}, "text": "...",
 * "headers": {...}, "redirect": "follow"|"manual"|"error", "follow": 5,
 * "catch": true}`: `method` defaults to `GET`; `json` is sent as a JSON
 * body (with its content type), `text` as a text body; `headers` and
 * `redirect` go to `fetch` as they are. A rejected `fetch` fails the
 * task, unless `catch` is set: then its answer is `{"rejected": "<the
 * error>", "hops": [...]}`.
 *
 * StarlingMonkey's `fetch` does not follow redirects, whatever `redirect`
 * says: the task gets the 3xx. With `follow: N` the task follows up to N
 * of them itself, each a new `fetch` the host checks against the step's
 * `http.allow` (a 303, or a 301 or 302 answering a `POST`, continues as a
 * `GET` without the body, as browsers do).
 *
 * Output: `{"answers": [...]}`, one per fetch: `status`, `statusText`,
 * `ok`, `redirected`, `url` (the response's), `location` and
 * `contentType` (response headers, or `null`), `body` (parsed when the
 * content type is JSON, text otherwise) and `hops` (the URLs the task
 * followed redirects to).
 */

import { task, TaskError, log } from 'weft-sdk';

export const run = task(async ({ fetches }) => {
  if (!Array.isArray(fetches)) throw new TaskError('invalid_input', 'fetches must be a list');
  const answers = [];
  for (const call of fetches) answers.push(await answer(call));
  return { answers };
});

const REDIRECTS = [301, 302, 303, 307, 308];

async function answer({ url, method = 'GET', json, text, headers = {}, redirect, follow = 0, catch: caught = false }) {
  const init = { method, headers: { ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = 'application/json';
  } else if (text !== undefined) {
    init.body = text;
  }
  if (redirect !== undefined) init.redirect = redirect;
  const hops = [];
  let response;
  try {
    response = await fetch(url, init);
    for (;;) {
      const location = response.headers.get('location');
      if (hops.length === follow || !REDIRECTS.includes(response.status) || location === null) break;
      const next = new URL(location, hops.at(-1) ?? url).href;
      hops.push(next);
      await response.arrayBuffer(); // done with this one
      if (response.status === 303 || ([301, 302].includes(response.status) && init.method === 'POST')) {
        init.method = 'GET';
        delete init.body;
        delete init.headers['content-type'];
      }
      response = await fetch(next, init);
    }
  } catch (e) {
    if (!caught) throw e;
    return { rejected: String(e), hops };
  }
  const contentType = response.headers.get('content-type');
  const raw = await response.text();
  const body = contentType?.includes('json') ? JSON.parse(raw) : raw;
  log.info(`${method} ${url}: ${response.status}`);
  return {
    status: response.status,
    statusText: response.statusText,
    ok: response.ok,
    redirected: response.redirected,
    url: response.url,
    location: response.headers.get('location'),
    contentType,
    body,
    hops,
  };
}
