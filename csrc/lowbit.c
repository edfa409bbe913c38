/*
 * Kernels of the uniform b-bit group formats (src/formats/registry.ts: uniform-asym and
 * uniform-sym), WebAssembly SIMD. Reference: src/formats/uniform-linear.ts (TypeScript kernel)
 * and dequantize-then-multiply, compared in test/formats.test.ts on the wasm backend.
 *
 * Kernel layout. The file's bitstream (value j at bits [j·b, j·b + b)) needs shuffles to
 * widen levels into float lanes, so src/formats/uniform-kernel.ts repacks each row once, at
 * load, into "lane-sliced" blocks where a shift and a mask give four consecutive columns:
 *   b = 2, 4, 8: a block is 16 bytes = four 32-bit lanes; field k (bits [k·b, k·b + b)) of
 *     lane l holds column 4k + l of the block, so (lanes >> k·b) & mask = columns 4k..4k+3.
 *     Blocks hold 64, 32 and 16 columns.
 *   b = 3: a block is 24 bytes for 64 columns: the low two bits as a 2-bit block, then four
 *     16-bit lanes whose bit k is bit 2 of column 4k + l.
 * Rows are padded with zero levels to whole blocks (row_stride bytes each) and x with zeros,
 * so no kernel needs a column tail. Group boundaries must fall on multiples of 16 columns
 * (group_size % 16 == 0) unless the row is one group; the TypeScript kernel covers the rest.
 *
 * The matvec uses  y_r = Σ_g scale[r,g] · Σ_{j∈g} q[r,j] x[j]  −  Σ_g (scale·zero)[r,g] · gsum[g]
 * with x in stored (act-order) column order and gsum[g] = Σ_{j∈g} x[j] prepared once per call
 * by the caller, so levels are widened to float and multiplied, never dequantized.
 *
 * Adding a kernel for another format (mixed, codebook, binary) the same way:
 *  - put it in its own csrc/<format>.c (add the name to scripts/build-wasm.sh's list), with
 *    EXPORT(<name>) and the row range (r0, r1) as the last two parameters (preceded by a
 *    per-thread scratch pointer when it needs scratch), following kernels.h's rules;
 *  - keep its weights in backend memory (WasmBackend.allocBytes / alloc) in whatever layout
 *    its kernel prefers (repack at load: the file layout stays the spec), pass addresses from
 *    WasmBackend.address, and call WasmBackend.runRows('<name>', args, outDim, { work })
 *    from the format's Linear, which the pool splits over threads by rows; at most 12 int32
 *    arguments besides scratch and the range;
 *  - fall back to the format's TypeScript kernel when `rowKernelsOf(backend)` is undefined
 *    (reference and native backends), so every backend keeps working.
 */
#include "kernels.h"

typedef unsigned char u8;

#define F32(v) wasm_f32x4_convert_i32x4(v)
#define LD(p) wasm_v128_load(p)
#define ADD(a, b) wasm_f32x4_add(a, b)
#define MUL(a, b) wasm_f32x4_mul(a, b)

static inline int block_cols(int bits) { return bits == 4 ? 32 : bits == 8 ? 16 : 64; }
static inline int block_bytes(int bits) { return bits == 3 ? 24 : 16; }

/* Bits 2 of the 3-bit block's columns: the four 16-bit lanes widened to 32 bits. */
static inline v128_t high_plane(const u8 *blk) { return wasm_u32x4_extend_low_u16x8(wasm_v128_load64_zero(blk + 16)); }

/* Levels (int32) of columns 4k..4k+3 of a block: k in 0 .. block_cols/4. */
static inline v128_t levels4(const u8 *blk, int k, int bits) {
  v128_t w = LD(blk);
  switch (bits) {
  case 2: return wasm_v128_and(wasm_u32x4_shr(w, 2 * k), wasm_i32x4_splat(3));
  case 4: return wasm_v128_and(wasm_u32x4_shr(w, 4 * k), wasm_i32x4_splat(15));
  case 8: return wasm_v128_and(wasm_u32x4_shr(w, 8 * k), wasm_i32x4_splat(255));
  default: {
    v128_t lo = wasm_v128_and(wasm_u32x4_shr(w, 2 * k), wasm_i32x4_splat(3));
    v128_t hi = wasm_v128_and(wasm_i32x4_shl(wasm_u32x4_shr(high_plane(blk), k), 2), wasm_i32x4_splat(4));
    return wasm_v128_or(lo, hi);
  }
  }
}

