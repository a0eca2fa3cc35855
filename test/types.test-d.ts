/**
 * Types a task author relies on, checked by the TypeScript compiler (vitest's typecheck mode,
 * part of `npm test`): each @ts-expect-error line must be an error, each expectTypeOf must hold.
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { Attachment } from '../src/index.js';
import type { Access, Attachment as WorkerAttachment, Mapping, Range, ViewType, XpmemErrorAbout } from '../src/worker.js';

/** Never called: compiled only. */
function readOnlyViews(att: Attachment): void {
  att.read((v) => {
    // @ts-expect-error a read section's view is read-only
    v[0] = 1;
  });
  att.read(Float64Array, (v) => {
    // @ts-expect-error also typed
    v[0] = 1;
  });
  void att.readAsync(Int32Array, (v) => {
    // @ts-expect-error also async
    v[0] = 1;
  });
  // @ts-expect-error also an explicit 'ro' section
  att.section('ro', Float32Array).view[0] = 1;
  att.write(Float64Array, (v) => {
    v[0] = 1;
  });
  att.section('rw', Float32Array).view[0] = 1;
  const copy: Float64Array = att.read(Float64Array, (v) => v.slice());
  void copy;
}

/** Never called: a sync section refuses a callback that returns a promise (readAsync and writeAsync take one). */
function syncCallbacks(att: Attachment): number {
  // @ts-expect-error an async callback in a sync read section
  att.read(async (v) => v[0]);
  // @ts-expect-error also typed, in a write section
  att.write(Float64Array, async (v) => {
    v[0] = 1;
  });
  // @ts-expect-error also a plain function that returns a promise
  att.read(() => Promise.resolve(1));
  void att.writeAsync(Float64Array, async (v) => {
    v[0] = 1;
  });
  const length: number = att.read((v) => v.length);
  att.write(() => {});
  return length;
}

/** Never called: the worker entry names every type a task handles. */
function workerTypes(a: Access, att: WorkerAttachment, m: Mapping, r: Range, t: ViewType<Float64Array>, e: XpmemErrorAbout): unknown[] {
  return [a.segId, att.length, m.valid, r.event, t.BYTES_PER_ELEMENT, e.segId];
}

describe('types', () => {
  it("a read section's view is read-only; a write section's and a copy are not; a sync section's callback returns no promise; the worker entry exports the task types", () => {
    expectTypeOf(readOnlyViews).toBeFunction();
    expectTypeOf(syncCallbacks).returns.toEqualTypeOf<number>();
    expectTypeOf(workerTypes).returns.toEqualTypeOf<unknown[]>();
  });
});
