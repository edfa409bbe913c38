/*
 * Single-precision matrix kernels: c = a·bᵀ (sgemm) and y = w·x (sgemv), WebAssembly SIMD.
 *
 * sgemm follows the usual packed design: a KC×NC block of b is packed into NR-wide column
 * panels (stays in L2), an MC×KC block of a into MR-tall row panels, and a 4×8 register tile
 * of c is accumulated with broadcast(a)·b outer products. WebAssembly SIMD has no fused
 * multiply-add (relaxed SIMD is not on by default in Node 20), so the tile is kept small
 * enough for V8's 16 xmm registers: 8 accumulators + 2 b vectors + 1 broadcast.
 */
#include "kernels.h"

#define MR 4
#define NR 8
#define KC 256
#define MC 128
#define NC 512
/* Scratch per thread: packed b block, packed a block, one edge tile. */
#define SCRATCH_FLOATS (KC * NC + MC * KC + MR * NR)

EXPORT(sgemm_scratch_bytes) int sgemm_scratch_bytes(void) { return SCRATCH_FLOATS * 4; }

/* c[MR,NR] (= or +=) ap[kc][MR] outer bp[kc][NR]. */
static void micro_4x8(int kc, const float *ap, const float *bp, float *c, int ldc, int accumulate) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int p = 0; p < kc; p++) {
    v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
    v128_t a = wasm_v128_load32_splat(ap);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(ap + 1);
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(ap + 2);
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(ap + 3);
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a, b1));
    ap += MR;
    bp += NR;
  }
  float *r0 = c, *r1 = c + ldc, *r2 = c + 2 * ldc, *r3 = c + 3 * ldc;
  if (accumulate) {
    c00 = wasm_f32x4_add(c00, wasm_v128_load(r0));
    c01 = wasm_f32x4_add(c01, wasm_v128_load(r0 + 4));
    c10 = wasm_f32x4_add(c10, wasm_v128_load(r1));
    c11 = wasm_f32x4_add(c11, wasm_v128_load(r1 + 4));
    c20 = wasm_f32x4_add(c20, wasm_v128_load(r2));
    c21 = wasm_f32x4_add(c21, wasm_v128_load(r2 + 4));
    c30 = wasm_f32x4_add(c30, wasm_v128_load(r3));
    c31 = wasm_f32x4_add(c31, wasm_v128_load(r3 + 4));
  }
  wasm_v128_store(r0, c00);
  wasm_v128_store(r0 + 4, c01);
  wasm_v128_store(r1, c10);
  wasm_v128_store(r1 + 4, c11);
  wasm_v128_store(r2, c20);
  wasm_v128_store(r2 + 4, c21);
  wasm_v128_store(r3, c30);
  wasm_v128_store(r3 + 4, c31);
}

/* Transposes the 4×4 block rows s0..s3[p..p+4) into d[q·stride + 0..4), q = 0..3. */
static inline void transpose4(const float *s0, const float *s1, const float *s2, const float *s3, float *d,
                              int stride) {
  v128_t r0 = wasm_v128_load(s0), r1 = wasm_v128_load(s1), r2 = wasm_v128_load(s2), r3 = wasm_v128_load(s3);
  v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
  v128_t t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
  wasm_v128_store(d, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
  wasm_v128_store(d + stride, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
  wasm_v128_store(d + 2 * stride, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
  wasm_v128_store(d + 3 * stride, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
}

/*
 * Packs rows [r0, r0+rows) × columns [p0, p0+kc) of src[*, ld] into panels of `width` (4 or 8)
 * rows: dst[panel][p][width], zero-padding the last panel. Full panels are transposed 4×4 at
 * a time: packing is a real share of small products (each thread packs its own copy).
 */
static void pack_panels(float *dst, const float *src, int ld, int r0, int rows, int p0, int kc,
                        int width) {
  for (int pr = 0; pr < rows; pr += width) {
    int w = min_i(width, rows - pr);
    const float *s = src + (size_t)(r0 + pr) * ld + p0;
    int p = 0;
    if (w == width) {
      for (; p + 4 <= kc; p += 4) {
        for (int h = 0; h < width; h += 4) {
          const float *sh = s + (size_t)h * ld + p;
          transpose4(sh, sh + ld, sh + 2 * ld, sh + 3 * ld, dst + p * width + h, width);
        }
      }
    }
    for (int r = 0; r < width; r++) {
      float *d = dst + r;
      if (r < w) {
        const float *sr = s + (size_t)r * ld;
        for (int q = p; q < kc; q++) d[q * width] = sr[q];
      } else {
        for (int q = p; q < kc; q++) d[q * width] = 0.0f;
      }
    }
    dst += (size_t)width * kc;
  }
}

/*
 * c[m,n] = a[m,k] · b[n,k]ᵀ restricted to rows [r0,r1) of c (split_cols = 0) or columns
 * [r0,r1) of c (split_cols = 1). scratch: sgemm_scratch_bytes() bytes private to the thread.
 */
EXPORT(sgemm)
void sgemm(float *c, const float *a, const float *b, int m, int n, int k, int split_cols,
           float *scratch, int r0, int r1) {
  int i0 = split_cols ? 0 : r0, i1 = split_cols ? m : r1;
  int j0 = split_cols ? r0 : 0, j1 = split_cols ? r1 : n;
  float *bp = scratch, *ap = scratch + KC * NC, *tile = ap + MC * KC;
  if (k == 0) {
    for (int i = i0; i < i1; i++)
      for (int j = j0; j < j1; j++) c[(size_t)i * n + j] = 0.0f;
    return;
  }
  for (int jc = j0; jc < j1; jc += NC) {
    int nc = min_i(NC, j1 - jc);
    for (int pc = 0; pc < k; pc += KC) {
      int kc = min_i(KC, k - pc);
      pack_panels(bp, b, k, jc, nc, pc, kc, NR);
      for (int ic = i0; ic < i1; ic += MC) {
        int mc = min_i(MC, i1 - ic);
        pack_panels(ap, a, k, ic, mc, pc, kc, MR);
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = min_i(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            int mr = min_i(MR, mc - ir);
            float *cp = c + (size_t)(ic + ir) * n + jc + jr;
            if (mr == MR && nr == NR) {
              micro_4x8(kc, ap + ir * kc, bp + jr * kc, cp, n, pc > 0);
              continue;
            }
            micro_4x8(kc, ap + ir * kc, bp + jr * kc, tile, NR, 0);
            for (int r = 0; r < mr; r++)
              for (int q = 0; q < nr; q++)
                cp[(size_t)r * n + q] = (pc > 0 ? cp[(size_t)r * n + q] : 0.0f) + tile[r * NR + q];
          }
        }
      }
    }
  }
}

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* y[j] = w[j,:] · x, one row at a time: the weights stream strictly sequentially. */
static void gemv_rows1(float *y, const float *w, const float *x, int k, int r0, int r1) {
  int k16 = k & ~15;
  for (int j = r0; j < r1; j++) {
    const float *w0 = w + (size_t)j * k;
    v128_t s0 = wasm_f32x4_splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (int p = 0; p < k16; p += 16) {
      s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(w0 + p), wasm_v128_load(x + p)));
      s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_v128_load(w0 + p + 4), wasm_v128_load(x + p + 4)));
      s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(wasm_v128_load(w0 + p + 8), wasm_v128_load(x + p + 8)));
      s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(wasm_v128_load(w0 + p + 12), wasm_v128_load(x + p + 12)));
    }
    float y0 = hsum(wasm_f32x4_add(wasm_f32x4_add(s0, s1), wasm_f32x4_add(s2, s3)));
    for (int p = k16; p < k; p++) y0 += w0[p] * x[p];
    y[j] = y0;
  }
}

