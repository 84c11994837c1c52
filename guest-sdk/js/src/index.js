/**
 * weft-sdk: write weft tasks in JavaScript or TypeScript.
 *
 * A task is one function, wrapped with {@link task} and exported as `run`:
 *
 * ```js
 * import { task, TaskError, log } from 'weft-sdk';
 *
 * export const run = task(async ({ name = 'world' }) => {
 *   if (!name) throw new TaskError('invalid_input', 'name must not be empty');
 *   log.info(`greeting ${name}`);
 *   return { greeting: `Hello, ${name}!` };
 * });
 * ```
 *
 * `node guest-sdk/js/build.mjs task.js task.wasm` turns the file into a
 * component targeting the `task` world of `wit/task.wit`. The imports
 * below (`weft:task/...`) are the host's interfaces; they only resolve
 * inside that build, never under plain Node.js.
 */

import './fetch.js';
import { log as wasiLog } from 'weft:task/log@0.1.0';
import { current } from 'weft:task/context@0.1.0';
import * as wkv from 'weft:task/kv@0.1.0';
import * as wsecrets from 'weft:task/secrets@0.1.0';

/**
 * Why a task failed, and whether another attempt could succeed. Throw it
 * from a task: it becomes the WIT `task-error` with the same fields.
 */
export class TaskError extends Error {
  /**
   * @param {string} code short, stable, machine-readable (`card_declined`)
   * @param {string} message what went wrong, for people
   * @param {{retryable?: boolean}} [options] `retryable: true` lets the
   *   step's retry policy try again; the default is `false`
   */
  constructor(code, message, { retryable = false } = {}) {
    super(message);
    this.name = 'TaskError';
    /** @type {string} */
    this.code = String(code);
    /** @type {boolean} */
    this.retryable = Boolean(retryable);
  }

  /** A transient failure the engine may retry: `new TaskError(code, message, {retryable: true})`. */
  static retryable(code, message) {
    return new TaskError(code, message, { retryable: true });
  }
}

/** The WIT `task-error` for anything a task threw. */
function toWitError(thrown) {
  if (thrown instanceof TaskError) {
    return { code: thrown.code, message: thrown.message, retryable: thrown.retryable };
  }
  // Anything else is a bug or an unexpected failure: not retried.
  let message;
  if (thrown instanceof Error) {
    message = thrown.name && thrown.name !== 'Error' ? `${thrown.name}: ${thrown.message}` : thrown.message;
  } else {
    message = describe(thrown);
  }
  return { code: 'exception', message, retryable: false };
}

/**
 * Whether `thrown` is the JS engine's out-of-memory error, which it raises
 * (as the string "out of memory") when the sandbox refuses to grow memory.
 */
function isOutOfMemory(thrown) {
  const text = thrown instanceof Error ? thrown.message : thrown;
  return text === 'out of memory';
}

/** Text for a value of any type, as a log line or message shows it. */
function describe(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  } catch {
    return String(value);
  }
}

/**
 * Makes `fn` the task: export the result as `run`
 * (`export const run = task(fn)`).
 *
 * `fn` gets the step's input decoded from JSON and may be async; what it
 * returns (or resolves to) is encoded as JSON and becomes the step's
 * output (`undefined` becomes `null`). A thrown {@link TaskError} fails the
 * attempt with its code, message and retryable flag; anything else thrown
 * fails it, not retryable, with code `exception` and the error's message.
 *
 * @param {(input: any) => any} fn
 * @returns {(input: string) => Promise<string | {tag: 'err', val: object}>}
 *   the WIT export; the build maps it to `result<string, task-error>`
 */
export function task(fn) {
  if (typeof fn !== 'function') {
    throw new TypeError(`task() takes the task function, not ${describe(fn)}`);
  }
  return async function run(input) {
    try {
      let value;
      try {
        value = JSON.parse(input);
      } catch (e) {
        throw new TaskError('invalid_input', `the input is not JSON: ${e.message}`);
      }
      const output = await fn(value);
      let text;
      try {
        text = JSON.stringify(output === undefined ? null : output);
      } catch (e) {
        throw new TaskError('invalid_output', `the task's output cannot be encoded as JSON: ${e.message}`);
      }
      if (text === undefined) {
        throw new TaskError('invalid_output', `the task returned ${typeof output}, which JSON cannot encode`);
      }
      return text;
    } catch (thrown) {
      if (isOutOfMemory(thrown)) {
        // Not the task's error but the sandbox's memory limit: rethrown,
        // the attempt traps and the engine reports `memory_limit`.
        console.error('weft-sdk: the task ran out of memory (the step\'s memory limit); ending the attempt');
        throw new Error('weft-sdk: the task ran out of memory');
      }
      // Returned, not thrown: the component's `run` lifts a `{tag, val}`
      // object as the `result` variant as it is.
      return { tag: 'err', val: toWitError(thrown) };
    }
  };
}

