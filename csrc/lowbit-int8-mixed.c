/*
 * int8-activation kernels of SliM-LLM's mixed widths (registry.ts mixed-asym) and of uniform
 * 3-bit (uniform-asym / uniform-sym), groups of whole 128-column blocks (group_size % 128 == 0,
 * or one group per row), WebAssembly SIMD128 or relaxed SIMD (lowbit-int8.h). Reference: the
 * TypeScript kernels on the int8-quantized activation (int8-activations.ts), test/formats.test.ts.
 *
 * Kernel layout, built here at load (lowbit_i8m_pack) from the file's rows: group g of every row
 * at byte goff[g], its blocks of 128 columns in order, each the plain bitstream of its levels at
 * the group's kernel width kw = 1, 2, 4 (3-bit groups as 4-bit fields: one shift and mask per
 * plane instead of two planes, a third more kernel memory for those groups), zero levels past
 * the row's last column. The 1-, 2- and 4-bit blocks are the file's own bytes. The groups of a
 * row lie in the order the matvec visits them, by kernel width (order[]): three loops at constant
 * width instead of a width switch per group (random width maps mispredict it).
 *   y_r = Σ_b s_w[r, g(b)] · s_x[b] · Σ_{j∈b} q[r, j] · xq[j]  −  Σ_g s_w[r, g] · z[r, g] · gx[g]
 * as lowbit-int8.c, with each block's activation lanes in the order of its group's kernel width.
 * Zeros: the file's bitstream of the integer zeros (group g at bit zbit[g] of the row's zbytes,
 * width widths[g]), or NULL: the midpoint 2^(b−1) (uniform-sym); the 1-bit groups' float16
 * zeros (zero1, n1 per row, zbit[g] = −1 − index).
 */
#include "lowbit-int8.h"

/* What MixedInt8WasmKernels (mixed-wasm-int8.ts) keeps in kernel memory: int32 fields in this order. */
typedef struct {
  u8 *q;               /* [out, row_stride] kernel layout */
  int row_stride;
  const int *goff;     /* [n_groups] byte offset of group g in a kernel row */
  const u8 *widths;    /* [n_groups] the file's widths 1..4 */
  const u16 *scale;    /* [out, n_groups] float16 bits */
  const u8 *zero;      /* [out, zbytes] or 0 */
  int zbytes;
  const u16 *zero1;    /* [out, n1] or 0 */
  int n1;
  const int *zbit;     /* [n_groups] */
  int in, blocks, group_blocks, n_groups;
  signed char *xq;     /* [blocks · 128] kernel order, zero past in */
  float *xs;           /* [blocks] */
  int *xsum;           /* [blocks] */
  float *gx;           /* [n_groups] */
  const int *order;    /* [n_groups] the groups by kernel width: n_w1 of width 1, then n_w2 of 2, then 4 */
  int n_w1, n_w2;
} i8m_desc;

static inline int kernel_bits(int bits) { return bits == 3 ? 4 : bits; }

/* Rows base + [r0, r1) from the file's rows src (row r − base at src + (r − base)·src_stride,
 * group g at byte src_goff[g]; each group starts on a byte) into the kernel layout. */
EXPORT(lowbit_i8m_pack) void lowbit_i8m_pack(const i8m_desc *d, const u8 *src, int src_stride, const int *src_goff, int base, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    const u8 *s = src + (size_t)i * src_stride;
    u8 *row = d->q + (size_t)(base + i) * d->row_stride;
    for (int g = 0; g < d->n_groups; g++) {
      int b = d->widths[g], kw = kernel_bits(b), mask = (1 << b) - 1;
      int c0 = g * d->group_blocks * 128, c1 = min_i(d->in, c0 + d->group_blocks * 128);
      int nb = (c1 - c0 + 127) / 128;
      const u8 *gs = s + src_goff[g];
      u8 *gd = row + d->goff[g];
      int whole = b == kw ? (c1 - c0) / 128 : 0; /* blocks that are the file's bytes */
      for (int k = 0; k < whole * 16 * kw; k++) gd[k] = gs[k];
      for (int k = whole * 16 * kw; k < nb * 16 * kw; k++) gd[k] = 0;
      for (int c = whole * 128; c < c1 - c0; c++) {
        int bit = c * b, byte = bit >> 3; /* a level straddles at most two bytes of its group */
        u32 v = gs[byte] | ((bit & 7) + b > 8 ? (u32)gs[byte + 1] << 8 : 0u);
        int kb = c * kw;
        gd[kb >> 3] |= (u8)(((v >> (bit & 7)) & mask) << (kb & 7));
      }
    }
  }
}

