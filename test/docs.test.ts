/**
 * The API reference (`npm run docs`, TypeDoc over the three entry points) documents every
 * export: typedoc.json turns an undocumented export, a type referenced but not exported, or a
 * broken link into an error.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('the API reference', () => {
  it('documents every export of xpmem-threads, xpmem-threads/worker and xpmem-threads/pool', () => {
    const run = spawnSync(process.execPath, ['node_modules/typedoc/bin/typedoc', '--emit', 'none'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
  });
});
