/**
 * docs/ERRORS.md documents every error code: one row per code of the XpmemErrorCode union in
 * src/errors.ts, and no row for a code the union lacks, so a new code cannot ship unexplained.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

/** The codes of the XpmemErrorCode union, as src/errors.ts spells them. */
function unionCodes(): string[] {
  const source = readFileSync(join(ROOT, 'src/errors.ts'), 'utf8');
  const union = /export type XpmemErrorCode =([^;]*);/.exec(source)?.[1] ?? '';
  return [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]!);
}

/** The ERR_XPMEM_* codes docs/ERRORS.md gives a table row, in order. */
function documentedCodes(): string[] {
  const doc = readFileSync(join(ROOT, 'docs/ERRORS.md'), 'utf8');
  return [...doc.matchAll(/^\| `(ERR_XPMEM_[A-Z_]+)` \|/gm)].map((m) => m[1]!);
}

describe('docs/ERRORS.md', () => {
  it('has one row for each code of XpmemErrorCode, and none for another', () => {
    const codes = unionCodes();
    expect(codes.length).toBeGreaterThan(10);
    expect(documentedCodes().sort()).toEqual([...codes].sort());
  });
});
