/*
 * Kernels of the grid group formats, WebAssembly SIMD: uniform b-bit (src/formats/registry.ts:
 * uniform-asym, uniform-sym) and SliM-LLM's mixed widths (mixed-asym). References: the
 * TypeScript kernels (uniform-linear.ts, mixed-linear.ts) and dequantize-then-multiply,
 * compared in test/formats.test.ts on the wasm backends.
 *
 * Kernel layout. The file's bitstream (value j at bits [j·b, j·b + b)) needs shuffles to
 * widen levels into float lanes, so uniform-wasm.ts and mixed-wasm.ts repack rows once, at
 * load, into "lane-sliced" planes where a shift and a mask give four consecutive columns:
 *   a plane of b-bit levels (b = 1, 2, 4, 8) is four lanes of L bits; field k (bits
 *   [k·b, k·b + b)) of lane l holds column 4k + l, so (lanes >> k·b) & mask = columns
 *   4k..4k+3. A whole block has 32-bit lanes (16 bytes): 128, 64, 32, 16 columns for
 *   b = 1, 2, 4, 8. A short block (fewer columns than a whole one) has 8- or 16-bit lanes
 *   (4 or 8 bytes), the narrowest that holds its fields; loads widen them to 32 bits.
 *   b = 3 is a 2-bit plane followed by a 1-bit plane holding bit 2 of the same columns:
 *   whole blocks are 24 bytes for 64 columns (16-bit lanes in the high plane).
 * Uniform rows are whole blocks, padded with zero levels (row_stride bytes each). Mixed rows
 * are the groups in order, group g at byte goff[g] of every row (widths are per column, so the
 * same for all rows): its whole blocks, then one short block for the rest of its columns.
 * mixed-wasm.ts stores 3-bit groups as 4-bit fields (faster to unpack), so 3-bit short blocks
 * (a short 2-bit plane, then a short 1-bit plane) are handled here but unused today.
 * x is read in whole fields past a group's last column (levels are zero there), so callers pad
 * x with 128 zero floats.
 *
 * The matvec uses  y_r = Σ_g scale[r,g] · Σ_{j∈g} q[r,j] x[j]  −  Σ_g (scale·zero)[r,g] · gsum[g]
 * with x in stored (act-order) column order and gsum[g] = Σ_{j∈g} x[j] prepared once per call
 * by the caller, so levels are widened to float and multiplied, never dequantized. One group
 * dot (dot_group: whole blocks, then a short block) serves both formats, two rows at a time.
 */
#include "kernels.h"

typedef unsigned char u8;

#define F32(v) wasm_f32x4_convert_i32x4(v)
#define LD(p) wasm_v128_load(p)
#define ADD(a, b) wasm_f32x4_add(a, b)
#define MUL(a, b) wasm_f32x4_mul(a, b)
#define SHR(w, n) wasm_u32x4_shr(w, n)
#define AND(a, b) wasm_v128_and(a, b)
#define SPLAT(v) wasm_i32x4_splat(v)
/* The out-parameters must not reach the shadow stack (shared by all threads, kernels.h): inline. */
#define INLINE static inline __attribute__((always_inline))

static inline int block_cols(int bits) { return bits == 1 ? 128 : bits == 4 ? 32 : bits == 8 ? 16 : 64; }
static inline int block_bytes(int bits) { return bits == 3 ? 24 : 16; }
/* Width of the low plane: the 2-bit plane of 3-bit levels. */
static inline int plane_bits(int bits) { return bits == 3 ? 2 : bits; }

/* Lane bits of a short block of `cols` columns (< block_cols): the narrowest of 8, 16 holding its fields. */
static inline int short_lane_bits(int cols, int bits) { return (cols + 3) / 4 * plane_bits(bits) <= 8 ? 8 : 16; }
/* Lane bits of the 1-bit high plane of a 3-bit short block whose 2-bit plane has `lane_bits`. */
static inline int high_lane_bits(int lane_bits) { return lane_bits == 32 ? 16 : 8; }

