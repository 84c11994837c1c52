/**
 * {{name}}: a weft task in JavaScript.
 *
 * The step's input arrives decoded from JSON; what the function returns is
 * the step's output, encoded as JSON. Throw `new TaskError(code, message,
 * { retryable })` to fail the attempt on purpose; anything else thrown
 * fails it with code `exception`, not retried.
 */

import { task, TaskError, log, context } from 'weft-sdk';

export const run = task(async (input) => {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TaskError('invalid_input', 'the input must be a JSON object');
  }
  const { attempt } = context();
  log.info(`{{name}} runs, attempt ${attempt}`);
  return { task: '{{name}}', received: input };
});