/*
 * Whole-block dots of two rows at once (they share the loads of x): *a and *b get
 * Σ levels·x over nblk blocks of rows pa and pb, as four lanes of partial sums. x is at the
 * first block's first column. One function per width so every shift is a constant.
 */
#define SHR(w, n) wasm_u32x4_shr(w, n)
/* The out-parameters must not reach the shadow stack (shared by all threads, kernels.h): inline. */
#define INLINE static inline __attribute__((always_inline))
#define AND(a, b) wasm_v128_and(a, b)

INLINE void dot_blocks2(const u8 *pa, const u8 *pb, const float *x, int nblk, v128_t *a, v128_t *b) {
  v128_t m = wasm_i32x4_splat(3), sa = wasm_f32x4_splat(0), sb = sa;
  for (int i = 0; i < nblk; i++, pa += 16, pb += 16, x += 64) {
    v128_t wa = LD(pa), wb = LD(pb);
#pragma clang loop unroll(full)
    for (int k = 0; k < 16; k++) {
      v128_t xv = LD(x + 4 * k);
      sa = ADD(sa, MUL(F32(AND(SHR(wa, 2 * k), m)), xv));
      sb = ADD(sb, MUL(F32(AND(SHR(wb, 2 * k), m)), xv));
    }
  }
  *a = sa;
  *b = sb;
}

INLINE void dot_blocks3(const u8 *pa, const u8 *pb, const float *x, int nblk, v128_t *a, v128_t *b) {
  v128_t m = wasm_i32x4_splat(3), four = wasm_i32x4_splat(4), sa = wasm_f32x4_splat(0), sb = sa;
  for (int i = 0; i < nblk; i++, pa += 24, pb += 24, x += 64) {
    v128_t wa = LD(pa), wb = LD(pb), ha = wasm_i32x4_shl(high_plane(pa), 2), hb = wasm_i32x4_shl(high_plane(pb), 2);
    /* column 4k+l: low bits at 2k of lane l, bit 2 at bit k of the high plane (pre-shifted by 2) */
#pragma clang loop unroll(full)
    for (int k = 0; k < 16; k++) {
      v128_t xv = LD(x + 4 * k);
      sa = ADD(sa, MUL(F32(wasm_v128_or(AND(SHR(wa, 2 * k), m), AND(SHR(ha, k), four))), xv));
      sb = ADD(sb, MUL(F32(wasm_v128_or(AND(SHR(wb, 2 * k), m), AND(SHR(hb, k), four))), xv));
    }
  }
  *a = sa;
  *b = sb;
}

INLINE void dot_blocks4(const u8 *pa, const u8 *pb, const float *x, int nblk, v128_t *a, v128_t *b) {
  v128_t m = wasm_i32x4_splat(15), sa0 = wasm_f32x4_splat(0), sa1 = sa0, sb0 = sa0, sb1 = sa0;
  for (int i = 0; i < nblk; i++, pa += 16, pb += 16, x += 32) {
    v128_t wa = LD(pa), wb = LD(pb);
#pragma clang loop unroll(full)
    for (int k = 0; k < 6; k += 2) {
      v128_t x0 = LD(x + 4 * k), x1 = LD(x + 4 * k + 4);
      sa0 = ADD(sa0, MUL(F32(AND(SHR(wa, 4 * k), m)), x0));
      sb0 = ADD(sb0, MUL(F32(AND(SHR(wb, 4 * k), m)), x0));
      sa1 = ADD(sa1, MUL(F32(AND(SHR(wa, 4 * k + 4), m)), x1));
      sb1 = ADD(sb1, MUL(F32(AND(SHR(wb, 4 * k + 4), m)), x1));
    }
    v128_t x0 = LD(x + 24), x1 = LD(x + 28);
    sa0 = ADD(sa0, MUL(F32(AND(SHR(wa, 24), m)), x0));
    sb0 = ADD(sb0, MUL(F32(AND(SHR(wb, 24), m)), x0));
    sa1 = ADD(sa1, MUL(F32(SHR(wa, 28)), x1));
    sb1 = ADD(sb1, MUL(F32(SHR(wb, 28)), x1));
  }
  *a = ADD(sa0, sa1);
  *b = ADD(sb0, sb1);
}