/* Four lanes of lane_bits (8, 16, 32) at p, zero-extended to 32 bits. */
INLINE v128_t load_lanes(const u8 *p, int lane_bits) {
  if (lane_bits == 32) return LD(p);
  if (lane_bits == 16) return wasm_u32x4_extend_low_u16x8(wasm_v128_load64_zero(p));
  return wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(p)));
}

/* The high plane of a 3-bit block after a low plane of lane_bits, shifted so bit k lands on bit k + 2. */
INLINE v128_t load_high(const u8 *lo, int lane_bits) {
  return wasm_i32x4_shl(load_lanes(lo + lane_bits / 2, high_lane_bits(lane_bits)), 2);
}

/* Levels (int32) of columns 4k..4k+3 from a block's low lanes w and pre-shifted high lanes h. */
INLINE v128_t lane_levels(v128_t w, v128_t h, int k, int bits) {
  if (bits != 3) return AND(SHR(w, k * bits), SPLAT((1 << bits) - 1));
  return wasm_v128_or(AND(SHR(w, 2 * k), SPLAT(3)), AND(SHR(h, k), SPLAT(4)));
}

/* Levels of columns 4k..4k+3 of a whole block. */
INLINE v128_t levels4(const u8 *blk, int k, int bits) {
  return lane_levels(LD(blk), bits == 3 ? load_high(blk, 32) : SPLAT(0), k, bits);
}

/*
 * Adds Σ_{k<nf} levels(k)·x[4k..4k+3] of two rows (lanes wa, ha and wb, hb) into *sa, *sb,
 * two accumulators per row (one for 3-bit levels: measured faster, fewer live registers). nf
 * and bits are constants at every call site, so the loop unrolls with constant shifts. 1-bit
 * levels go through the same convert and multiply: selecting x by a sign mask (shl, shr_s,
 * and) measured 40 % slower under V8.
 */
INLINE void dot_lanes(v128_t wa, v128_t ha, v128_t wb, v128_t hb, const float *x, int nf, int bits, v128_t *sa, v128_t *sb) {
  v128_t a0 = *sa, b0 = *sb, a1 = wasm_f32x4_splat(0), b1 = a1;
#pragma clang loop unroll(full)
  for (int k = 0; k < nf; k++) {
    v128_t xv = LD(x + 4 * k);
    v128_t da = MUL(F32(lane_levels(wa, ha, k, bits)), xv), db = MUL(F32(lane_levels(wb, hb, k, bits)), xv);
    if ((k & 1) && bits != 3) {
      a1 = ADD(a1, da);
      b1 = ADD(b1, db);
    } else {
      a0 = ADD(a0, da);
      b0 = ADD(b0, db);
    }
  }
  *sa = ADD(a0, a1);
  *sb = ADD(b0, b1);
}

/* Σ levels·x over `cols` columns of a group at pa, pb (x at its first column), bits constant. */
INLINE void dot_group_w(const u8 *pa, const u8 *pb, const float *x, int cols, int bits, v128_t *a, v128_t *b) {
  const int bc = block_cols(bits), bb = block_bytes(bits), zero = 0;
  v128_t sa = wasm_f32x4_splat(0), sb = sa, none = SPLAT(zero);
  int whole = cols / bc, rest = cols - whole * bc;
  for (int i = 0; i < whole; i++, pa += bb, pb += bb, x += bc) {
    v128_t ha = bits == 3 ? load_high(pa, 32) : none, hb = bits == 3 ? load_high(pb, 32) : none;
    dot_lanes(LD(pa), ha, LD(pb), hb, x, bc / 4, bits, &sa, &sb);
  }
  if (rest > 0) {
    const int pl = plane_bits(bits);
    int lanes = short_lane_bits(rest, bits);
    v128_t ha = bits == 3 ? load_high(pa, lanes) : none, hb = bits == 3 ? load_high(pb, lanes) : none;
    if (lanes == 8) dot_lanes(load_lanes(pa, 8), ha, load_lanes(pb, 8), hb, x, 8 / pl, bits, &sa, &sb);
    else dot_lanes(load_lanes(pa, 16), ha, load_lanes(pb, 16), hb, x, 16 / pl, bits, &sa, &sb);
  }
  *a = sa;
  *b = sb;
}

