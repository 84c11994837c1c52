/**
 * `fetch` that follows redirects as the Fetch standard says.
 *
 * StarlingMonkey's own `fetch` sends one request and resolves with what
 * answers, a 3xx included, whatever `redirect` says; the host does not
 * follow redirects either, so that every hop is a request it checks
 * against the step's `http.allow` list. This module follows them in the
 * guest, each hop a new native `fetch`, and installs itself as
 * `globalThis.fetch` when `weft-sdk` is imported:
 *
 * - `redirect: "follow"` (the default) follows up to {@link MAX_REDIRECTS}
 *   redirects (301, 302, 303, 307, 308 with a `Location`) and resolves
 *   with the last response, its `url` the final URL and `redirected`
 *   true. A 303, or a 301 or 302 answering a POST, continues as a GET
 *   without the body (and its `Content-Type`); a 307 or 308 sends the
 *   same method and body again. An `Authorization` header the task set
 *   is dropped when a redirect leaves the origin. One more redirect
 *   rejects with a `TypeError`, and so does a hop the host refuses.
 * - `"error"` rejects with a `TypeError` on a redirect.
 * - `"manual"` resolves with the 3xx itself, status and `Location` readable
 *   (a browser gives an opaque redirect instead: status 0, no headers).
 */

/** StarlingMonkey's `fetch`, which makes one request per call. */
const nativeFetch = globalThis.fetch;

/**
 * How many redirects one `fetch` follows: the Fetch standard's limit, as
 * browsers, Node.js and Deno have it, so code written for them behaves
 * the same. Each hop also counts against the step's `http.requests` cap.
 */
export const MAX_REDIRECTS = 20;

const REDIRECT_STATUSES = [301, 302, 303, 307, 308];

/**
 * Headers that describe a body, dropped with it when a redirect turns the
 * request into a GET: the standard's four, and the `Content-Length` that
 * StarlingMonkey's `Request` adds (sent without a body, the host API
 * refuses the request).
 */
const BODY_HEADERS = ['content-encoding', 'content-language', 'content-location', 'content-type', 'content-length'];

/**
 * The standard `fetch(input, init)`, following redirects as `redirect`
 * says (see the module's comment).
 *
 * @param {RequestInfo | URL} input
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function fetch(input, init = undefined) {
  // StarlingMonkey's Request does not keep the mode: read it from the arguments.
  const mode = init?.redirect ?? (input instanceof Request ? input.redirect : undefined) ?? 'follow';
  if (!['follow', 'error', 'manual'].includes(mode)) {
    throw new TypeError(`fetch: redirect must be "follow", "error" or "manual", not ${JSON.stringify(mode)}`);
  }
  if (mode === 'manual') return nativeFetch(input, init);

  // The request as the standard forms it from both arguments; its body
  // is read once, so a 307 or 308 can send it again.
  const request = new Request(input, init);
  let url = request.url;
  let method = request.method;
  const headers = new Headers(request.headers);
  let body = request.body === null ? null : await request.arrayBuffer();
  for (let redirects = 0; ; redirects++) {
    const response = await nativeFetch(url, { method, headers, body, signal: request.signal });
    const location = REDIRECT_STATUSES.includes(response.status) ? response.headers.get('location') : null;
    if (location === null) return redirects === 0 ? response : markRedirected(response);
    discard(response);
    if (mode === 'error') {
      throw new TypeError(`fetch: ${url} redirects (${response.status} to ${location}) and redirect is "error"`);
    }
    if (redirects === MAX_REDIRECTS) {
      throw new TypeError(`fetch: ${request.url} redirected more than ${MAX_REDIRECTS} times (the limit)`);
    }
    let next;
    try {
      next = new URL(location, url);
    } catch {
      throw new TypeError(`fetch: ${url} redirects to ${JSON.stringify(location)}, which is not a URL`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new TypeError(`fetch: ${url} redirects to ${next.href}, which is not http(s)`);
    }
    if (next.origin !== new URL(url).origin) headers.delete('authorization');
    const status = response.status;
    if ((status === 303 && method !== 'GET' && method !== 'HEAD') || ((status === 301 || status === 302) && method === 'POST')) {
      method = 'GET';
      body = null;
      for (const name of BODY_HEADERS) headers.delete(name);
    }
    url = next.href;
  }
}

/** Lets go of a redirect's body without reading it. */
function discard(response) {
  try {
    response.body?.cancel().catch(() => {});
  } catch {
    // Nothing to let go of.
  }
}

/**
 * `response` with `redirected` true: StarlingMonkey's getter says false
 * for a response to a request it made itself, so an own property hides
 * it. `url` is already the final URL.
 */
function markRedirected(response) {
  return Object.defineProperty(response, 'redirected', { value: true, enumerable: true });
}

globalThis.fetch = fetch;
