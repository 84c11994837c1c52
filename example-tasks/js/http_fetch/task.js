/**
 * Calls HTTP services with the standard `fetch` and returns what each
 * answered: the JavaScript counterpart of the Rust
 * `example-tasks/http_fetch`, for the tests of outbound HTTP from a JS
 * guest (the host's `http.allow`, injected headers, caps and journal).
 *
 * Input: `{"fetches": [{...}, ...]}`, made one after the other, each
 * `{"url": "...", "method": "POST", "json": {...}, "text": "...",
 * "headers": {...}, "redirect": "follow"|"manual"|"error", "catch": true}`:
 * `method` defaults to `GET`; `json` is sent as a JSON body (with its
 * content type), `text` as a text body; `headers` and `redirect` go to
 * `fetch` as they are. A rejected `fetch` fails the task, unless `catch`
 * is set: then its answer is `{"rejected": "<the error>"}`.
 *
 * `fetch` is weft-sdk's: it follows redirects as the Fetch standard says,
 * each hop a new request the host checks against the step's `http.allow`.
 *
 * Output: `{"answers": [...]}`, one per fetch: `status`, `statusText`,
 * `ok`, `redirected`, `url` (the response's), `location` and
 * `contentType` (response headers, or `null`) and `body` (parsed when the
 * content type is JSON, text otherwise).
 */

import { task, TaskError, log } from 'weft-sdk';

export const run = task(async ({ fetches }) => {
  if (!Array.isArray(fetches)) throw new TaskError('invalid_input', 'fetches must be a list');
  const answers = [];
  for (const call of fetches) answers.push(await answer(call));
  return { answers };
});

async function answer({ url, method = 'GET', json, text, headers = {}, redirect, catch: caught = false }) {
  const init = { method, headers: { ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = 'application/json';
  } else if (text !== undefined) {
    init.body = text;
  }
  if (redirect !== undefined) init.redirect = redirect;
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    if (!caught) throw e;
    return { rejected: String(e) };
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
  };
}
