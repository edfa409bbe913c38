/*
 * Native kernels of the AQLM codebook format: B = 8 (Kx8 schemes), int8 lookup tables over codes
 * tiled at load (codebook-lut8.c, SIMD in codebook-x86.c / codebook-arm.c); B < 8, float32
 * lookup table over the file's bitstream rows (codebook.c); row dequantization for prefill tiles.
 */
#ifndef BITCRUSH_CODEBOOK_H
#define BITCRUSH_CODEBOOK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Tiled codes (B = 8, cb_tile_codes; the same bytes as the file): table index i = m·nG + j
 * (codebook-major; the file's rows are j·M + m) so that slices of indices never mix codebooks,
 * whose scales differ (AQLM's later codebooks fit residuals: 3-4x smaller maxima here). The first
 * ⌊out/64⌋·64 rows as tiles of 64 rows, tile t = [n][64] with n = nG·M, byte [i][l] the code i of
 * row 64t + CB_LANE_ROW(l); the rows after the last whole tile follow as rows [n] in index order.
 * The lane order puts rows 0-31 in the even bytes and 32-63 in the odd ones, so a kernel widening
 * bytes to int16 by even/odd lanes gets two runs of consecutive rows.
 */
#define CB_TILE 64
#define CB_LANE_ROW(l) (((l) & 1) * 32 + ((l) >> 1))
/*
 * Groups per int8 scale: a slice is CB_SLICE table indices of one codebook (the last of each
 * codebook may be short); an int16 lane adds at most CB_SLICE entries of |q| ≤ 127 (16·127 <
 * 2^15). 16 groups = 128 inputs at g8, the int8 activation block: stories260K AQLM 2x8 g4
 * prefill perplexity +0.337 % at 32, +0.292 % at 16, +0.185 % at 8 (bench:int8-ppl --prefill),
 * while 8 made the VBMI matvec ~20 % slower (the per-slice flush) and 16 did not.
 */
#define CB_SLICE 16

typedef struct {
  const uint8_t *codes;  /* B < 8: [out, row_bytes] bitstream of nG·M codes per row; B = 8: tiled (above) */
  size_t row_bytes;      /* ceil(nG·M·B / 8) */
  const float *cbt;      /* [M, g, K] float32 codebooks, transposed, then [M, K, g] as stored (cb_prepare) */
  const uint16_t *scale; /* [out] float16 bits */
  int out, in, M, B, K, g, nG;
} cb_tensor;

/* The file's float16 codebooks [M, K, g] into cbt [2·M·K·g] float32: [M, g, K], then [M, K, g]. */
void cb_prepare(float *cbt, const uint16_t *cb16, int M, int K, int g);
/* y [out] = W·x on the pool's threads; 0 when the table cannot be allocated. */
int cb_gemv(const cb_tensor *w, const float *x, float *y);
/* Rows [r0, r1) of W as float32 into dst [r1 − r0, in]. */
void cb_dequant(const cb_tensor *w, float *dst, int r0, int r1);
/* Caps the B = 8 lookup kernel (0 scalar, 1 AVX2 vpshufb, 2 AVX-512 VBMI vpermi2b / NEON on arm64,
 * −1 the best the CPU and lb_isa allow): tests, benchmarks. */
void cb_set_kernel(int level);
/* The B = 8 kernel cb_gemm8 runs now (the same levels). */
int cb_kernel_level(void);

/* The file's B = 8 code rows [out, nG·M] into the tiled layout dst (same size). */
void cb_tile_codes(uint8_t *dst, const uint8_t *codes, int out, int nG, int M);
/* Code i of row r of a tiled B = 8 tensor. */
int cb_code_tiled(const cb_tensor *w, int r, int i);
/*
 * B = 8: y [rows, out] = W·x per activation row of x [rows, in], through int8 tables: per row and
 * slice s (CB_SLICE groups j of one codebook m), q[i, k] = round(T[i, k] / Δ_s) with
 * T[i, k] = C_m[k]·x_j (i = m·nG + j) and Δ_s = max_{i∈s,k} |T[i, k]| / 127;
 * y_r = s_r · Σ_s Δ_s · Σ_{i∈s} q[i, b_{r,i}].
 * |y_r − (W·x)_r| ≤ |s_r| · Σ_s n_s·Δ_s / 2 (each entry rounds by at most half a step), plus
 * float32 rounding. 0 when scratch cannot be allocated. Codes read once per 16 activation rows.
 */
int cb_gemm8(const cb_tensor *w, const float *x, float *y, int rows);

/* Per-ISA parts of cb_gemm8 (codebook-lut8.c has the scalar spec they follow). */
typedef struct {
  const cb_tensor *w;
  const int8_t *q;  /* [A, n, 256] */
  const float *d;   /* [A, nsl] Δ_s */
  float *y;         /* [A, out], accumulated into */
  int A, n, nsl;
  int spm;          /* slices per codebook: ceil(nG / CB_SLICE) */
} cb_look;

/* Table indices [i0, i1) of slice s. */
static inline void cb_slice(const cb_look *L, int s, int *i0, int *i1) {
  int m = s / L->spm, j0 = (s % L->spm) * CB_SLICE, nG = L->n / L->w->M;
  *i0 = m * nG + j0;
  *i1 = m * nG + (j0 + CB_SLICE < nG ? j0 + CB_SLICE : nG);
}
/* Table rows [i0, i1) of activation row x into t [i1 − i0, 256] float32; returns max |t|. */
typedef float (*cb_table_fn)(const cb_tensor *w, const float *x, float *t, int i0, int i1);
/* y[a, rows of tiles [t0, t1)] += Σ over slices [s0, s1). */
typedef void (*cb_tiles_fn)(const cb_look *L, int t0, int t1, int s0, int s1);
/* q = round(t · inv) for count values (|t · inv| ≤ 127). */
typedef void (*cb_quant_fn)(int8_t *q, const float *t, float inv, int count);
/* cb_table_fn for four activation rows x + r·in (r < 4) into t + r·(i1 − i0)·256, maxima into mx:
 * each codebook load serves four rows (the same arithmetic per entry as table). */
typedef void (*cb_table4_fn)(const cb_tensor *w, const float *x, float *t, int i0, int i1, float *mx);
typedef struct {
  cb_table_fn table;
  cb_quant_fn quant;
  cb_tiles_fn tiles;
  cb_table4_fn table4; /* NULL: table per row */
} cb_kernels;
int cb_x86_level(void); /* 2 AVX-512 VBMI, 1 AVX2, 0 none */
void cb_x86_kernels(int level, cb_kernels *k);
int cb_arm_level(void); /* 2 NEON, 0 none */
void cb_arm_kernels(cb_kernels *k);

#endif
