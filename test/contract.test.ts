/**
 * Every promise of docs/CONTRACT.md names, in brackets, the test that fails when it is broken,
 * and the table at its end says where each tag lives. This keeps the two honest: every tag of
 * the text has a row, every row is cited, and every row's test exists in the file it names
 * (its title contains the row's words).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const CONTRACT = readFileSync(join(ROOT, 'docs/CONTRACT.md'), 'utf8');
const [TEXT, TABLE] = CONTRACT.split('\n## The tests named above\n') as [string, string];

interface Row {
  readonly tags: string[];
  readonly file: string;
  readonly test: string;
}

/** The table's rows; a row `family: a, b` stands for the tags `family: a` and `family: b`. */
function rows(): Row[] {
  return TABLE.split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| tag') && !l.startsWith('| ---'))
    .map((line) => {
      const [tag, file, test] = line
        .split('|')
        .slice(1, 4)
        .map((c) => c.trim()) as [string, string, string];
      const colon = tag.indexOf(': ');
      const tags =
        colon < 0
          ? [tag]
          : tag
              .slice(colon + 2)
              .split(', ')
              .map((name) => `${tag.slice(0, colon)}: ${name}`);
      return { tags, file, test };
    });
}

/** The tags the text cites: `[family: name]` or `[family]`, possibly broken across lines. */
function cited(): Set<string> {
  const flat = TEXT.replace(/\s*\n\s*/g, ' ');
  return new Set([...flat.matchAll(/\[([a-z][a-z ]*(?:: [^\]]+)?)\](?!\()/g)].map((m) => m[1]!));
}

/** The titles of the tests of one file: the text of each it('...'), it("...") or it(`...`), also it.runIf(cond)(...), it.skipIf(cond)(...) and it.each(cases)(...). */
function titles(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/\bit(?:\.(?:runIf|skipIf|each)\([^()]*\))?\(\s*(?:'((?:\\'|[^'])*)'|"([^"]*)"|`([^`]*)`)/g)].map((m) => (m[1] ?? m[2] ?? m[3]!).replace(/\\'/g, "'"));
}

/** The file a row names: `protocol` is test/protocol.test.ts; a backticked path is itself. */
function fileOf(row: Row): string {
  return row.file.startsWith('`') ? row.file.slice(1, -1) : `test/${row.file}.test.ts`;
}

describe('docs/CONTRACT.md', () => {
  it('every tag the contract cites has a row in its table of tests, and every row is cited', () => {
    const table = new Set(rows().flatMap((r) => r.tags));
    const text = cited();
    expect(
      [...text].filter((t) => !table.has(t)),
      'cited without a row',
    ).toEqual([]);
    expect(
      [...table].filter((t) => !text.has(t)),
      'rows nobody cites',
    ).toEqual([]);
  });

  it('every row names a test that exists in the file it names (a bench row: a figure of that suite)', () => {
    const missing: string[] = [];
    for (const row of rows()) {
      const file = fileOf(row);
      if (file.startsWith('bench/')) {
        if (!readFileSync(join(ROOT, file), 'utf8').includes(row.test.replace(/ \(a figure, not a test\)$/, ''))) missing.push(`${row.tags[0]} in ${file}`);
        continue;
      }
      const found = titles(file).map((t) => t.toLowerCase());
      for (const part of row.test.replace(/ \(both tests\)$/, '').split('; ')) {
        if (!found.some((t) => t.includes(part.toLowerCase()))) missing.push(`${row.tags[0]}: "${part}" in ${file}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