INLINE void dot_blocks8(const u8 *pa, const u8 *pb, const float *x, int nblk, v128_t *a, v128_t *b) {
  v128_t m = wasm_i32x4_splat(255), sa0 = wasm_f32x4_splat(0), sa1 = sa0, sb0 = sa0, sb1 = sa0;
  for (int i = 0; i < nblk; i++, pa += 16, pb += 16, x += 16) {
    v128_t wa = LD(pa), wb = LD(pb), x0 = LD(x), x1 = LD(x + 4), x2 = LD(x + 8), x3 = LD(x + 12);
    sa0 = ADD(sa0, MUL(F32(AND(wa, m)), x0));
    sb0 = ADD(sb0, MUL(F32(AND(wb, m)), x0));
    sa1 = ADD(sa1, MUL(F32(AND(SHR(wa, 8), m)), x1));
    sb1 = ADD(sb1, MUL(F32(AND(SHR(wb, 8), m)), x1));
    sa0 = ADD(sa0, MUL(F32(AND(SHR(wa, 16), m)), x2));
    sb0 = ADD(sb0, MUL(F32(AND(SHR(wb, 16), m)), x2));
    sa1 = ADD(sa1, MUL(F32(SHR(wa, 24)), x3));
    sb1 = ADD(sb1, MUL(F32(SHR(wb, 24)), x3));
  }
  *a = ADD(sa0, sa1);
  *b = ADD(sb0, sb1);
}

INLINE void dot_blocks(const u8 *pa, const u8 *pb, const float *x, int nblk, int bits, v128_t *a, v128_t *b) {
  switch (bits) {
  case 2: dot_blocks2(pa, pb, x, nblk, a, b); break;
  case 3: dot_blocks3(pa, pb, x, nblk, a, b); break;
  case 4: dot_blocks4(pa, pb, x, nblk, a, b); break;
  default: dot_blocks8(pa, pb, x, nblk, a, b);
  }
}

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* Σ levels·x over columns [c0, c1) of a row, both multiples of 16: whole blocks where possible. */
static v128_t dot_range(const u8 *row, const float *x, int c0, int c1, int bits) {
  int bc = block_cols(bits), bb = block_bytes(bits);
  v128_t acc = wasm_f32x4_splat(0);
  int c = c0;
  /* leading part of a block shared with the previous group, 4 columns at a time */
  for (; c < c1 && c % bc != 0; c += 4) acc = ADD(acc, MUL(F32(levels4(row + (c / bc) * bb, (c % bc) / 4, bits)), LD(x + c)));
  int whole = c + (c1 - c) / bc * bc;
  if (whole > c) {
    v128_t d, unused;
    const u8 *blk = row + (c / bc) * block_bytes(bits);
    dot_blocks(blk, blk, x + c, (whole - c) / bc, bits, &d, &unused);
    acc = ADD(acc, d);
    c = whole;
  }
  /* trailing part of a block */
  for (; c < c1; c += 4) acc = ADD(acc, MUL(F32(levels4(row + (c / bc) * bb, (c % bc) / 4, bits)), LD(x + c)));
  return acc;
}

/*
 * y[r0..r1) of W·x. q [out, row_stride] in the kernel layout; scale, szero [out, n_groups]
 * (szero = scale·zero); x [cols] in stored column order, zero past in_dim; gsum [n_groups];
 * cols = in_dim rounded up to 16. group_size % 16 == 0 or n_groups == 1.
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
        dot_blocks(pa + b0 * bb, pb + b0 * bb, x + b0 * bc, nblk, bits, &da, &db);
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
 * Rows [r0, r1) of W as float32 into w [rows, in_dim] (stored column order), for tiled matmul:
 * w[r, j] = scale[r, g] · (q[r, j] − zero[r, g]). Same layout and group rule as the gemv.
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
      v128_t v = MUL(wasm_f32x4_sub(F32(levels4(row + (c / bc) * bb, (c % bc) / 4, bits)), z), s);
      if (c + 4 <= in_dim) {
        wasm_v128_store(out + c, v);
      } else {
        /* the row's last columns: a vector store would spill into the next row */
        out[c] = wasm_f32x4_extract_lane(v, 0);
        if (c + 1 < in_dim) out[c + 1] = wasm_f32x4_extract_lane(v, 1);
        if (c + 2 < in_dim) out[c + 2] = wasm_f32x4_extract_lane(v, 2);
      }
    }
  }
}
