/**
 * One palette for bit widths, used by every picture of them (`inspect --plot`, the report's
 * charts, the browser card's two bit maps), so a colour means the same width everywhere:
 * 1 red, 2 orange, 3 light green, 4 green, 8 and wider blue, unquantized grey. Fractional
 * bits per weight (a linear's average) blend the neighbouring anchors.
 */
const ANCHORS: ReadonlyArray<readonly [bits: number, rgb: readonly [number, number, number]]> = [
  [1, [0xd7, 0x19, 0x1c]],
  [2, [0xfd, 0xae, 0x61]],
  [3, [0xa6, 0xd9, 0x6a]],
  [4, [0x1a, 0x96, 0x41]],
  [8, [0x2b, 0x83, 0xba]],
];
/** Unquantized (16 or 32 bits per weight). */
export const FLOAT_COLOR = '#c3c7d0';
/** The whole-bit widths a legend lists. */
export const LEGEND_BITS = [1, 2, 3, 4, 8] as const;

const hex = (rgb: readonly number[]) => `#${rgb.map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;

/** The colour of a width or average bits per weight. */
export function bitWidthColor(bits: number): string {
  if (!Number.isFinite(bits) || bits >= 16) return FLOAT_COLOR;
  if (bits <= ANCHORS[0]![0]) return hex(ANCHORS[0]![1]);
  for (let i = 1; i < ANCHORS.length; i++) {
    const [b0, c0] = ANCHORS[i - 1]!;
    const [b1, c1] = ANCHORS[i]!;
    if (bits <= b1) {
      const t = (bits - b0) / (b1 - b0);
      return hex(c0.map((v, k) => v + t * (c1[k]! - v)));
    }
  }
  return hex(ANCHORS[ANCHORS.length - 1]![1]);
}

/** Legend entries for the whole-bit widths (and, when asked, the unquantized colour). */
export function bitWidthLegend(withFloat = false): Array<{ label: string; color: string }> {
  const items = LEGEND_BITS.map((b) => ({ label: `${b} bit`, color: bitWidthColor(b) }));
  return withFloat ? [...items, { label: 'float', color: FLOAT_COLOR }] : items;
}
