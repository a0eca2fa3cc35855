/** Numbers as people read them in the tables and charts. */

/** A value in its unit, scaled: ns/op as ns, µs or ms; bytes as KiB or MiB. */
export function quantity(value: number, unit: string): string {
  if (unit === 'ns/op') {
    if (value >= 1e6) return `${(value / 1e6).toFixed(2)} ms`;
    if (value >= 1e3) return `${(value / 1e3).toFixed(2)} µs`;
    return `${value.toFixed(1)} ns`;
  }
  if (unit === 'bytes') {
    if (value >= 2 ** 20) return `${(value / 2 ** 20).toFixed(2)} MiB`;
    if (value >= 2 ** 10) return `${(value / 2 ** 10).toFixed(1)} KiB`;
    return `${value.toFixed(0)} B`;
  }
  return `${value.toFixed(2)} ${unit}`;
}

/** A ratio to three significant digits. */
export function ratio(r: number): string {
  return `${r >= 100 ? r.toFixed(0) : r.toPrecision(3)}x`;
}