/* x [in] (stored column order) into xq, xs, xsum, gx: one call, the calling thread (r0, r1 unused). */
EXPORT(lowbit_i8m_act) void lowbit_i8m_act(const i8m_desc *d, const float *x, int r0, int r1) {
  (void)r0, (void)r1;
  for (int b = 0; b < d->blocks; b++) {
    int c0 = b * 128, kw = kernel_bits(d->widths[b / d->group_blocks]);
    d->xsum[b] = quantize_block(x + c0, min_i(128, d->in - c0), kw, d->xq + c0, &d->xs[b]);
  }
  for (int g = 0; g < d->n_groups; g++) {
    float s = 0;
    for (int b = g * d->group_blocks; b < d->blocks && b < (g + 1) * d->group_blocks; b++) s += d->xs[b] * (float)d->xsum[b];
    d->gx[g] = s;
  }
}

static inline float zero_at(const i8m_desc *d, int r, int g) {
  int zb = d->zbit[g], b = d->widths[g];
  if (zb < 0) return f16_to_f32(d->zero1[(size_t)r * d->n1 + (-1 - zb)]);
  if (!d->zero) return (float)(1 << (b - 1));
  const u8 *z = d->zero + (size_t)r * d->zbytes;
  int byte = zb >> 3;
  u32 v = z[byte] | (byte + 1 < d->zbytes ? (u32)z[byte + 1] << 8 : 0u);
  return (float)((v >> (zb & 7)) & ((1u << b) - 1));
}

/* Σ_b s_x[b] · s_w · Σ q·xq over the blocks [b0, b1) of one group at a constant kernel width. */
I8_INLINE v128_t group_dot(v128_t acc, const u8 *blk, const i8m_desc *d, int b0, int b1, float sw, int kw) {
  for (int b = b0; b < b1; b++, blk += 16 * kw) {
    v128_t dot = block_dot(blk, d->xq + b * 128, kw);
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(dot), wasm_f32x4_splat(sw * d->xs[b])));
  }
  return acc;
}

/* The groups order[i0..i1) of row r at kernel width kw into acc and *zterm. */
I8_INLINE v128_t groups_at(v128_t acc, float *zterm, const i8m_desc *d, const u8 *row, const u16 *sc, int r, int i0, int i1, int kw) {
  for (int i = i0; i < i1; i++) {
    int g = d->order[i];
    float sw = f16_to_f32(sc[g]);
    *zterm += sw * zero_at(d, r, g) * d->gx[g];
    int b0 = g * d->group_blocks, b1 = min_i(d->blocks, b0 + d->group_blocks);
    acc = group_dot(acc, row + d->goff[g], d, b0, b1, sw, kw);
  }
  return acc;
}

/* Rows [r0, r1) of y = W·x from the activation lowbit_i8m_act prepared. */
EXPORT(lowbit_i8m_gemv) void lowbit_i8m_gemv(const i8m_desc *d, float *y, int r0, int r1) {
  const int e1 = d->n_w1, e2 = d->n_w1 + d->n_w2;
  for (int r = r0; r < r1; r++) {
    const u8 *row = d->q + (size_t)r * d->row_stride;
    const u16 *sc = d->scale + (size_t)r * d->n_groups;
    v128_t acc = wasm_f32x4_splat(0);
    float zterm = 0;
    acc = groups_at(acc, &zterm, d, row, sc, r, 0, e1, 1);
    acc = groups_at(acc, &zterm, d, row, sc, r, e1, e2, 2);
    acc = groups_at(acc, &zterm, d, row, sc, r, e2, d->n_groups, 4);
    float s = wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) + wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3);
    y[r] = s - zterm;
  }
}

/* Rows base + [r0, r1) of W as float32 into dst [·, in] (row base + r at dst + r·in), stored column
 * order: s · (q − z) in float32, the reference's values. */
EXPORT(lowbit_i8m_dequant) void lowbit_i8m_dequant(const i8m_desc *d, float *dst, int base, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    int r = base + i;
    const u8 *row = d->q + (size_t)r * d->row_stride;
    float *out = dst + (size_t)i * d->in;
    for (int g = 0; g < d->n_groups; g++) {
      int kw = kernel_bits(d->widths[g]), mask = (1 << kw) - 1;
      float s = f16_to_f32(d->scale[(size_t)r * d->n_groups + g]), z = zero_at(d, r, g);
      int c0 = g * d->group_blocks * 128, c1 = min_i(d->in, c0 + d->group_blocks * 128);
      const u8 *gq = row + d->goff[g];
      for (int c = 0; c < c1 - c0; c++) {
        int bit = c * kw; /* kw = 1, 2, 4: a level never straddles bytes */
        out[c0 + c] = s * ((float)((gq[bit >> 3] >> (bit & 7)) & mask) - z);
      }
    }
  }
}
