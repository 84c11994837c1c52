#!/usr/bin/env node
/**
 * Builds a weft task component from a JavaScript or TypeScript file:
 *
 *     node guest-sdk/js/build.mjs TASK.(js|ts) OUT.wasm
 *
 * (run `npm ci` in `guest-sdk/js` once first). Two stages:
 *
 * 1. rolldown bundles the task file and what it imports (relative files,
 *    `weft-sdk`, packages from the task's `node_modules`) into one ES
 *    module, stripping TypeScript types. `weft-sdk` always resolves to
 *    this SDK, so a task builds with the SDK of the build script it uses.
 * 2. componentize-js embeds that module in the StarlingMonkey JS engine
 *    and targets the `task` world of the engine's `wit/` (the directory
 *    next to `guest-sdk/`, or `WEFT_WIT` when set).
 *
 * The component imports the weft interfaces and WASI 0.2 (stdio,
 * clocks, random, and wasi:http for `fetch`), all of which the host
 * links.
 */

import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Ends the build with a message that says what went wrong. */
function fail(message) {
  console.error(`weft-sdk build: ${message}`);
  process.exit(1);
}

const [source, out] = process.argv.slice(2);
if (!source || !out || process.argv.length > 4) {
  fail('usage: node build.mjs TASK.(js|ts) OUT.wasm');
}
const sourcePath = resolve(source);
if (!existsSync(sourcePath)) fail(`the task file ${sourcePath} does not exist`);
const witPath = resolve(process.env.WEFT_WIT ?? join(here, '..', '..', 'wit'));
if (!existsSync(witPath)) {
  fail(`no WIT at ${witPath}: set WEFT_WIT to the engine's wit/ directory`);
}

let rolldown, componentize;
try {
  ({ rolldown } = await import('rolldown'));
  ({ componentize } = await import('@bytecodealliance/componentize-js'));
} catch (e) {
  fail(`the build tools are not installed (run \`npm ci\` in ${here}): ${e.message}`);
}

const started = Date.now();
const work = await mkdtemp(join(tmpdir(), 'weft-js-build-'));
try {
  // 1. One ES module, with the host's interfaces left as imports.
  const bundled = join(work, 'task.js');
  let bundle;
  try {
    bundle = await rolldown({
      input: sourcePath,
      external: [/^weft:/, /^wasi:/],
      resolve: { alias: { 'weft-sdk': join(here, 'src', 'index.js') } },
      platform: 'neutral',
      logLevel: 'warn',
    });
    const { output } = await bundle.generate({ format: 'esm' });
    await writeFile(bundled, output[0].code);
    if (!output[0].exports.includes('run')) {
      fail(`${source} exports no \`run\`: write \`export const run = task(async (input) => ...)\``);
    }
  } catch (e) {
    fail(`bundling ${source} failed: ${e.message}`);
  } finally {
    await bundle?.close();
  }

  // 2. The component.
  let component;
  try {
    ({ component } = await componentize({ sourcePath: bundled, witPath, worldName: 'task' }));
  } catch (e) {
    fail(`componentize-js could not build ${source} against ${witPath}:\n${e.message ?? e}`);
  }
  await mkdir(dirname(resolve(out)), { recursive: true });
  await writeFile(out, component);
  const mb = (component.length / (1 << 20)).toFixed(1);
  console.error(`built ${out} (${mb} MiB) from ${source} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  await rm(work, { recursive: true, force: true });
}
