/**
 * The published package works: `npm pack` ships only dist/src, the sources its maps name, the
 * addon's sources (binding.gyp, native/) and prebuilds, and the documents the README links to
 * (plus README, LICENSE and package.json), with one runtime dependency, the addon's loader
 * node-gyp-build (piscina only as an optional peer, for the pool entry); installed by plain
 * extraction into a scratch node_modules, every entry point ('xpmem-threads',
 * 'xpmem-threads/worker', 'xpmem-threads/pool') has its declared `types`, a worker started with
 * domain.spawn joins and writes memory the main thread reads, and the README's task examples
 * (section "Writing tasks": a task scaling stripes in place, and a worker keeping a cache across
 * tasks with a kept attachment) compile with the consumer tsconfig the README gives, under the
 * pinned TypeScript and under the registry's current one, and run as they say; so do the types
 * a task takes from the worker entry and the pool's error codes. A prebuild for this Node line,
 * made from the shipped addon sources in a scratch folder, is what the installed package loads
 * (it has no build of its own), and a shared domain works through it across two processes;
 * where no prebuild fits, the install script compiles the addon into build/ and the package's
 * code (dist/) stays whole. The clean script prepack runs first removes the incremental build's
 * state with its output, so the build after it emits the code the tarball ships.
 * Packs with --ignore-scripts: dist/ comes from pretest, and rebuilding here would rewrite files
 * other test files are loading.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDir } from './helpers.js';

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

/** A shared domain through the installed package: this process creates it, a forked one opens it and writes. */
const SHARED = `
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Domain } from 'xpmem-threads';
if (process.argv[2] === 'child') {
  const d = await Domain.open(process.argv[3]);
  d.space.get(Number(process.argv[4]), 'rw').attach().write(Uint32Array, (v) => { v[0] = 0xbeef; });
  await d.close();
} else {
  const name = 'pack-' + process.pid;
  const d = await Domain.create({ shared: name, arenaBytes: 1 << 20, maxArenaBytes: 1 << 20 });
  const seg = d.space.make(4096);
  const child = fork(new URL(import.meta.url), ['child', name, String(seg.id)]);
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error('child failed');
  const value = d.space.get(seg.id, 'ro').attach().read(Uint32Array, (v) => v[0]);
  await d.close();
  const addon = createRequire(import.meta.url)('node-gyp-build').path(new URL('./node_modules/xpmem-threads', import.meta.url).pathname);
  console.log(JSON.stringify({ value, addon }));
}
`;

const WORKER = `
import { joinFromWorkerData } from 'xpmem-threads/worker';
import { workerData } from 'node:worker_threads';
const att = joinFromWorkerData().get(workerData.segId, 'rw').attach();
att.write(Uint32Array, (v) => { v[0] = 0xc0ffee; });
att.detach();
`;

beforeAll(() => {
  expect(existsSync(join(ROOT, 'dist/src/index.js')), 'dist/ missing: run npm run build (npm test does)').toBe(true);
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  shipped = info!.files.map((f) => f.path);
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(scratch, info!.filename), '-C', installed, '--strip-components=1'], { timeout: 30_000 });
  symlinkSync(join(ROOT, 'node_modules', 'piscina'), join(scratch, 'node_modules', 'piscina')); // the optional peer, installed beside it
  symlinkSync(join(ROOT, 'node_modules', 'node-gyp-build'), join(scratch, 'node_modules', 'node-gyp-build')); // the one dependency
  writeFileSync(join(scratch, 'main.mjs'), MAIN);
  writeFileSync(join(scratch, 'worker.mjs'), WORKER);
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs program `file` in `cwd` with this node and returns its last line of output, parsed as JSON. */
function lastJson(cwd: string, file: string, timeout: number, env: NodeJS.ProcessEnv = process.env): unknown {
  const out = execFileSync(process.execPath, [file], { cwd, encoding: 'utf8', timeout, env });
  return JSON.parse(out.trim().split('\n').pop()!);
}

/** Writes SHARED into `dir` and runs it there: what it reports (the value the child wrote, the addon's path). */
function sharedDomainIn(dir: string, env?: NodeJS.ProcessEnv): unknown {
  writeFileSync(join(dir, 'shared.mjs'), SHARED);
  return lastJson(dir, 'shared.mjs', 60_000, env);
}

