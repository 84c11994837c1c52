/**
 * `fetch` that follows redirects as the Fetch standard says.
 *
 * The JS engine's own `fetch` (StarlingMonkey's, over
 * `wasi:http/outgoing-handler`) sends one request and resolves with
 * whatever answers, a 3xx included, whatever `redirect` says; and the
 * host never follows a redirect itself, so that every hop is a request it
 * checks against the step's `http.allow` list. This module wraps that
 * `fetch` (and `weft-sdk` installs it as `globalThis.fetch`) so a task
 * gets what it would in a browser or Node.js:
 *
 * - `redirect: "follow"` (the default) follows 301, 302, 303, 307 and 308
 *   answers that carry a `Location`, at most {@link MAX_REDIRECTS} of
 *   them, each a new request of the engine's `fetch` (so the host checks
 *   every hop, and a hop off the allow-list rejects like any refused
 *   fetch). A 303, and a 301 or 302 answering a `POST`, continue as a
 *   `GET` without the body or its headers; an `Authorization` header is
 *   dropped when a hop leaves the origin. The final response says
 *   `redirected: true`, and its `url` is the last hop's.
 * - `redirect: "error"` rejects with a `TypeError` on a redirect.
 * - `redirect: "manual"` resolves with the 3xx itself. Unlike a browser's
 *   opaque-redirect response, it has its real status and headers
 *   (`Location` included).
 */

const engineFetch = globalThis.fetch;

/** The most redirects one `fetch` follows (the Fetch standard's limit). */
export const MAX_REDIRECTS = 20;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Headers that describe a body, dropped with it when a hop turns into a `GET`. */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location'];

/**
 * @param {string | URL | Request} input
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function fetch(input, init = {}) {
  let { url, options } = await normalize(input, init);
  const mode = options.redirect ?? 'follow';
  delete options.redirect;
  for (let hops = 0; ; hops += 1) {
    const response = await engineFetch(url, options);
    const location = response.headers.get('location');
    if (mode === 'manual' || !REDIRECTS.has(response.status) || location === null) {
      return hops === 0 ? response : redirected(response);
    }
    if (mode === 'error') {
      throw new TypeError(`fetch: ${url} answered ${response.status} (a redirect) and the request's redirect is "error"`);
    }
    if (hops === MAX_REDIRECTS) {
      throw new TypeError(`fetch: more than ${MAX_REDIRECTS} redirects, the last from ${url}`);
    }
    await response.arrayBuffer().catch(() => undefined); // done with this one
    const next = new URL(location, url);
    const method = options.method.toUpperCase();
    if (options.body instanceof ReadableStream && ![301, 302, 303].includes(response.status)) {
      throw new TypeError(`fetch: ${url} answered ${response.status}, which needs the body sent again, and a stream cannot be`);
    }
    if ((response.status === 303 && method !== 'HEAD') || ([301, 302].includes(response.status) && method === 'POST')) {
      options = { ...options, method: 'GET', body: undefined };
      for (const name of BODY_HEADERS) options.headers.delete(name);
    }
    if (next.origin !== new URL(url).origin) options.headers.delete('authorization');
    url = next.href;
  }
}

/** The URL and a request's options, with a body that can be sent again. */
async function normalize(input, init) {
  if (input instanceof Request) {
    const method = init.method ?? input.method;
    const body = init.body !== undefined ? init.body : hasBody(method) ? await input.arrayBuffer() : undefined;
    const options = { ...init, method, body, headers: new Headers(init.headers ?? input.headers), redirect: init.redirect ?? input.redirect };
    return { url: input.url, options };
  }
  return {
    url: String(input),
    options: { ...init, method: init.method ?? 'GET', headers: new Headers(init.headers) },
  };
}

function hasBody(method) {
  return !['GET', 'HEAD'].includes(method.toUpperCase());
}

/** The final response of a followed redirect, marked as such. */
function redirected(response) {
  Object.defineProperty(response, 'redirected', { value: true });
  return response;
}