/* The group dot of both formats: one specialisation per width, so every shift is a constant. */
INLINE void dot_group(const u8 *pa, const u8 *pb, const float *x, int cols, int bits, v128_t *a, v128_t *b) {
  switch (bits) {
  case 1: dot_group_w(pa, pb, x, cols, 1, a, b); break;
  case 2: dot_group_w(pa, pb, x, cols, 2, a, b); break;
  case 3: dot_group_w(pa, pb, x, cols, 3, a, b); break;
  case 4: dot_group_w(pa, pb, x, cols, 4, a, b); break;
  default: dot_group_w(pa, pb, x, cols, 8, a, b);
  }
}

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* Uniform rows whose groups start inside a block: Σ levels·x over columns [c0, c1), multiples of 16. */
static v128_t dot_range(const u8 *row, const float *x, int c0, int c1, int bits) {
  int bc = block_cols(bits), bb = block_bytes(bits);
  v128_t acc = wasm_f32x4_splat(0);
  int c = c0;
  /* leading part of a block shared with the previous group, 4 columns at a time */
  for (; c < c1 && c % bc != 0; c += 4) acc = ADD(acc, MUL(F32(levels4(row + (c / bc) * bb, (c % bc) / 4, bits)), LD(x + c)));
  int whole = c + (c1 - c) / bc * bc;
  if (whole > c) {
    v128_t d, unused;
    const u8 *blk = row + (c / bc) * bb;
    dot_group(blk, blk, x + c, whole - c, bits, &d, &unused);
    acc = ADD(acc, d);
    c = whole;
  }
  /* trailing part of a block */
  for (; c < c1; c += 4) acc = ADD(acc, MUL(F32(levels4(row + (c / bc) * bb, (c % bc) / 4, bits)), LD(x + c)));
  return acc;
}

/*
 * y[r0..r1) of W·x, uniform widths. q [out, row_stride] in the kernel layout (whole blocks);
 * scale, szero [out, n_groups] (szero = scale·zero); x [cols] in stored column order, zero past
 * in_dim; gsum [n_groups]; cols = in_dim rounded up to 16. group_size % 16 == 0 or n_groups == 1.
 */
EXPORT(lowbit_gemv_uniform)
void lowbit_gemv_uniform(float *y, const u8 *q, int row_stride, const float *scale, const float *szero, const float *x,
                         const float *gsum, int cols, int group_size, int n_groups, int bits, int r0, int r1) {
  int bc = block_cols(bits), bb = block_bytes(bits);
  if (n_groups == 1 || group_size % bc == 0) {
    /* groups of whole blocks (the common case: g ≥ 64, or one group per row): rows in pairs */
    int per_group = n_groups == 1 ? 0 : group_size / bc, blocks = (cols + bc - 1) / bc;
    for (int r = r0; r < r1; r += 2) {
      int rb = r + 1 < r1 ? r + 1 : r; /* an odd last row is computed twice */
      const u8 *pa = q + (size_t)r * row_stride, *pb = q + (size_t)rb * row_stride;
      const float *sa = scale + (size_t)r * n_groups, *sb = scale + (size_t)rb * n_groups;
      const float *za = szero + (size_t)r * n_groups, *zb = szero + (size_t)rb * n_groups;
      v128_t acc_a = wasm_f32x4_splat(0), acc_b = acc_a;
      float off_a = 0, off_b = 0;
      for (int g = 0; g < n_groups; g++) {
        int b0 = g * per_group, nblk = g == n_groups - 1 ? blocks - b0 : per_group;
        v128_t da, db;
        dot_group(pa + b0 * bb, pb + b0 * bb, x + b0 * bc, nblk * bc, bits, &da, &db);
        acc_a = ADD(acc_a, MUL(wasm_f32x4_splat(sa[g]), da));
        acc_b = ADD(acc_b, MUL(wasm_f32x4_splat(sb[g]), db));
        off_a += za[g] * gsum[g];
        off_b += zb[g] * gsum[g];
      }
      y[r] = hsum(acc_a) - off_a;
      y[rb] = hsum(acc_b) - off_b;
    }
    return;
  }
  for (int r = r0; r < r1; r++) {
    const u8 *row = q + (size_t)r * row_stride;
    const float *s = scale + (size_t)r * n_groups, *sz = szero + (size_t)r * n_groups;
    v128_t acc = wasm_f32x4_splat(0);
    float offset = 0;
    for (int g = 0; g < n_groups; g++) {
      int c0 = g * group_size, c1 = g == n_groups - 1 ? cols : c0 + group_size;
      acc = ADD(acc, MUL(wasm_f32x4_splat(s[g]), dot_range(row, x, c0, c1, bits)));
      offset += sz[g] * gsum[g];
    }
    y[r] = hsum(acc) - offset;
  }
}

