/*
 * Float64 Cholesky factorization and lower-triangular inverse, blocked so that the O(n³) part
 * splits across threads by rows. Row-major, in place, lower triangle.
 *
 * Cholesky (right-looking, block size bs): for each diagonal block kb
 *   chol_diag   factor A11 = L11·L11ᵀ (one thread; reports non-SPD)
 *   chol_panel  L21 = A21·L11⁻ᵀ          (rows split)
 *   chol_update A22 -= L21·L21ᵀ, lower    (rows split, triangular cost)
 * Inverse X = L⁻¹ (block columns right to left, so L21 is still intact when needed):
 *   trinv_diag  X11 = L11⁻¹               (one thread)
 *   trinv_mul   T = X22·L21               (rows split; X22 already inverted)
 *   trinv_store X21 = -T·X11              (rows split, after every T row exists)
 * The JavaScript pool runs the phases in order with a barrier (one dispatch) per phase.
 */
#include "kernels.h"

static double dot(const double *x, const double *y, int len) {
  v128_t s = wasm_f64x2_splat(0), t = s;
  int p = 0;
  for (; p + 4 <= len; p += 4) {
    s = wasm_f64x2_add(s, wasm_f64x2_mul(wasm_v128_load(x + p), wasm_v128_load(y + p)));
    t = wasm_f64x2_add(t, wasm_f64x2_mul(wasm_v128_load(x + p + 2), wasm_v128_load(y + p + 2)));
  }
  s = wasm_f64x2_add(s, t);
  double r = wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
  for (; p < len; p++) r += x[p] * y[p];
  return r;
}

/* Unblocked factor of the bs×bs block at (kb, kb); zeroes rows kb..kb+bs right of the diagonal. */
EXPORT(chol_diag)
int chol_diag(double *a, int n, int kb, int bs) {
  for (int j = 0; j < bs; j++) {
    double *lj = a + (size_t)(kb + j) * n + kb;
    double s = lj[j] - dot(lj, lj, j);
    if (!(s > 0.0)) return 0; /* also rejects NaN */
    double d = __builtin_sqrt(s);
    lj[j] = d;
    for (int i = j + 1; i < bs; i++) {
      double *li = a + (size_t)(kb + i) * n + kb;
      li[j] = (li[j] - dot(li, lj, j)) / d;
    }
    for (int c = kb + j + 1; c < n; c++) a[(size_t)(kb + j) * n + c] = 0.0;
  }
  return 1;
}

/* Rows [r0, r1) (all ≥ kb+bs) of the panel: forward substitution against L11. */
EXPORT(chol_panel)
void chol_panel(double *a, int n, int kb, int bs, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    double *li = a + (size_t)i * n + kb;
    for (int j = 0; j < bs; j++) {
      const double *lj = a + (size_t)(kb + j) * n + kb;
      li[j] = (li[j] - dot(li, lj, j)) / lj[j];
    }
  }
}

/* Rows [r0, r1) of the trailing update A22[i, j] -= L21[i]·L21[j], kb+bs ≤ j ≤ i. */
EXPORT(chol_update)
void chol_update(double *a, int n, int kb, int bs, int r0, int r1) {
  int j0 = kb + bs;
  for (int i = r0; i < r1; i++) {
    const double *li = a + (size_t)i * n + kb;
    double *row = a + (size_t)i * n;
    int j = j0;
    /* Four columns at a time share each load of li. */
    for (; j + 4 <= i + 1; j += 4) {
      const double *l0 = a + (size_t)j * n + kb, *l1 = l0 + n, *l2 = l1 + n, *l3 = l2 + n;
      v128_t s0 = wasm_f64x2_splat(0), s1 = s0, s2 = s0, s3 = s0;
      int p = 0;
      for (; p + 2 <= bs; p += 2) {
        v128_t x = wasm_v128_load(li + p);
        s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(x, wasm_v128_load(l0 + p)));
        s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(x, wasm_v128_load(l1 + p)));
        s2 = wasm_f64x2_add(s2, wasm_f64x2_mul(x, wasm_v128_load(l2 + p)));
        s3 = wasm_f64x2_add(s3, wasm_f64x2_mul(x, wasm_v128_load(l3 + p)));
      }
      double d0 = wasm_f64x2_extract_lane(s0, 0) + wasm_f64x2_extract_lane(s0, 1);
      double d1 = wasm_f64x2_extract_lane(s1, 0) + wasm_f64x2_extract_lane(s1, 1);
      double d2 = wasm_f64x2_extract_lane(s2, 0) + wasm_f64x2_extract_lane(s2, 1);
      double d3 = wasm_f64x2_extract_lane(s3, 0) + wasm_f64x2_extract_lane(s3, 1);
      if (p < bs) {
        d0 += li[p] * l0[p];
        d1 += li[p] * l1[p];
        d2 += li[p] * l2[p];
        d3 += li[p] * l3[p];
      }
      row[j] -= d0;
      row[j + 1] -= d1;
      row[j + 2] -= d2;
      row[j + 3] -= d3;
    }
    for (; j <= i; j++) row[j] -= dot(li, a + (size_t)j * n + kb, bs);
  }
}