/* y[j] = w[j,:] · x, four rows at a time sharing each load of x. */
static void gemv_rows4(float *y, const float *w, const float *x, int k, int r0, int r1) {
  int k8 = k & ~7;
  int j = r0;
  for (; j + 4 <= r1; j += 4) {
    const float *w0 = w + (size_t)j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    v128_t s0 = wasm_f32x4_splat(0), s1 = s0, s2 = s0, s3 = s0;
    v128_t t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    for (int p = 0; p < k8; p += 8) {
      v128_t xa = wasm_v128_load(x + p), xb = wasm_v128_load(x + p + 4);
      s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(w0 + p), xa));
      t0 = wasm_f32x4_add(t0, wasm_f32x4_mul(wasm_v128_load(w0 + p + 4), xb));
      s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_v128_load(w1 + p), xa));
      t1 = wasm_f32x4_add(t1, wasm_f32x4_mul(wasm_v128_load(w1 + p + 4), xb));
      s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(wasm_v128_load(w2 + p), xa));
      t2 = wasm_f32x4_add(t2, wasm_f32x4_mul(wasm_v128_load(w2 + p + 4), xb));
      s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(wasm_v128_load(w3 + p), xa));
      t3 = wasm_f32x4_add(t3, wasm_f32x4_mul(wasm_v128_load(w3 + p + 4), xb));
    }
    float y0 = hsum(wasm_f32x4_add(s0, t0)), y1 = hsum(wasm_f32x4_add(s1, t1));
    float y2 = hsum(wasm_f32x4_add(s2, t2)), y3 = hsum(wasm_f32x4_add(s3, t3));
    for (int p = k8; p < k; p++) {
      y0 += w0[p] * x[p];
      y1 += w1[p] * x[p];
      y2 += w2[p] * x[p];
      y3 += w3[p] * x[p];
    }
    y[j] = y0;
    y[j + 1] = y1;
    y[j + 2] = y2;
    y[j + 3] = y3;
  }
  gemv_rows1(y, w, x, k, j, r1);
}

/*
 * y[j] = w[j,:] · x for j in [r0, r1). Hardware prefetchers follow a stream within a 4 KiB
 * page, so short rows read four at a time keep restarting them (measured 2-3x slower at
 * k = 256); long rows gain from sharing the loads of x.
 */
EXPORT(sgemv)
void sgemv(float *y, const float *w, const float *x, int n, int k, int r0, int r1) {
  (void)n;
  if (k >= 2048) gemv_rows4(y, w, x, k, r0, r1);
  else gemv_rows1(y, w, x, k, r0, r1);
}

/* out[r] = sum of x[r*len .. (r+1)*len) for r in [r0, r1): a pure read-bandwidth baseline. */
EXPORT(stream_sum)
void stream_sum(float *out, const float *x, int len, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const float *s = x + (size_t)r * len;
    v128_t a = wasm_f32x4_splat(0), b = a, c = a, d = a;
    int p = 0;
    for (; p + 16 <= len; p += 16) {
      a = wasm_f32x4_add(a, wasm_v128_load(s + p));
      b = wasm_f32x4_add(b, wasm_v128_load(s + p + 4));
      c = wasm_f32x4_add(c, wasm_v128_load(s + p + 8));
      d = wasm_f32x4_add(d, wasm_v128_load(s + p + 12));
    }
    float t = hsum(wasm_f32x4_add(wasm_f32x4_add(a, b), wasm_f32x4_add(c, d)));
    for (; p < len; p++) t += s[p];
    out[r] = t;
  }
}
