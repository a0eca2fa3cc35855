/**
 * Views of an attachment's range, cached per attachment and rebuilt only when the segment's
 * SEG_VIEWGEN moves (migrate, resize, protect, swap). Read only inside a section or map(),
 * where SEG_VIEWGEN cannot change underneath.
 */
import { invalidArgType, xpmemError } from '../errors.js';
import { PERMIT_RO, PERMIT_RW, SEG_BYTES, SEG_FLAGS, SEG_PROT, SEG_UNIT, SEG_VIEWGEN, SEGF_SWAPPED, UNIT } from '../layout.js';

/** A typed-array constructor sections can hand out. */
/** A typed-array constructor sections can hand out: Uint8Array, Float64Array, BigInt64Array, ... */
export interface ViewType<V> {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): V;
  /** Bytes per element: offsets and lengths of a typed section are multiples of it. */
  readonly BYTES_PER_ELEMENT: number;
}

const VIEW_TYPES: ReadonlySet<unknown> = new Set([
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
]);

/** Validates that `type` is one of the built-in typed-array constructors. */
export function checkViewType(name: string, type: unknown): void {
  if (!VIEW_TYPES.has(type)) throw invalidArgType(name, 'a typed-array constructor such as Float64Array', type);
}

export class ViewCache {
  #gen = -1;
  #u8: Uint8Array | undefined;
  #typed = new Map<ViewType<unknown>, unknown>();
  #prot = 0;
  #fits = false;
  #resident = false;

  /**
   * Revalidates against the segment's words (caller holds a section or the seqcount is stable)
   * and checks the access: throws ERR_XPMEM_PERMISSION or ERR_XPMEM_RANGE, else returns false
   * when the segment is swapped out (the caller faults it in) and true when it is resident.
   */
  check(words: Int32Array, segBase: number, offset: number, length: number, write: boolean, arena: SharedArrayBuffer): boolean {
    const gen = Atomics.load(words, segBase + SEG_VIEWGEN);
    if (gen !== this.#gen) {
      this.#gen = gen;
      this.#typed.clear();
      this.#prot = Atomics.load(words, segBase + SEG_PROT);
      this.#resident = (Atomics.load(words, segBase + SEG_FLAGS) & SEGF_SWAPPED) === 0;
      this.#fits = offset + length <= Atomics.load(words, segBase + SEG_BYTES);
      this.#u8 = this.#fits && this.#resident ? new Uint8Array(arena, Atomics.load(words, segBase + SEG_UNIT) * UNIT + offset, length) : undefined;
    }
    if (this.#prot < (write ? PERMIT_RW : PERMIT_RO)) {
      throw xpmemError('ERR_XPMEM_PERMISSION', `the segment's owner protected it '${['none', 'ro', 'rw'][this.#prot]}'; a ${write ? 'write' : 'read'} section is not allowed`);
    }
    if (!this.#fits) throw xpmemError('ERR_XPMEM_RANGE', 'the segment shrank below this attachment; detach and attach a range inside its new size');
    return this.#resident; // last: an access that would be refused never swaps the segment in
  }

  get bytes(): Uint8Array {
    return this.#u8!;
  }

  /** A typed view of the range; ERR_XPMEM_RANGE if the range is not aligned to the element size. */
  typed<V>(type: ViewType<V>): V {
    let v = this.#typed.get(type) as V | undefined;
    if (v === undefined) {
      const u8 = this.#u8!;
      const size = type.BYTES_PER_ELEMENT;
      if (u8.byteOffset % size !== 0 || u8.byteLength % size !== 0) {
        throw xpmemError(
          'ERR_XPMEM_RANGE',
          `the attached range (${u8.byteLength} bytes at arena byte ${u8.byteOffset}) is not aligned for ${type.name}; attach an offset and length that are multiples of ${size}`,
        );
      }
      v = new type(u8.buffer, u8.byteOffset, u8.byteLength / size);
      this.#typed.set(type, v);
    }
    return v;
  }
}