/** Runs a node-gyp tool (`script`, with `args`) in `cwd` against this Node's headers, as npm would for an install. */
function buildAddon(cwd: string, script: string, args: string[] = []): void {
  execFileSync(process.execPath, [script, ...args], { cwd, env: { ...process.env, npm_config_nodedir: nodeDir() }, timeout: 180_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The code blocks of README.md marked `<!-- file: name -->`, by name. */
function readmeFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [, name, code] of readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```/g)) files.set(name!, code!);
  return files;
}

/** The consumer tsconfig: the README's compilerOptions (the JSON block after "in their `tsconfig.json`"), strict, emitting to out/. */
function consumerTsconfig(): object {
  const [, json] = /in their `tsconfig\.json`[\s\S]*?```json\n([\s\S]*?)```/.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))!;
  const { compilerOptions } = JSON.parse(json!) as { compilerOptions: Record<string, unknown> };
  return { compilerOptions: { ...compilerOptions, strict: true, skipLibCheck: false, outDir: 'out' }, include: ['*.ts'] };
}

/**
 * Beside the README's files: what a task module types from the worker entry, and the pool's
 * refusals, through the installed package.
 */
const CHECKS = `
import { Domain, XpmemError } from 'xpmem-threads';
import { createPool } from 'xpmem-threads/pool';
import type { Access, Attachment, KeepOptions, Mapping, Notifier, Range, Section, Segment, Space, ViewType, WaitOptions, XpmemErrorAbout } from 'xpmem-threads/worker';

export type TaskTypes = [Access, Attachment, KeepOptions, Mapping, Notifier, Range, Section<Float64Array>, Segment, Space, ViewType<Float32Array>, WaitOptions, XpmemErrorAbout];
const domain = await Domain.create({ arenaBytes: 1 << 20 });
const pool = createPool(domain, { filename: new URL('./scale-task.js', import.meta.url), maxThreads: 1 });
const seg = domain.space.make(64);
const missing = await pool.run({ segId: seg.id, from: 0, to: 1 }, { name: 'nope' }).catch((e: unknown) => e as Error & { code?: string });
const sync = (() => { try { createPool(domain, { filename: 'x.js', atomics: 'sync' }); } catch (e) { return (e as { code?: string }).code; } })();
const wrongMode = await pool.run({ segId: domain.space.make(64, { permit: 'ro' }).id, from: 0, to: 1 }).catch((e: unknown) => e);
console.log(missing.constructor.name, missing.code, sync, wrongMode instanceof XpmemError && wrongMode.code);
await pool.close();
await domain.close();
`;

/** A consumer project in `dir`: the README's files and CHECKS, its tsconfig, and node_modules linking the packed package and `types` (piscina is the package's sibling). */
function consumer(dir: string, types: string): void {
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(installed, join(dir, 'node_modules', 'xpmem-threads'));
  symlinkSync(types, join(dir, 'node_modules', '@types', 'node'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(consumerTsconfig()));
  for (const [name, code] of readmeFiles()) writeFileSync(join(dir, name), code);
  writeFileSync(join(dir, 'checks.ts'), CHECKS);
}

/** Runs TypeScript's compiler `tsc` (a path to its bin script) on the consumer project in `dir`; its diagnostics, or ''. */
function compile(tsc: string, dir: string): string {
  const run = spawnSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return run.status === 0 ? '' : `${run.stdout}${run.stderr}`;
}

describe('the packed package', () => {
  it("ships dist/src, its sources and the addon's, one runtime dependency (the addon loader), and the declared types", () => {
    expect(
      shipped.filter(
        (p) =>
          !/^(dist\/src\/.+|src\/.+\.ts|native\/.+\.(cc|h)|binding\.gyp|prebuilds\/linux-x64\/xpmem-threads\.abi\d+\.node|docs\/.+\.md|bench\/results\/latest\.svg|test\/model\/README\.md|package\.json|README\.md|LICENSE(\..+)?)$/.test(
            p,
          ),
      ),
    ).toEqual([]);
    expect(shipped).toEqual(expect.arrayContaining(['binding.gyp', 'native/xpmem.cc', 'native/ring.cc', 'native/ring.h']));
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      dependencies?: object;
      scripts?: Record<string, string>;
      peerDependencies?: object;
      peerDependenciesMeta?: object;
      exports: Record<string, { types: string; default: string }>;
    };
    expect(pkg.dependencies).toEqual({ 'node-gyp-build': expect.any(String) });
    expect(pkg.scripts?.install).toBe('node-gyp-build');
    expect(pkg.peerDependencies).toEqual({ piscina: expect.any(String) });
    expect(pkg.peerDependenciesMeta).toEqual({ piscina: { optional: true } });
    expect(Object.keys(pkg.exports)).toEqual(['.', './worker', './pool']);
    for (const entry of Object.values(pkg.exports)) {
      expect(existsSync(join(installed, entry.types)), entry.types).toBe(true);
      expect(existsSync(join(installed, entry.default)), entry.default).toBe(true);
    }
  });

  it('both entry points import by name; a spawned worker writes what the main thread reads', () => {
    expect(lastJson(scratch, 'main.mjs', 30_000)).toEqual({ value: 0xc0ffee, ok: true, from: expect.stringContaining(scratch) });
  });

  it('a prebuild made from the shipped sources is what the installed package loads, with no build of its own: a forked process opens its shared domain', () => {
    const work = join(scratch, 'prebuild');
    mkdirSync(work);
    for (const file of ['package.json', 'binding.gyp', ...shipped.filter((p) => p.startsWith('native/'))]) {
      mkdirSync(dirname(join(work, file)), { recursive: true });
      writeFileSync(join(work, file), readFileSync(join(installed, file)));
    }
    buildAddon(work, join(ROOT, 'node_modules', 'prebuildify', 'bin.js'), ['--napi=false', '--strip', '--target', `node@${process.versions.node}`]);
    const prebuilt = `prebuilds/linux-x64/xpmem-threads.abi${process.versions.modules}.node`;
    mkdirSync(dirname(join(installed, prebuilt)), { recursive: true });
    writeFileSync(join(installed, prebuilt), readFileSync(join(work, prebuilt)));
    expect(existsSync(join(installed, 'build', 'Release'))).toBe(false);
    expect(sharedDomainIn(scratch, { ...process.env, PREBUILDS_ONLY: '1' })).toEqual({ value: 0xbeef, addon: join(installed, prebuilt) });
  });

  it('where no prebuild fits, the install script compiles the addon, and the package keeps its code: a forked process opens its shared domain', () => {
    const project = join(scratch, 'compiled');
    const copy = join(project, 'node_modules', 'xpmem-threads');
    cpSync(installed, copy, { recursive: true });
    rmSync(join(copy, 'prebuilds'), { recursive: true, force: true }); // none fits: another platform, another Node line
    symlinkSync(join(ROOT, 'node_modules', 'node-gyp-build'), join(project, 'node_modules', 'node-gyp-build'));
    // What npm runs as the package's install script ("node-gyp-build"): node-gyp rebuild, in the package's folder.
    buildAddon(copy, join(ROOT, 'node_modules', 'node-gyp-build', 'bin.js'));
    expect(existsSync(join(copy, 'build', 'Release', 'xpmem.node'))).toBe(true);
    expect(sharedDomainIn(project)).toEqual({ value: 0xbeef, addon: join(copy, 'build', 'Release', 'xpmem.node') });
  });

  it('the clean script (prepack runs it before the build) removes the incremental build state with the output, so the build after it emits the code', () => {
    const dir = join(scratch, 'clean');
    const { outDir, tsBuildInfoFile } = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; tsBuildInfoFile: string } }).compilerOptions;
    mkdirSync(join(dir, outDir, 'src'), { recursive: true });
    writeFileSync(join(dir, outDir, 'src', 'index.js'), '');
    writeFileSync(join(dir, tsBuildInfoFile), '{}'); // what tsc would trust, and then emit nothing
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.prepack).toMatch(/^npm run clean && npm run build\b/);
    execFileSync('sh', ['-c', scripts.clean!], { cwd: dir, timeout: 30_000 });
    expect([existsSync(join(dir, outDir, 'src')), existsSync(join(dir, tsBuildInfoFile))]).toEqual([false, false]);
  });

  it('every relative link of the shipped README and docs resolves inside the installed package', () => {
    const broken: string[] = [];
    for (const doc of shipped.filter((p) => p.endsWith('.md'))) {
      const text = readFileSync(join(installed, doc), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)#:\s]+)(?:#[^)]*)?\)/g)) {
        if (!existsSync(join(installed, dirname(doc), target!))) broken.push(`${doc} -> ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("the README's task examples compile with the pinned TypeScript and the README's tsconfig, and run as they say", () => {
    const dir = join(scratch, 'pinned');
    consumer(dir, join(ROOT, 'node_modules', '@types', 'node'));
    expect([...readmeFiles().keys()]).toEqual(['scale-task.ts', 'scale.ts', 'total-task.ts', 'total.ts']);
    expect(compile(join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), dir)).toBe('');
    const run = (file: string): string[] =>
      execFileSync(process.execPath, [join('out', file)], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
        .trim()
        .split('\n');
    expect(run('scale.js')).toEqual(['2', 'ERR_XPMEM_NO_SEGMENT true']);
    expect(run('total.js')).toEqual(['1024 false', '1024 true', '1024 false', '2048 false']); // built, kept, rebuilt after a migrate, a new version
    const checks = execFileSync(process.execPath, [join('out', 'checks.js')], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(checks.trim()).toBe('TypeError ERR_INVALID_ARG_VALUE ERR_INVALID_ARG_VALUE ERR_XPMEM_PERMISSION');
  });

  // The registry's current TypeScript and @types/node (TypeScript 7 needs "types": ["node"]); skipped offline.
  const registry = spawnSync('npm', ['view', 'typescript', 'version'], { encoding: 'utf8', timeout: 30_000 });
  it.skipIf(registry.status !== 0)(
    `the README's task examples compile with the current TypeScript (${registry.stdout?.trim() || 'offline'}) and @types/node`,
    () => {
      const tools = join(scratch, 'current-tools');
      mkdirSync(tools);
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', tools, 'typescript@latest', '@types/node@latest'], {
        encoding: 'utf8',
        timeout: 180_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const dir = join(scratch, 'current');
      consumer(dir, join(tools, 'node_modules', '@types', 'node'));
      const tsc = join(tools, 'node_modules', 'typescript', 'bin', 'tsc');
      expect(compile(tsc, dir)).toBe('');
    },
    240_000,
  );
});
