/**
 * The cache driver: a worker that keeps derived state of a segment, as a device keeps a private
 * copy: a zero-copy mapped view of the bytes and their sum. It trusts its notifier, not its
 * view: invalidateStart drops the cache, and once invalidateEnd ran it is rebuilt (lazily after
 * a swap, so the rebuild does not fault the segment straight back in; after a resize the new size
 * is attached first). Queries are answered from the cache.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { joinFromWorkerData } from '../src/worker.js';
import type { Attachment, Range } from '../src/index.js';

interface Cache {
  view: Uint8Array;
  sum: number;
}

const access = joinFromWorkerData().get(workerData.segId as number, 'ro');
let att = attachWhole();
let cache: Cache | undefined;
let drops = 0;
let rebuilds = 0;

/** Attaches the whole segment, as large as it is now, with the notifier that guards the cache. */
function attachWhole(): Attachment {
  const whole = access.attach();
  whole.notifier({
    invalidateStart: () => {
      cache = undefined;
      drops++;
    },
    // Rebuild once the invalidation is over (a fault from inside its own callback would wait for
    // the invalidator, which waits for this callback); lazily after a swap-out.
    invalidateEnd: (range: Range) => {
      if (range.event !== 'swap')
        setImmediate(() => {
          cache ??= rebuild();
        });
    },
  });
  return whole;
}

/**
 * Maps the range (faulting it in if it was swapped out) and sums it, the way a driver refills
 * its private copy: map() may wait for a window and run this space's callbacks meanwhile, so a
 * build that saw an invalidation start while it ran, or no longer covers the whole segment (it
 * was resized), is thrown away and redone (the mmu_interval_read_begin / read_retry loop); so
 * is a map() that waited out a resize shrinking the segment below the attachment.
 */
function rebuild(): Cache {
  for (;;) {
    const seen = drops;
    if (att.length !== access.bytes) {
      att.detach();
      att = attachWhole();
    }
    let view: Uint8Array;
    try {
      view = att.map().view;
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ERR_XPMEM_RANGE') continue; // shrank meanwhile: attach again
      throw error;
    }
    let sum = 0;
    for (let i = 0; i < view.length; i++) sum += view[i]!;
    rebuilds++;
    if (seen === drops && att.length === access.bytes) return (cache = { view, sum });
  }
}

parentPort!.on('message', (q: { peek: number[] }) => {
  const c = cache ?? rebuild();
  parentPort!.postMessage({ length: c.view.length, sum: c.sum, peek: q.peek.map((i) => c.view[i]!), drops, rebuilds });
});
parentPort!.postMessage({ ready: true });