function logAt(level) {
  return (...parts) => wasiLog(level, parts.map(describe).join(' '));
}

/**
 * Structured log lines, stored with the attempt. Each function joins its
 * arguments with spaces (objects as JSON). `console.log` and
 * `console.error` output is kept too, as the attempt's stdout and stderr.
 */
export const log = Object.freeze({
  trace: logAt('trace'),
  debug: logAt('debug'),
  info: logAt('info'),
  warn: logAt('warn'),
  error: logAt('error'),
});

/**
 * The identity of the current attempt.
 *
 * @returns {{tenant: string, workflow: string, runId: string,
 *   stepId: string, attempt: number, itemIndex: number | null}}
 */
export function context() {
  const info = current();
  return {
    tenant: info.tenant,
    workflow: info.workflow,
    runId: info.runId,
    stepId: info.stepId,
    attempt: info.attempt,
    itemIndex: info.itemIndex ?? null,
  };
}

/**
 * A kv call the host refused. It is a {@link TaskError} with code
 * `kv_error` (retryable only when the store was unavailable), so a task
 * that does not catch it fails the attempt with that code.
 */
export class KvError extends TaskError {
  /**
   * @param {string} kind `invalid-key`, `value-too-large`,
   *   `too-many-writes`, `unavailable`, `decode` or `encode`
   * @param {string} message what went wrong
   * @param {number | string} [detail] the cap, or the store's reason
   */
  constructor(kind, message, detail) {
    super('kv_error', message, { retryable: kind === 'unavailable' });
    this.name = 'KvError';
    /** @type {string} */
    this.kind = kind;
    this.detail = detail;
  }
}

/** Runs a kv import, turning its `kv-error` into a {@link KvError}. */
function kvCall(what, key, call) {
  try {
    return call();
  } catch (e) {
    const err = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
    const tag = err && err.tag;
    const val = err && err.val;
    const message = {
      'invalid-key': `kv key ${JSON.stringify(key)} must be 1 to ${val} bytes`,
      'value-too-large': `kv value for ${JSON.stringify(key)} is larger than ${val} bytes`,
      'too-many-writes': `an attempt may make at most ${val} kv writes`,
      unavailable: `kv store unavailable: ${val}`,
    }[tag];
    if (message === undefined) throw e;
    throw new KvError(tag, `kv ${what}: ${message}`, val);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Tenant-scoped key-value state. Values are stored as JSON (`get`/`set`)
 * or as raw bytes (`getBytes`/`setBytes`). Writes are buffered and
 * committed with the step's result only when the attempt succeeds; reads
 * see the attempt's own writes.
 */
export const kv = Object.freeze({
  /** The bytes stored at `key`, or `undefined` when it is not set. */
  getBytes(key) {
    return kvCall('get', key, () => wkv.get(key));
  },
  /** Stores bytes (a `Uint8Array`) at `key`. */
  setBytes(key, value) {
    kvCall('set', key, () => wkv.set(key, value));
  },
  /** The JSON value stored at `key`, decoded, or `undefined` when it is not set. */
  get(key) {
    const bytes = kv.getBytes(key);
    if (bytes === undefined) return undefined;
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (e) {
      throw new KvError('decode', `kv get: the value of ${JSON.stringify(key)} is not JSON: ${e.message}`);
    }
  },
  /** Stores `value` as JSON at `key`. */
  set(key, value) {
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new KvError('encode', `kv set: a ${typeof value} cannot be stored as JSON at ${JSON.stringify(key)}`);
    }
    kv.setBytes(key, encoder.encode(text));
  },
  /** Deletes `key`; deleting a missing key is not an error. */
  delete(key) {
    kvCall('delete', key, () => wkv.delete(key));
  },
});

/**
 * Secrets of the tenant that the step lists in its `secrets:`. Prefer the
 * step's `http.headers`, which the host adds to requests without the task
 * seeing the value; a value read here is redacted from the attempt's logs,
 * output and errors, but the task can still send it anywhere its step may
 * reach.
 */
export const secrets = Object.freeze({
  /** The value of the secret `name`, or `undefined` when the step does not list it. */
  get(name) {
    return wsecrets.get(name);
  },
});

// Importing ./fetch.js gives every task a `fetch` that follows redirects
// (the engine's own does not): it replaces `globalThis.fetch`.
export { fetch, MAX_REDIRECTS } from './fetch.js';
