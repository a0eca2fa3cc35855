/** `npm run demo` tells the whole story and exits: the examples are part of what must work. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BOUND } from './helpers.js';

describe('the demo', () => {
  it('exports, attaches, migrates, protects and revokes with real workers, then exits cleanly', async () => {
    const demo = new URL('../build/examples/demo.js', import.meta.url);
    const { stdout } = await promisify(execFile)(process.execPath, [demo.pathname], { timeout: BOUND });
    for (const step of ['pattern verified', 'migrate: done', 'pattern intact', 'ERR_XPMEM_PERMISSION', 'ERR_XPMEM_REMOVED', 'domain.check(): consistent']) {
      expect(stdout).toContain(step);
    }
    expect(stdout).toContain('(0 lost)');
  });
});
