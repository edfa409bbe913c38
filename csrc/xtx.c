/*
 * h[k,k] += xᵀx for x[rows,k] float32, accumulated in float64 (GPTQ-style Hessian statistics).
 *
 * Rows of x are taken in chunks of rc; each chunk is widened to float64 and repacked into
 * 4-column panels p[panel][r][4] so that a 4×4 tile of h streams two contiguous panels.
 * Products of two float32 values are exact in float64, so only the summation rounds.
 * Threads own ranges of 4-row tile rows of h and compute the lower-triangle tiles of those
 * rows, mirroring each into the upper triangle: every element of h has exactly one writer.
 */
#include "kernels.h"

/* Widens panels [0, t1) of rows [r0, r0+rr) of x into p[panel][rc][4], zero past column k. */
static void pack_f64(double *p, const float *x, int k, int r0, int rr, int rc, int t1) {
  for (int r = 0; r < rr; r++) {
    const float *s = x + (size_t)(r0 + r) * k;
    for (int t = 0; t < t1; t++) {
      double *d = p + ((size_t)t * rc + r) * 4;
      int c0 = t * 4;
      if (c0 + 4 <= k) {
        v128_t v = wasm_v128_load(s + c0);
        wasm_v128_store(d, wasm_f64x2_promote_low_f32x4(v));
        wasm_v128_store(d + 2, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)));
      } else {
        for (int c = 0; c < 4; c++) d[c] = c0 + c < k ? (double)s[c0 + c] : 0.0;
      }
    }
  }
}

/*
 * acc[4][4] = Σ_r pi[r][a] · pj[r][b] over rr rows, added into h (mirrored when off-diagonal).
 * out: 16 doubles of thread scratch.
 */
static void tile(double *h, int k, const double *pi, const double *pj, int rr, int ti, int tj,
                 double *out) {
  v128_t a00 = wasm_f64x2_splat(0), a01 = a00, a10 = a00, a11 = a00;
  v128_t a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  for (int r = 0; r < rr; r++) {
    v128_t b0 = wasm_v128_load(pj), b1 = wasm_v128_load(pj + 2);
    v128_t s = wasm_v128_load64_splat(pi);
    a00 = wasm_f64x2_add(a00, wasm_f64x2_mul(s, b0));
    a01 = wasm_f64x2_add(a01, wasm_f64x2_mul(s, b1));
    s = wasm_v128_load64_splat(pi + 1);
    a10 = wasm_f64x2_add(a10, wasm_f64x2_mul(s, b0));
    a11 = wasm_f64x2_add(a11, wasm_f64x2_mul(s, b1));
    s = wasm_v128_load64_splat(pi + 2);
    a20 = wasm_f64x2_add(a20, wasm_f64x2_mul(s, b0));
    a21 = wasm_f64x2_add(a21, wasm_f64x2_mul(s, b1));
    s = wasm_v128_load64_splat(pi + 3);
    a30 = wasm_f64x2_add(a30, wasm_f64x2_mul(s, b0));
    a31 = wasm_f64x2_add(a31, wasm_f64x2_mul(s, b1));
    pi += 4;
    pj += 4;
  }
  /* Spill through thread scratch, not a C array: arrays would need the shared shadow stack. */
  wasm_v128_store(out, a00);
  wasm_v128_store(out + 2, a01);
  wasm_v128_store(out + 4, a10);
  wasm_v128_store(out + 6, a11);
  wasm_v128_store(out + 8, a20);
  wasm_v128_store(out + 10, a21);
  wasm_v128_store(out + 12, a30);
  wasm_v128_store(out + 14, a31);
  int i0 = ti * 4, j0 = tj * 4;
  if (i0 + 4 <= k && j0 + 4 <= k) {
    for (int a = 0; a < 4; a++) {
      double *row = h + (size_t)(i0 + a) * k + j0;
      wasm_v128_store(row, wasm_f64x2_add(wasm_v128_load(row), wasm_v128_load(out + 4 * a)));
      wasm_v128_store(row + 2, wasm_f64x2_add(wasm_v128_load(row + 2), wasm_v128_load(out + 4 * a + 2)));
    }
    if (ti == tj) return;
    for (int b = 0; b < 4; b++) {
      double *row = h + (size_t)(j0 + b) * k + i0;
      row[0] += out[b];
      row[1] += out[4 + b];
      row[2] += out[8 + b];
      row[3] += out[12 + b];
    }
    return;
  }
  for (int a = 0; a < 4 && i0 + a < k; a++) {
    for (int b = 0; b < 4 && j0 + b < k; b++) {
      double d = out[4 * a + b];
      h[(size_t)(i0 + a) * k + j0 + b] += d;
      if (ti != tj) h[(size_t)(j0 + b) * k + i0 + a] += d;
    }
  }
}

/*
 * Accumulates the tile rows [t0, t1) of h (rows 4·t0 .. 4·t1 of h, clipped to k) over all rows
 * of x. scratch: rc · 4 · ceil(k/4) + 16 doubles private to the thread.
 */
EXPORT(xtx)
void xtx(double *h, const float *x, int rows, int k, int rc, double *scratch, int t0, int t1) {
  double *out = scratch + (size_t)rc * 4 * ((k + 3) / 4);
  for (int r0 = 0; r0 < rows; r0 += rc) {
    int rr = min_i(rc, rows - r0);
    pack_f64(scratch, x, k, r0, rr, rc, t1);
    for (int ti = t0; ti < t1; ti++) {
      const double *pi = scratch + (size_t)ti * rc * 4;
      for (int tj = 0; tj <= ti; tj++) tile(h, k, pi, scratch + (size_t)tj * rc * 4, rr, ti, tj, out);
    }
  }
}
