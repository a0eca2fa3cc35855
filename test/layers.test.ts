/**
 * The house has floors (docs/LAYERS.md): every top-level folder or file of src/ stands on one
 * floor and imports only from floors below it, or from its own floor without closing a cycle.
 * Every import counts: `import type`, `export ... from`, and `import()` of a literal path. The
 * floors are read from the table in docs/LAYERS.md, so the rule and its documentation are one.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/** floor of each node ('sync/', 'mm.ts', ...) and the file each folder opens with, from docs/LAYERS.md. */
function floorsFromDocs(): { floors: Map<string, number>; opens: Map<string, string> } {
  const floors = new Map<string, number>();
  const opens = new Map<string, string>();
  for (const line of readFileSync(join(ROOT, 'docs/LAYERS.md'), 'utf8').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length !== 6 || !/^\d+$/.test(cells[1]!)) continue; // | floor | nodes | holds | opens with |
    const floor = Number(cells[1]);
    for (const [, node] of cells[2]!.matchAll(/`([^`]+)`/g)) floors.set(node!, floor);
    for (const [, file] of cells[4]!.matchAll(/`([^`]+)`/g)) opens.set(file!.slice(0, file!.indexOf('/') + 1), file!);
  }
  return { floors, opens };
}

/** Every .ts file under `dir`, as paths relative to src/ with '/' separators. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [relative(SRC, path).split(sep).join('/')] : [];
  });
}

/** The module paths a file imports, statically or by import() of a literal. */
function importsOf(text: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] !== undefined && ts.isStringLiteralLike(node.arguments[0])) {
      found.push(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest, true));
  return found;
}

/** The top-level node of src/ a file belongs to: its folder ('sync/') or itself ('mm.ts'). */
function nodeOf(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? file : file.slice(0, slash + 1);
}

/** Imports between nodes: from -> to -> one file-level import that proves it. */
type Graph = Map<string, Map<string, string>>;

function graphOf(files: Map<string, string[]>): Graph {
  const graph: Graph = new Map();
  for (const [file, specs] of files) {
    const from = nodeOf(file);
    if (!graph.has(from)) graph.set(from, new Map());
    for (const spec of specs) {
      if (!spec.startsWith('.')) continue;
      const target = join(dirname(file), spec).split(sep).join('/').replace(/\.js$/, '.ts');
      const to = nodeOf(target);
      if (to !== from && !graph.get(from)!.has(to)) graph.get(from)!.set(to, `${file} imports ${target}`);
    }
  }
  return graph;
}

/** What breaks the floors: a node without a floor, an import to a higher floor, a cycle between nodes. */
function violations(graph: Graph, floors: Map<string, number>): string[] {
  const found: string[] = [];
  for (const node of graph.keys()) if (!floors.has(node)) found.push(`${node} stands on no floor of docs/LAYERS.md`);
  for (const [from, edges] of graph) {
    for (const [to, why] of edges) {
      if ((floors.get(to) ?? Infinity) > (floors.get(from) ?? -Infinity)) found.push(`upward: ${why} (floor ${floors.get(from)} -> ${floors.get(to)})`);
    }
  }
  // A cycle can only close on one floor (every other edge runs down): depth-first search for it.
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const to of graph.get(node)?.keys() ?? []) {
      if (state.get(to) === 'open') found.push(`cycle: ${[...path.slice(path.indexOf(to)), to].join(' -> ')}`);
      else if (state.get(to) === undefined) visit(to);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (state.get(node) === undefined) visit(node);
  return found;
}

describe('layers', () => {
  const { floors, opens } = floorsFromDocs();
  const files = new Map(sources(SRC).map((f) => [f, importsOf(readFileSync(join(SRC, f), 'utf8'))]));

  it('no import between the folders and top-level files of src/ runs upward or closes a cycle', () => {
    expect(floors.size).toBeGreaterThan(8);
    expect(violations(graphOf(files), floors)).toEqual([]);
  });

  it('each folder opens with a header naming its floor', () => {
    const folders = new Set([...files.keys()].map(nodeOf).filter((n) => n.endsWith('/')));
    for (const folder of folders) {
      const file = opens.get(folder);
      expect(file, `docs/LAYERS.md names the file ${folder} opens with`).toBeDefined();
      const header = /^\/\*\*([\s\S]*?)\*\//.exec(readFileSync(join(SRC, file!), 'utf8'))?.[1] ?? '';
      expect(header, `${file} opens with its floor`).toContain(`Floor ${floors.get(folder)}`);
    }
  });

  it('the check catches an upward import, a cycle on one floor, a type-only import and an import() (so it can fail)', () => {
    const src = new Map(files);
    src.set('sync/futex.ts', [...files.get('sync/futex.ts')!, ...importsOf("import type { Mm } from '../mm.js';")]);
    expect(violations(graphOf(src), floors)).toContain('upward: sync/futex.ts imports mm.ts (floor 2 -> 5)');
    const cyclic = new Map(files);
    cyclic.set('layout.ts', [...files.get('layout.ts')!, ...importsOf("const s = await import('./stats.js');")]);
    expect(violations(graphOf(cyclic), floors)).toEqual([expect.stringMatching(/^cycle: .*layout\.ts.*stats\.ts|^cycle: .*stats\.ts.*layout\.ts/)]);
    const unplaced = new Map(files);
    unplaced.set('extra/thing.ts', []);
    expect(violations(graphOf(unplaced), floors)).toEqual(['extra/ stands on no floor of docs/LAYERS.md']);
  });
});