/*
 * y[r0..r1) of W·x, mixed widths. q [out, row_stride]: group g of a row at goff[g] (int32
 * [n_groups]), widths [n_groups] 1..4; scale, szero [out, n_groups]; x [in_dim + 128] zero
 * padded; gsum [n_groups].
 */
EXPORT(lowbit_gemv_mixed)
void lowbit_gemv_mixed(float *y, const u8 *q, int row_stride, const int *goff, const u8 *widths, const float *scale, const float *szero,
                       const float *x, const float *gsum, int in_dim, int group_size, int n_groups, int r0, int r1) {
  for (int r = r0; r < r1; r += 2) {
    int rb = r + 1 < r1 ? r + 1 : r; /* an odd last row is computed twice */
    const u8 *pa = q + (size_t)r * row_stride, *pb = q + (size_t)rb * row_stride;
    const float *sa = scale + (size_t)r * n_groups, *sb = scale + (size_t)rb * n_groups;
    const float *za = szero + (size_t)r * n_groups, *zb = szero + (size_t)rb * n_groups;
    v128_t acc_a = wasm_f32x4_splat(0), acc_b = acc_a;
    float off_a = 0, off_b = 0;
    for (int g = 0; g < n_groups; g++) {
      int c0 = g * group_size;
      v128_t da, db;
      dot_group(pa + goff[g], pb + goff[g], x + c0, min_i(group_size, in_dim - c0), widths[g], &da, &db);
      acc_a = ADD(acc_a, MUL(wasm_f32x4_splat(sa[g]), da));
      acc_b = ADD(acc_b, MUL(wasm_f32x4_splat(sb[g]), db));
      off_a += za[g] * gsum[g];
      off_b += zb[g] * gsum[g];
    }
    y[r] = hsum(acc_a) - off_a;
    y[rb] = hsum(acc_b) - off_b;
  }
}

/* Stores the first n (1..4) lanes of v at out: a vector store past a group or row would clobber it. */
static inline void store_lanes(float *out, v128_t v, int n) {
  if (n >= 4) {
    wasm_v128_store(out, v);
    return;
  }
  out[0] = wasm_f32x4_extract_lane(v, 0);
  if (n > 1) out[1] = wasm_f32x4_extract_lane(v, 1);
  if (n > 2) out[2] = wasm_f32x4_extract_lane(v, 2);
}

/*
 * Rows [r0, r1) of a uniform W as float32 into w [rows, in_dim] (stored column order), for tiled
 * matmul: w[r, j] = scale[r, g] · (q[r, j] − zero[r, g]). Same layout and group rule as the gemv.
 */
EXPORT(lowbit_dequant_uniform)
void lowbit_dequant_uniform(float *w, const u8 *q, int row_stride, const float *scale, const float *zero, int in_dim,
                            int group_size, int n_groups, int bits, int r0, int r1) {
  int bc = block_cols(bits), bb = block_bytes(bits);
  for (int r = r0; r < r1; r++) {
    const u8 *row = q + (size_t)r * row_stride;
    float *out = w + (size_t)r * in_dim;
    for (int c = 0; c < in_dim; c += 4) {
      int g = n_groups == 1 ? 0 : c / group_size;
      v128_t z = wasm_f32x4_splat(zero[(size_t)r * n_groups + g]), s = wasm_f32x4_splat(scale[(size_t)r * n_groups + g]);
      store_lanes(out + c, MUL(wasm_f32x4_sub(F32(levels4(row + (c / bc) * bb, (c % bc) / 4, bits)), z), s), in_dim - c);
    }
  }
}

