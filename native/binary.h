/*
 * Native kernels of the binary-billm format (BiLLM / DBellQuant; registry.ts, binary.ts),
 * blockSize a multiple of 128 (binary.c). The file's sign and split planes [out, rb] and float16
 * scales [out, n_blocks, 7] are read in place; at load bn_prepare makes the salient index
 * (columns, per-block ranges) and sal1, the first-order signs of the salient columns as a
 * compact bitstream per row [out, ceil(n_sal / 8)] (the residual blob has the same layout), the
 * only bytes beyond the file's (n_sal / in of a sign plane).
 */
#ifndef BITCRUSH_BINARY_H
#define BITCRUSH_BINARY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const uint8_t *sign, *split; /* [out, rb] bit j of a row: bit j % 8 of byte j / 8 */
  const uint8_t *sal1, *res;   /* [out, sal_rb] compact salient sign planes (res NULL when n_sal == 0) */
  const uint16_t *scales;      /* [out, n_blocks, 7] float16: αc μc αs μs α1 α2 μsal */
  size_t scales_len;           /* halves in scales (the last block's 8-half read is bounds-checked) */
  const int32_t *sal_col;      /* [n_sal] salient columns, ascending */
  const int32_t *sal_start;    /* [n_blocks + 1] range of sal_col in each block */
  int out, in, rb, sal_rb, n_sal, block_size, n_blocks;
} bn_tensor;

/* From the salient mask [rb]: sal_col, sal_start, and sal1 [out, sal_rb] from the sign plane. */
void bn_prepare(int32_t *sal_col, int32_t *sal_start, uint8_t *sal1, const uint8_t *salient, const uint8_t *sign, int out, int in, int block_size);
/* y [out] = W·x̃ on the pool's threads: x̃ = x on salient columns, the int8 activation x̂
 * (int8-activations.ts, 128-column blocks over all columns) elsewhere. 0 when out of memory. */
int bn_gemv(const bn_tensor *w, const float *x, float *y);
/* Rows [r0, r1) of W as float32 into dst [r1 − r0, in], the reference values exactly. */
void bn_dequant(const bn_tensor *w, float *dst, int r0, int r1);

#endif
