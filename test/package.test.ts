/**
 * The published package works: `npm pack` ships only build/src and the sources its maps name
 * (plus README, LICENSE and package.json),
 * with no runtime dependencies (piscina only as an optional peer, for the pool entry); installed
 * by plain extraction into a scratch node_modules, every entry point ('xpmem-threads',
 * 'xpmem-threads/worker', 'xpmem-threads/pool') has its declared `types`, and a worker started
 * with domain.spawn joins and writes memory the main thread reads.
 * Packs with --ignore-scripts: build/ comes from pretest, and rebuilding here would rewrite files
 * other test files are loading.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'xpmem-pack-')));
const installed = join(scratch, 'node_modules', 'xpmem-threads');
let shipped: string[] = [];

const MAIN = `
import { once } from 'node:events';
import { Domain } from 'xpmem-threads';
import { join } from 'xpmem-threads/worker';
if (typeof join !== 'function') throw new Error('worker entry lacks join');
const d = await Domain.create({ arenaBytes: 1 << 20 });
const seg = d.space.make(4096, { name: 'pack' });
const w = d.spawn(new URL('./worker.mjs', import.meta.url), { workerData: { segId: seg.id } });
w.on('error', (e) => { console.error(e); process.exit(1); });
await once(w, 'exit');
const value = d.space.get(seg.id, 'ro').attach().read(Uint32Array, (v) => v[0]);
await seg.remove();
await d.settled();
const report = d.check();
await d.close();
console.log(JSON.stringify({ value, ok: report.ok, from: import.meta.resolve('xpmem-threads') }));
`;

const WORKER = `
import { joinFromWorkerData } from 'xpmem-threads/worker';
import { workerData } from 'node:worker_threads';
const att = joinFromWorkerData().get(workerData.segId, 'rw').attach();
att.write(Uint32Array, (v) => { v[0] = 0xc0ffee; });
att.detach();
`;

beforeAll(() => {
  expect(existsSync(join(ROOT, 'build/src/index.js')), 'build/ missing: run npm run build (npm test does)').toBe(true);
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  shipped = info!.files.map((f) => f.path);
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(scratch, info!.filename), '-C', installed, '--strip-components=1'], { timeout: 30_000 });
  writeFileSync(join(scratch, 'main.mjs'), MAIN);
  writeFileSync(join(scratch, 'worker.mjs'), WORKER);
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the packed package', () => {
  it('ships build/src and its sources only, no runtime dependencies, and the declared types', () => {
    expect(shipped.filter((p) => !/^(build\/src\/.+|src\/.+\.ts|package\.json|README\.md|LICENSE(\..+)?)$/.test(p))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      dependencies?: object; peerDependencies?: object; peerDependenciesMeta?: object; exports: Record<string, { types: string; default: string }>;
    };
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(pkg.peerDependencies).toEqual({ piscina: expect.any(String) });
    expect(pkg.peerDependenciesMeta).toEqual({ piscina: { optional: true } });
    expect(Object.keys(pkg.exports)).toEqual(['.', './worker', './pool']);
    for (const entry of Object.values(pkg.exports)) {
      expect(existsSync(join(installed, entry.types)), entry.types).toBe(true);
      expect(existsSync(join(installed, entry.default)), entry.default).toBe(true);
    }
  });

  it('both entry points import by name; a spawned worker writes what the main thread reads', () => {
    const out = execFileSync(process.execPath, ['main.mjs'], { cwd: scratch, encoding: 'utf8', timeout: 30_000 });
    const result = JSON.parse(out.trim().split('\n').pop()!) as { value: number; ok: boolean; from: string };
    expect(result).toEqual({ value: 0xc0ffee, ok: true, from: expect.stringContaining(scratch) });
  });
});
