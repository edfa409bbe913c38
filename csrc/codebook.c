/*
 * Kernels of the AQLM additive-codebook format (src/formats/registry.ts: aqlm), WebAssembly
 * SIMD. Reference: src/formats/codebook-linear.ts (TypeScript kernels) and
 * dequantize-then-multiply, compared in test/formats.test.ts on the wasm backends.
 *
 * Weights: ŵ[r, j·g + t] = s_r · Σ_m C_m[b_{r,j,m}][t], nG = in/g groups per row, M codebooks
 * of K = 2^B codewords. Kernel memory (src/formats/codebook-wasm.ts repacks at load):
 *   codes  u8 [out, nG·M] when B ≤ 8, else u16 (code_bytes = 1 or 2): b_{r,j,m} at j·M + m
 *   cb     f32 [M, K, g]   the codebooks (direct kernel, dequantization)
 *   cbt    f32 [M, g, Kp]  the codebooks transposed, Kp = K rounded up to 4, zero padded
 *                          (table build: four codewords per vector)
 *   table  f32 [nG, M, Kp] T[j, m, k] = C_m[k] · x_j  (x_j = x[j·g : j·g + g])
 *
 * Lookup-table matvec (AQLM §3.3, the "Kx8" kernels) in two threaded passes:
 *   codebook_lut_table over input groups j builds T (M·K·in multiply-adds, 4 per vector op);
 *   codebook_lut_gemv over output rows sums y_r = s_r · Σ_{j,m} T[j, m, b_{r,j,m}]
 *   (nG·M scalar loads per row: wasm SIMD has no gather).
 * Direct matvec (1x16, where T would be 2^16 entries per group, and short layers): per row
 * and group, the decoded group Σ_m C_m[b] dotted with x_j.
 * Dequantization (tiled matmul): the reference float32 arithmetic, Σ_m in order, then × s_r.
 */
#include "kernels.h"

typedef unsigned char u8;
typedef unsigned short u16;

static inline int code_at(const u8 *codes, int code_bytes, size_t i) {
  return code_bytes == 1 ? codes[i] : ((const u16 *)codes)[i];
}

/* T[j, m, :] for input groups j in [j0, j1): x [in] (in = nG·g), cbt [M, g, Kp], table [nG, M, Kp]. */
EXPORT(codebook_lut_table)
void codebook_lut_table(float *table, const float *cbt, const float *x, int g, int M, int Kp, int j0, int j1) {
  for (int j = j0; j < j1; j++) {
    const float *xj = x + (size_t)j * g;
    for (int m = 0; m < M; m++) {
      const float *c = cbt + (size_t)m * g * Kp;
      float *t = table + ((size_t)j * M + m) * Kp;
      int k = 0;
      /* 16 codewords at a time: four independent accumulators hide the add latency */
      for (; k + 16 <= Kp; k += 16) {
        v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < g; i++) {
          const float *ci = c + (size_t)i * Kp + k;
          v128_t xv = wasm_f32x4_splat(xj[i]);
          a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(ci), xv));
          a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(ci + 4), xv));
          a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(ci + 8), xv));
          a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(ci + 12), xv));
        }
        wasm_v128_store(t + k, a0);
        wasm_v128_store(t + k + 4, a1);
        wasm_v128_store(t + k + 8, a2);
        wasm_v128_store(t + k + 12, a3);
      }
      for (; k < Kp; k += 4) {
        v128_t a = wasm_f32x4_splat(0);
        for (int i = 0; i < g; i++) a = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_v128_load(c + (size_t)i * Kp + k), wasm_f32x4_splat(xj[i])));
        wasm_v128_store(t + k, a);
      }
    }
  }
}

/* Σ_{i<n} t[i·Kp + c[i]] with four independent sums (the loads, not the adds, are the cost). */
#define LOOKUP_SUM(c, t, n, Kp, out)                                                                  \
  do {                                                                                              \
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                           \
    int i = 0;                                                                                      \
    const float *tp = (t);                                                                          \
    for (; i + 4 <= (n); i += 4, tp += 4 * (Kp)) {                                                  \
      s0 += tp[(c)[i]];                                                                             \
      s1 += tp[(Kp) + (c)[i + 1]];                                                                  \
      s2 += tp[2 * (Kp) + (c)[i + 2]];                                                              \
      s3 += tp[3 * (Kp) + (c)[i + 3]];                                                              \
    }                                                                                               \
    for (; i < (n); i++, tp += (Kp)) s0 += tp[(c)[i]];                                              \
    (out) = (s0 + s1) + (s2 + s3);                                                                  \
  } while (0)

/*
 * y[r0..r1) = s_r · Σ_i T[i, code_i] over the row's n = nG·M codes; table [n, Kp]. The codes
 * are taken `tile` at a time for all rows of the range (partial sums kept in y), so the slice
 * of the table in use stays in cache: a whole 2x8 table of a 4096-wide layer is 1 MiB.
 */