/* In-place inverse of the lower-triangular bs×bs block at (j0, j0). */
EXPORT(trinv_diag)
void trinv_diag(double *a, int n, int j0, int bs) {
  double *d = a + (size_t)j0 * n + j0;
  for (int j = bs - 1; j >= 0; j--) {
    double xjj = 1.0 / d[(size_t)j * n + j];
    /* Descending i: L[p][j] for p ≤ i is still the original column when row i is written. */
    for (int i = bs - 1; i > j; i--) {
      const double *xi = d + (size_t)i * n;
      double s = 0.0;
      for (int p = j + 1; p <= i; p++) s += xi[p] * d[(size_t)p * n + j];
      d[(size_t)i * n + j] = -s * xjj;
    }
    d[(size_t)j * n + j] = xjj;
  }
}

/* t[i - j1][c] = Σ_{p=j1..i} X[i][p]·L[p][j0 + c] for rows i in [r0, r1), j1 = j0 + bs. */
EXPORT(trinv_mul)
void trinv_mul(double *a, int n, int j0, int bs, double *t, int r0, int r1) {
  int j1 = j0 + bs;
  for (int i = r0; i < r1; i++) {
    const double *xi = a + (size_t)i * n;
    double *ti = t + (size_t)(i - j1) * bs;
    int c = 0;
    for (; c + 8 <= bs; c += 8) {
      v128_t s0 = wasm_f64x2_splat(0), s1 = s0, s2 = s0, s3 = s0;
      for (int p = j1; p <= i; p++) {
        v128_t x = wasm_v128_load64_splat(xi + p);
        const double *lp = a + (size_t)p * n + j0 + c;
        s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(x, wasm_v128_load(lp)));
        s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(x, wasm_v128_load(lp + 2)));
        s2 = wasm_f64x2_add(s2, wasm_f64x2_mul(x, wasm_v128_load(lp + 4)));
        s3 = wasm_f64x2_add(s3, wasm_f64x2_mul(x, wasm_v128_load(lp + 6)));
      }
      wasm_v128_store(ti + c, s0);
      wasm_v128_store(ti + c + 2, s1);
      wasm_v128_store(ti + c + 4, s2);
      wasm_v128_store(ti + c + 6, s3);
    }
    for (; c < bs; c++) {
      double s = 0.0;
      for (int p = j1; p <= i; p++) s += xi[p] * a[(size_t)p * n + j0 + c];
      ti[c] = s;
    }
  }
}

/* X[i][j0 + c] = -Σ_{q ≥ c} t[i - j1][q]·X11[q][c] for rows i in [r0, r1). */
EXPORT(trinv_store)
void trinv_store(double *a, int n, int j0, int bs, const double *t, int r0, int r1) {
  int j1 = j0 + bs;
  const double *x11 = a + (size_t)j0 * n + j0;
  for (int i = r0; i < r1; i++) {
    double *out = a + (size_t)i * n + j0;
    const double *ti = t + (size_t)(i - j1) * bs;
    for (int c = 0; c < bs; c++) out[c] = 0.0;
    for (int q = 0; q < bs; q++) {
      v128_t s = wasm_f64x2_splat(-ti[q]);
      const double *xq = x11 + (size_t)q * n;
      int c = 0;
      for (; c + 2 <= q + 1; c += 2)
        wasm_v128_store(out + c, wasm_f64x2_add(wasm_v128_load(out + c), wasm_f64x2_mul(s, wasm_v128_load(xq + c))));
      for (; c <= q; c++) out[c] -= ti[q] * xq[c];
    }
  }
}
