/**
 * Types of weft-sdk, for tasks written in TypeScript (or checked JS).
 *
 * See `src/index.js` for the behaviour and `README.md` for the guide.
 */

/** A JSON value: what a task takes as input and returns as output. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Why a task failed, and whether another attempt could succeed. Thrown
 * from a task it becomes the WIT `task-error` with the same fields.
 */
export class TaskError extends Error {
  /**
   * @param code short, stable, machine-readable, e.g. `card_declined`
   * @param message what went wrong, for people
   * @param options `retryable: true` lets the step's retry policy try
   *   again; the default is `false`
   */
  constructor(code: string, message: string, options?: { retryable?: boolean });
  /** A short, stable, machine-readable code. */
  readonly code: string;
  /** Whether another attempt could succeed. */
  readonly retryable: boolean;
  /** A retryable error: `new TaskError(code, message, { retryable: true })`. */
  static retryable(code: string, message: string): TaskError;
}

/** What the build maps to the WIT export `run: func(input: string) -> result<string, task-error>`. */
export type RunExport = (
  input: string,
) => Promise<string | { tag: 'err'; val: { code: string; message: string; retryable: boolean } }>;

/**
 * Makes `fn` the task; export the result as `run`:
 * `export const run = task(async (input: Input): Promise<Output> => ...)`.
 *
 * The input is decoded from JSON; the returned value (or what the promise
 * resolves to) is encoded as JSON (`undefined` as `null`). A thrown
 * {@link TaskError} fails the attempt with its fields; anything else thrown
 * fails it, not retryable, with code `exception` and the error's message.
 */
export function task<I = any, O = unknown>(fn: (input: I) => O | Promise<O>): RunExport;

/** Structured log lines, stored with the attempt; arguments are joined with spaces, objects as JSON. */
export const log: {
  readonly trace: (...parts: unknown[]) => void;
  readonly debug: (...parts: unknown[]) => void;
  readonly info: (...parts: unknown[]) => void;
  readonly warn: (...parts: unknown[]) => void;
  readonly error: (...parts: unknown[]) => void;
};

/** Which tenant, workflow, run, step and attempt this is. */
export interface Context {
  /** The tenant that owns the run. */
  tenant: string;
  /** The workflow's name. */
  workflow: string;
  /** The run's id. */
  runId: string;
  /** The step's id within the workflow. */
  stepId: string;
  /** 1 for the first attempt, 2 for the first retry, and so on. */
  attempt: number;
  /** For a `for_each` step, the index of this attempt's item; `null` otherwise. */
  itemIndex: number | null;
}

/** The identity of the current attempt. */
export function context(): Context;

/** A refused kv call: a {@link TaskError} with code `kv_error`, retryable only when the store was unavailable. */
export class KvError extends TaskError {
  constructor(kind: KvError['kind'], message: string, detail?: number | string);
  /** What was refused. */
  readonly kind: 'invalid-key' | 'value-too-large' | 'too-many-writes' | 'unavailable' | 'decode' | 'encode';
  /** The cap that was hit (bytes or writes), or the store's reason. */
  readonly detail: number | string | undefined;
}

/**
 * Tenant-scoped key-value state. Writes are committed with the step's
 * result only when the attempt succeeds; reads see the attempt's writes.
 * Every call throws a {@link KvError} when the host refuses it.
 */
export const kv: {
  /** The JSON value at `key`, decoded, or `undefined` when it is not set. */
  get<T = Json>(key: string): T | undefined;
  /** Stores `value` as JSON at `key`. */
  set(key: string, value: unknown): void;
  /** The bytes at `key`, or `undefined` when it is not set. */
  getBytes(key: string): Uint8Array | undefined;
  /** Stores bytes at `key`. */
  setBytes(key: string, value: Uint8Array): void;
  /** Deletes `key`; deleting a missing key is not an error. */
  delete(key: string): void;
};

/** Secrets of the tenant that the step lists in its `secrets:`. */
export const secrets: {
  /** The value of the secret `name`, or `undefined` when the step does not list it. */
  get(name: string): string | undefined;
};

/**
 * The standard `fetch`, following redirects as the Fetch standard says
 * (`redirect: "follow"` by default, at most {@link MAX_REDIRECTS}; `"error"`
 * rejects; `"manual"` returns the 3xx with its real status and headers).
 * Every hop is a new request the host checks against the step's
 * `http.allow` list. `weft-sdk` also installs it as `globalThis.fetch`.
 */
export function fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;

/** The most redirects one `fetch` follows. */
export const MAX_REDIRECTS: number;
