/**
 * The invalidation every figure times: protect() flipping a segment between 'ro' and 'rw',
 * one invalidation per call, as batched tasks (awaited, or the blocking protectSync form).
 */
import type { Segment } from '../../src/index.js';
import type { Task } from './measure.js';

/** `batch` awaited protect() calls per sample. */
export function flips(name: string, seg: Segment, batch: number): Task {
  let ro = false;
  return {
    name,
    batch,
    async: true,
    run: async () => {
      for (let i = 0; i < batch; i++) await seg.protect((ro = !ro) ? 'ro' : 'rw');
    },
  };
}

/** `batch` protectSync() calls per sample. */
export function flipsSync(name: string, seg: Segment, batch: number): Task {
  let ro = false;
  return {
    name,
    batch,
    run: () => {
      for (let i = 0; i < batch; i++) seg.protectSync((ro = !ro) ? 'ro' : 'rw');
    },
  };
}
