/**
 * Misbehaves on request, for the limit tests of JavaScript guests: the
 * engine must stop a JS task that spins or hoards memory, and map what it
 * throws to the attempt's outcome. Mirrors the Rust
 * `example-tasks/misbehave` for the modes a JS task can reach.
 *
 * Input: `{"mode": "<mode>", ...}`:
 * - `spin`: loops forever without calling the host;
 * - `allocate`: allocates (and fills) 1 MiB after 1 MiB, never freeing;
 * - `task_error`: throws `new TaskError(code, message, {retryable})` from
 *   the input's `code`, `message` and `retryable`;
 * - `throw`: throws `new Error(message)`;
 * - `throw_value`: throws the input's `value` as it is (not an Error);
 * - `fetch`: fetches the input's `url` and returns its status and body
 *   (the host's `http.allow` decides whether it goes out);
 * - `echo`: returns the input, after the attempt's context and a kv
 *   round trip, so tests can see the host's side.
 */

import { task, TaskError, context, kv, log } from 'weft-sdk';

export const run = task(async (input) => {
  switch (input.mode) {
    case 'spin': {
      let n = 0;
      for (;;) n = (n + 1) | 0;
    }
    case 'allocate': {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(0xab));
    }
    case 'task_error':
      throw new TaskError(input.code, input.message, { retryable: input.retryable });
    case 'throw':
      throw new Error(input.message);
    case 'throw_value':
      throw input.value;
    case 'fetch': {
      const response = await fetch(input.url);
      return { status: response.status, body: await response.text() };
    }
    case 'echo': {
      const before = kv.get('echo/count') ?? 0;
      kv.set('echo/count', before + 1);
      log.debug('echo', { before });
      return { input, context: context(), count: kv.get('echo/count') };
    }
    default:
      throw new TaskError('invalid_input', `unknown mode ${JSON.stringify(input.mode)}`);
  }
});
