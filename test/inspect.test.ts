/**
 * util.inspect of the handles: what each is (id, bytes, permit or protection) and its state,
 * live and after swap-out, detach, release, removal and close, never throwing.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { domain } from './helpers.js';

describe('util.inspect', () => {
  it('util.inspect shows each handle, live and after swap-out, detach, release, remove and close', async () => {
    const d = await domain();
    const seg = d.space.make(64, { name: 'alpha', permit: 'ro' });
    const access = d.space.get(seg.id, 'ro');
    const att = access.attach({ offset: 32, length: 32 });
    const own = seg.attach();
    const map = own.map();
    const id = seg.id;
    expect(inspect(d)).toMatch(new RegExp(`^Domain \\{ id: -?\\d+, arenaBytes: ${d.stats().arenaBytes}, state: 'live' \\}$`));
    expect(inspect(d.space)).toBe(`Space { id: ${d.space.id}, threadId: 0, state: 'live' }`);
    expect(inspect(seg)).toBe(`Segment { id: ${id}, name: 'alpha', bytes: 64, permit: 'ro', protection: 'rw', state: 'live' }`);
    expect(inspect(access)).toBe(`Access { segId: ${id}, mode: 'ro', bytes: 64, state: 'live' }`);
    expect(inspect(att)).toBe(`Attachment { segId: ${id}, offset: 32, length: 32, mode: 'ro', state: 'live' }`);
    expect(inspect(map)).toBe(`Mapping { segId: ${id}, length: 64, seq: ${map.seq}, state: 'live' }`);
    expect(inspect([seg], { depth: 0 })).toBe('[ [Segment] ]');

    await seg.swapOut();
    expect(inspect(seg)).toBe(`Segment { id: ${id}, name: 'alpha', bytes: 64, permit: 'ro', protection: 'rw', state: 'swapped' }`);
    expect(inspect(att)).toBe(`Attachment { segId: ${id}, offset: 32, length: 32, mode: 'ro', state: 'swapped' }`);
    expect(inspect(map)).toBe(`Mapping { segId: ${id}, length: 64, seq: ${map.seq}, state: 'stale' }`);

    att.detach();
    expect(inspect(att)).toBe(`Attachment { segId: ${id}, offset: 32, length: 32, mode: 'ro', state: 'detached' }`);
    access.release();
    expect(inspect(access)).toBe(`Access { segId: ${id}, mode: 'ro', state: 'released' }`);

    await seg.remove();
    expect(inspect(seg)).toBe(`Segment { id: ${id}, name: 'alpha', state: 'removed' }`);
    expect(inspect(own)).toBe(`Attachment { segId: ${id}, offset: 0, length: 64, mode: 'rw', state: 'removed' }`);
    expect(inspect(map)).toBe(`Mapping { segId: ${id}, length: 64, seq: ${map.seq}, state: 'removed' }`);

    const kept = d.space.make(128);
    await d.close();
    expect(inspect(d)).toMatch(/^Domain \{ id: -?\d+, state: 'closed' \}$/);
    expect(inspect(d.space)).toBe(`Space { id: ${d.space.id}, state: 'closed' }`);
    expect(inspect(kept)).toBe(`Segment { id: ${kept.id}, state: 'closed' }`);
    expect(inspect(own)).toBe(`Attachment { segId: ${id}, offset: 0, length: 64, mode: 'rw', state: 'closed' }`);
  });
});