EXPORT(codebook_lut_gemv)
void codebook_lut_gemv(float *y, const u8 *codes, const float *table, const float *scale, int n, int Kp, int code_bytes, int tile,
                       int r0, int r1) {
  for (int i0 = 0; i0 < n; i0 += tile) {
    int len = min_i(tile, n - i0);
    const float *t = table + (size_t)i0 * Kp;
    for (int r = r0; r < r1; r++) {
      float part;
      if (code_bytes == 1) LOOKUP_SUM(codes + (size_t)r * n + i0, t, len, Kp, part);
      else LOOKUP_SUM((const u16 *)codes + (size_t)r * n + i0, t, len, Kp, part);
      y[r] = i0 == 0 ? part : y[r] + part;
    }
  }
  for (int r = r0; r < r1; r++) y[r] *= scale[r];
}

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* Σ_j (Σ_m C_m[b_{r,j,m}]) · x_j of one row for g = 8 (AQLM's default): two vectors per codeword. */
#define DOT_ROW_G8(c, cb, x, nG, M, K, out)                                                           \
  do {                                                                                              \
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0;                                                       \
    for (int j = 0; j < (nG); j++, (c) += (M)) {                                                    \
      v128_t w0 = wasm_f32x4_splat(0), w1 = w0;                                                     \
      for (int m = 0; m < (M); m++) {                                                               \
        const float *p = (cb) + ((size_t)m * (K) + (c)[m]) * 8;                                     \
        w0 = wasm_f32x4_add(w0, wasm_v128_load(p));                                                 \
        w1 = wasm_f32x4_add(w1, wasm_v128_load(p + 4));                                             \
      }                                                                                             \
      a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(w0, wasm_v128_load((x) + 8 * j)));                     \
      a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(w1, wasm_v128_load((x) + 8 * j + 4)));                 \
    }                                                                                               \
    (out) = hsum(wasm_f32x4_add(a0, a1));                                                           \
  } while (0)

/* y[r0..r1) by decoding each group: cb [M, K, g], x [nG·g]. Vector code when g % 4 == 0. */
EXPORT(codebook_direct_gemv)
void codebook_direct_gemv(float *y, const u8 *codes, const float *cb, const float *scale, const float *x, int nG, int M, int K,
                          int g, int code_bytes, int r0, int r1) {
  size_t n = (size_t)nG * M;
  for (int r = r0; r < r1; r++) {
    size_t ci = (size_t)r * n;
    if (g == 8) {
      float d;
      if (code_bytes == 1) {
        const u8 *c = codes + ci;
        DOT_ROW_G8(c, cb, x, nG, M, K, d);
      } else {
        const u16 *c = (const u16 *)codes + ci;
        DOT_ROW_G8(c, cb, x, nG, M, K, d);
      }
      y[r] = scale[r] * d;
    } else if (g % 4 == 0) {
      v128_t acc = wasm_f32x4_splat(0);
      for (int j = 0; j < nG; j++) {
        const float *xj = x + (size_t)j * g;
        for (int t = 0; t < g; t += 4) {
          v128_t w = wasm_f32x4_splat(0);
          for (int m = 0; m < M; m++) w = wasm_f32x4_add(w, wasm_v128_load(cb + ((size_t)m * K + code_at(codes, code_bytes, ci + m)) * g + t));
          acc = wasm_f32x4_add(acc, wasm_f32x4_mul(w, wasm_v128_load(xj + t)));
        }
        ci += M;
      }
      y[r] = scale[r] * hsum(acc);
    } else {
      float acc = 0;
      for (int j = 0; j < nG; j++, ci += M) {
        const float *xj = x + (size_t)j * g;
        for (int t = 0; t < g; t++) {
          float w = 0;
          for (int m = 0; m < M; m++) w += cb[((size_t)m * K + code_at(codes, code_bytes, ci + m)) * g + t];
          acc += w * xj[t];
        }
      }
      y[r] = scale[r] * acc;
    }
  }
}

/*
 * Rows [r0, r1) of W into w [rows, nG·g] (rows counted from the codes and scale pointers):
 * w[r, j·g + t] = s_r · (Σ_m C_m[b_{r,j,m}][t]), sums in order m = 0..M−1, exactly as
 * dequantizeCodebook in src/formats/codebook.ts (float32 adds and multiplies round alike).
 */
EXPORT(codebook_dequant)
void codebook_dequant(float *w, const u8 *codes, const float *cb, const float *scale, int nG, int M, int K, int g, int code_bytes,
                      int r0, int r1) {
  size_t n = (size_t)nG * M, in = (size_t)nG * g;
  for (int r = r0; r < r1; r++) {
    float *out = w + (size_t)r * in;
    v128_t s = wasm_f32x4_splat(scale[r]);
    for (int j = 0; j < nG; j++) {
      size_t ci = (size_t)r * n + (size_t)j * M;
      float *o = out + (size_t)j * g;
      int t = 0;
      for (; t + 4 <= g; t += 4) {
        v128_t a = wasm_f32x4_splat(0);
        for (int m = 0; m < M; m++) a = wasm_f32x4_add(a, wasm_v128_load(cb + ((size_t)m * K + code_at(codes, code_bytes, ci + m)) * g + t));
        wasm_v128_store(o + t, wasm_f32x4_mul(a, s));
      }
      for (; t < g; t++) {
        float a = 0;
        for (int m = 0; m < M; m++) a += cb[((size_t)m * K + code_at(codes, code_bytes, ci + m)) * g + t];
        o[t] = scale[r] * a;
      }
    }
  }
}