/* Levels of columns c..c+3 (c % 4 == 0) of a mixed group of `cols` columns at p. */
static v128_t group_levels4(const u8 *p, int c, int cols, int bits) {
  int bc = block_cols(bits), whole = cols / bc;
  if (c / bc < whole) return levels4(p + (c / bc) * block_bytes(bits), (c % bc) / 4, bits);
  const u8 *blk = p + whole * block_bytes(bits);
  int lanes = short_lane_bits(cols - whole * bc, bits);
  return lane_levels(load_lanes(blk, lanes), bits == 3 ? load_high(blk, lanes) : SPLAT(0), (c - whole * bc) / 4, bits);
}

/* Rows [r0, r1) of a mixed W into w [rows, in_dim]; arguments as lowbit_gemv_mixed, zero unscaled. */
EXPORT(lowbit_dequant_mixed)
void lowbit_dequant_mixed(float *w, const u8 *q, int row_stride, const int *goff, const u8 *widths, const float *scale,
                          const float *zero, int in_dim, int group_size, int n_groups, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const u8 *row = q + (size_t)r * row_stride;
    float *out = w + (size_t)r * in_dim;
    for (int g = 0; g < n_groups; g++) {
      int c0 = g * group_size, cols = min_i(group_size, in_dim - c0);
      v128_t z = wasm_f32x4_splat(zero[(size_t)r * n_groups + g]), s = wasm_f32x4_splat(scale[(size_t)r * n_groups + g]);
      for (int c = 0; c < cols; c += 4) {
        v128_t v = MUL(wasm_f32x4_sub(F32(group_levels4(row + goff[g], c, cols, widths[g])), z), s);
        store_lanes(out + c0 + c, v, cols - c);
      }
    }
  }
}

/* What mixed-wasm.ts keeps for lowbit_pack_mixed: int32 fields in this order. */
typedef struct {
  u8 *q;               /* [out, row_stride] the lane layout, zeroed */
  int row_stride;
  const int *goff;     /* [n_groups] group g's byte in a kernel row */
  const u8 *widths;    /* [n_groups] field width in kernel memory: 1, 2, 4 (3-bit groups as 4) */
  const u8 *file_bits; /* [n_groups] the file's widths 1..4 */
  const int *src_goff; /* [n_groups] group g's byte in a file row */
  int in_dim, group_size, n_groups;
} mixed_pack_desc;

/* Rows base + [r0, r1) of a mixed tensor from the file's rows (row i at src + i·src_stride, each
 * group the bitstream of its levels, starting on a byte) into the lane layout: a group's whole
 * blocks, then one short block of 8- or 16-bit lanes (the layout comment at the top). */
EXPORT(lowbit_pack_mixed)
void lowbit_pack_mixed(const mixed_pack_desc *d, const u8 *src, int src_stride, int base, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    const u8 *s = src + (size_t)i * src_stride;
    u8 *row = d->q + (size_t)(base + i) * d->row_stride;
    for (int g = 0; g < d->n_groups; g++) {
      int b = d->file_bits[g], kw = d->widths[g], mask = (1 << b) - 1;
      int cols = min_i(d->group_size, d->in_dim - g * d->group_size), bc = block_cols(kw), whole = cols / bc;
      int short_lanes = short_lane_bits(cols - whole * bc, kw);
      const u8 *gs = s + d->src_goff[g];
      u8 *gd = row + d->goff[g];
      for (int c = 0; c < cols; c++) {
        int bit = c * b, byte = bit >> 3; /* a level straddles at most two bytes of its group */
        unsigned v = (gs[byte] | ((bit & 7) + b > 8 ? (unsigned)gs[byte + 1] << 8 : 0u)) >> (bit & 7) & (unsigned)mask;
        int in_whole = c < whole * bc, cc = in_whole ? c % bc : c - whole * bc, lanes = in_whole ? 32 : short_lanes;
        int kbit = (cc >> 2) * kw; /* column 4k + l of the block: field k of lane l */
        gd[(in_whole ? c / bc : whole) * 16 + (cc & 3) * (lanes / 8) + (kbit >> 3)] |= (u8)(v << (kbit & 7));
      }
    }
  }
}
