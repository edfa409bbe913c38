/*
 * Native kernels of the binary-billm format (BiLLM / DBellQuant; registry.ts, binary.ts),
 * blockSize a multiple of 128 (binary.c; SIMD in binary-x86.c, binary-arm.c). At load bn_prepare copies the file's
 * planes into the kernel layout (same bytes, padded to 16-row groups and 128-column chunks),
 * so one 64-bit word is the operand of one integer dot product for 16 rows at once:
 *   planes [groups][quads][2]: word 0 the sign bits, word 1 the split bits of rows 16g..16g+15,
 *          columns 4q..4q+3, bit 4i + k = row 16g + i, column 4q + k (byte 4i + k of a 64-byte
 *          vector is lane i's byte k: the layout vpdpbusd sums per 32-bit lane);
 *   scales [groups][n_blocks][7][16] float16, the file's αc μc αs μs α1 α2 μsal of each row as
 *          a 16-row vector;
 *   sal    [groups][n_sal] 32-bit words: bits 0-15 the first-order signs (the sign plane on the
 *          salient column), bits 16-31 the residual signs, bit i = row 16g + i.
 * Padding rows and columns are zero bits and zero scales. The kernels never read the file's
 * row-major planes, so a Linear keeps only this copy.
 */
#ifndef BITCRUSH_BINARY_H
#define BITCRUSH_BINARY_H

#include <stddef.h>
#include <stdint.h>

#define BN_NS 7

typedef struct {
  const uint64_t *planes;
  const uint16_t *scales;
  const uint32_t *sal;         /* NULL when n_sal == 0 */
  const int32_t *sal_col;      /* [n_sal] salient columns, ascending */
  const int32_t *sal_start;    /* [n_blocks + 1] range of sal_col in each block */
  int out, in, n_sal, block_size, n_blocks;
  int groups, chunks, quads;   /* ceil(out/16), ceil(in/128), 32·chunks */
} bn_tensor;

/* Sizes of the kernel layout, in elements of each array (uint64, uint16, uint32). */
static inline size_t bn_planes_len(int out, int in) { return (size_t)((out + 15) / 16) * ((in + 127) / 128) * 32 * 2; }
static inline size_t bn_scales_len(int out, int in, int bs) { return (size_t)((out + 15) / 16) * ((in + bs - 1) / bs) * BN_NS * 16; }
static inline size_t bn_sal_len(int out, int n_sal) { return (size_t)((out + 15) / 16) * n_sal; }

/* From the file's blobs (sign, split [out, ceil(in/8)], residual [out, ceil(n_sal/8)] or NULL,
 * scales [out, n_blocks, 7], salient mask [ceil(in/8)]) into the kernel layout and the salient
 * index (sal_col, sal_start). */
void bn_prepare(uint64_t *planes, uint16_t *scales_t, uint32_t *sal, int32_t *sal_col, int32_t *sal_start, const uint8_t *salient,
                const uint8_t *sign, const uint8_t *split, const uint8_t *res, const uint16_t *scales, int out, int in, int block_size);
/* y [out] = W·x̃ on the pool's threads: x̃ = x on salient columns, the int8 activation x̂
 * (int8-activations.ts, 128-column blocks over all columns) elsewhere. 0 when out of memory. */
int bn_gemv(const bn_tensor *w, const float *x, float *y);
/* Y [rows, out] = X [rows, in] · W̃ᵀ, each row of X quantized as bn_gemv does (each row of Y is
 * that row's matvec up to float32 accumulation order), on AVX-512 VNNI only (bn_gemm_simd): with
 * AVX2 the per-row dot products cost more than dequantized tiles + sgemm. 0 when out of memory. */
int bn_gemm(const bn_tensor *w, const float *x, int rows, float *y);
int bn_gemm_simd(void);
/* Rows [r0, r1) of W as float32 into dst [r1 − r0, in], the reference values exactly. */
void bn_dequant(const bn_tensor *w, float *dst, int r0, int r1);

/* Per-call activations of `rows` rows (row t at t·chunks·128 etc.): xq int8 (0 on salient columns
 * and past in), xs [chunks] scale per 128 columns, tsum and ssum [n_blocks] (Σ x̂ over the block's
 * other columns, Σ x over its salient ones), xsal [n_sal] float x of the salient columns. */
typedef struct {
  int8_t *xq;
  float *xs, *tsum, *ssum, *xsal;
  int rows;
} bn_act;

/* Row groups [g0, g1) of y (bn_gemv) or of Y (bn_gemm, Y [a->rows, out]); one per instruction set. */
typedef void (*bn_rows_fn)(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1);
#if defined(__x86_64__)
void bn_rows_vnni(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1);
void bn_rows_avx2(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1);
void bn_gemm_vnni(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1);
#endif
#if defined(__aarch64__)
void bn_rows_neon(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1);
#endif

#endif
