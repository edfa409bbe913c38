/*
 * Native kernels of the AQLM codebook format (codebook.c): lookup-table matvec with float32
 * activations, and row dequantization for prefill tiles. Codes B ≤ 8 bits, the file's bitstream rows.
 */
#ifndef BITCRUSH_CODEBOOK_H
#define BITCRUSH_CODEBOOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const uint8_t *codes;  /* [out, row_bytes] bitstream of nG·M codes per row */
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
/* Caps the lookup kernel (0 scalar, 1 AVX2 gathers, 2 AVX-512 gathers, −1 the ISA's best): tests, benchmarks. */
void cb_set_gather(int level);

#endif
