/**
 * Greets by name: the smallest useful task, in JavaScript. It mirrors the
 * Rust `example-tasks/hello`: input `{"name": "Ada"}` (name defaults to
 * "world"), output `{"greeting": "Hello, Ada!"}`.
 */

import { task, TaskError, log } from 'weft-sdk';

export const run = task(async (input) => {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TaskError('invalid_input', 'the input must be an object like {"name": "Ada"}');
  }
  const unknown = Object.keys(input).find((key) => key !== 'name');
  if (unknown !== undefined) {
    throw new TaskError('invalid_input', `unknown field \`${unknown}\`, expected \`name\``);
  }
  const name = input.name ?? 'world';
  if (typeof name !== 'string') throw new TaskError('invalid_input', 'name must be a string');
  if (name === '') throw new TaskError('invalid_input', 'name must not be empty');
  log.info(`greeting ${name}`);
  return { greeting: `Hello, ${name}!` };
});
