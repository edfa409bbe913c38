/*
 * Native decode kernels of the uniform b-bit group formats (b = 2, 3, 4, 8; registry.ts
 * uniform-asym / uniform-sym), with the activation quantized once per matvec to int8 and
 * integer dot products (u8 levels × s8 activations):
 *   y_r = Σ_b s_w[r, g(b)] · s_x[b] · Σ_{j∈b} (q[r, j] − z[r, g(b)]) · xq[j]
 * over blocks b of 128 columns, with xq = round(x / s_x[b]) and s_x[b] = max|x_b| / 127, so
 * the zero term uses the block's integer Σ xq. References: the TypeScript kernels
 * (uniform-linear.ts) and the int8 activation reference (src/formats/int8-activations.ts),
 * compared in test/formats.test.ts.
 *
 * Weight layout: the file's own bitstream (value j at bits [j·b, j·b + b) of its row, rows
 * ceil(in·b/8) bytes) for b = 2, 4, 8, read in place; a 128-column block is 16·b bytes from
 * byte 16·b·block of its row (the last block may be short: it is copied into a zeroed buffer).
 * 3-bit rows are repacked at load (lb_repack3, same size up to the last block) into 48-byte
 * blocks: 32 bytes of the low two bits in the 2-bit order, then 16 bytes of bit 2, where byte
 * i bit m holds bit 2 of column 4·(i + 16·(m & 1)) + (m >> 1).
 * The activation is stored in the order the unpacked lanes come out ("kernel order", per block):
 *   b = 2, 3: lane 32k + i = column 4i + k (plane k = bits 2k of the 32 bytes);
 *   b = 4:    lane 64m + i = column 2i + m (nibble m of byte i);
 *   b = 8:    lane i = column i.
 * Pair order (the AVX-512 VNNI 2/3-bit matvec, lowbit-vnni.c): blocks 2j and 2j + 1 share 256
 * bytes from 256·j, plane k of both at 64·k, block 2j + p's 32 lanes of it at 64·k + 32·p, so one
 * 64-byte plane of a block pair's levels meets one 64-byte load of the activation.
 * Scales stay float16 [out, n_groups] and zeros stay the file's b-bit bitstream
 * [out, zbytes] (NULL: the symmetric midpoint 2^(b−1)), so kernel memory is the file's bytes.
 * Groups are whole blocks (group_size % 128 == 0, or one group per row), or 32 or 64 columns:
 * then a block holds gsub = 128 / group_size groups, and the kernels keep one integer dot per
 * 32 columns of a block (the activation keeps one s_x per 128 columns: int8-activations.ts), each
 * scaled by its group's s_w — llama.cpp's Q4_0·Q8_0 dot has one scale per 32 columns on both sides,
 * here the activation's is shared by four weight groups (docs/kernels.md "Groups of 32 and 64").
 * Where the 32-column sums sit in a block dot's int32 lanes depends on the width (lb_sub_map).
 */
#ifndef BITCRUSH_LOWBIT_H
#define BITCRUSH_LOWBIT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define LB_BLOCK 128

typedef struct {
  const uint8_t *q;      /* [out, row_stride] levels, layout above */
  size_t row_stride;     /* bytes per row */
  const uint16_t *scale; /* [out, n_groups] float16 bits */
  const uint8_t *zero;   /* [out, zbytes] b-bit zero bitstream, or NULL for the midpoint */
  int zbytes;
  int out, in, bits;
  int blocks;       /* ceil(in / 128) */
  int group_blocks; /* blocks per group (the last group may be short); 1 when gsub > 1 */
  int gsub;         /* groups per block: 4 (group 32), 2 (group 64), else 1 */
  int n_groups;     /* ceil(in / group_size); when gsub > 1 group g of block b is b·gsub + s */
} lb_uniform;

typedef struct {
  int8_t *xq;    /* [blocks · 128] kernel order, zero past in */
  float *xs;     /* [blocks] s_x */
  int32_t *xsum; /* [blocks] Σ xq */
  float *gx;     /* [n_groups] Σ_{b∈g} s_x[b]·xsum[b], the zero term's factor (lb_gemv fills it) */
  int32_t *xsum32; /* [blocks · 4] Σ xq per 32 columns (groups of 32 and 64), or NULL when unused */
  int pairs;     /* 2- and 3-bit lanes in pair order (below; set by lb_pairs before quantizing), xq [ceil(blocks / 2) · 256] */
} lb_act;

/*
 * SliM-LLM mixed widths (registry.ts mixed-asym) with 128-column groups, in_dim a multiple of
 * 128: group g of a row is the file's bitstream of its width widths[g] ∈ 1..4 at byte goff[g]
 * (16, 32, 48, 64 bytes), 3-bit groups repacked at load into the 3-bit block layout above (same
 * size). 1-bit lanes: lane 16k + i = column 8i + k (bit k of byte i). Zeros: the file's
 * bitstream of the ≥2-bit groups' integer zeros (zbit[g] = bit offset in a row's zbytes), and
 * float16 zeros of the 1-bit groups (zero1, n1 per row; zbit[g] = −1 − index).
 */
typedef struct {
  const uint8_t *q;
  size_t row_stride;
  const uint16_t *scale; /* [out, n_groups] */
  const uint8_t *zero;   /* [out, zbytes] or NULL */
  const uint16_t *zero1; /* [out, n1] or NULL */
  const uint8_t *widths; /* [n_groups] */
  const int32_t *goff;   /* [n_groups] */
  const int32_t *zbit;   /* [n_groups] */
  int zbytes, n1;
  int out, in, n_groups;
} lb_mixed;

/* Zero of group g of row r of a mixed tensor (integer, or the 1-bit groups' float16). */
static inline float lb_mixed_zero(const lb_mixed *w, int r, int g);

/* Rows [r0, r1) of y = W·x (one implementation per instruction set). */
typedef void (*lb_rows_fn)(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1);

/* x [in] (original column order; perm [in] maps stored → original, or NULL) into a; block b's
 * lanes in the order of width widths[b] (NULL: all `bits`). */
void lb_quantize_act(const float *x, const int32_t *perm, int in, int blocks, int bits, const uint8_t *widths, lb_act *a);
/* y [out] of a mixed tensor on the pool's threads; a->gx is filled per group (= block). */
void lb_gemv_mixed(const lb_mixed *w, lb_act *a, float *y);
void lb_dequant_mixed(const lb_mixed *w, float *dst, int r0, int r1);
/* 3-bit groups of mixed rows from the file's bitstream into the 3-bit block layout, in place of a copy. */
void lb_repack_mixed3(uint8_t *q, const lb_mixed *w);
typedef void (*lb_mixed_rows_fn)(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1);
void lb_mixed_rows_scalar(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1);
/* y [out] = W·x on the pool's threads, with the selected instruction set. */
void lb_gemv(const lb_uniform *w, lb_act *a, float *y);
/* Whether the selected matvec of `bits`-bit levels takes its activation in pair order (a->pairs). */
int lb_pairs(int bits);
/* Rows [r0, r1) of W as float32 into dst [r1 − r0, in], original column order. */
void lb_dequant_rows(const lb_uniform *w, const int32_t *perm, float *dst, int r0, int r1);
/* 3-bit file rows src [out, ceil(in·3/8)] into the kernel layout dst [out, blocks · 48]. */
void lb_repack3(uint8_t *dst, const uint8_t *src, int out, int in);

/*
 * Prefill (lowbit-gemm.c): Y [rows, out] = X [rows, in] · Wᵀ with int8 activations, each row of X
 * quantized per 128-column block exactly as the matvec does (lb_quantize_act, so every row of Y
 * equals the matvec of that row up to float32 accumulation order). The rows of X are packed in
 * tiles of 16 rows: for block b and column quad k (kernel-order lanes 4k..4k+3) a tile holds
 * 16 × 4 bytes, row i at bytes 4i..4i+3 — the operand of one vpdpbusd against the four u8 levels
 * of one weight row broadcast to every lane. Weight rows are unpacked per panel of LB_GEMM_RB
 * rows into u8 levels in the same kernel order (lowbit.h layout), so the integer products need
 * no shuffle on either side:
 *   Y[t, r] = Σ_b s_w[r, g(b)] · s_x[t, b] · Σ_{j∈b} q[r, j] · xq[t, j] − Σ_g s_w[r, g] · z[r, g] · gx[t, g]
 * with gx[t, g] = Σ_{b∈g} s_x[t, b] · Σ xq[t, b]. Groups of 32 and 64 (gsub > 1): the first sum
 * is per group within the block, Σ_{b,g∈b} s_w[r, g] · s_x[t, b] · Σ_{j∈g} q[r, j] · xq[t, j].
 */
#define LB_GEMM_RB 4
typedef struct {
  int rows, tiles;  /* activation rows; tiles of 16 rows (the last padded with zero rows) */
  int blocks, n_groups, group_blocks;
  int gsub;         /* groups per block (lb_uniform); when > 1, n_groups = blocks · gsub (padded with zero scales)
                     * and quads are in part order: part s of a block = quads [s·32/gsub, (s+1)·32/gsub) */
  int eight;        /* levels may exceed 15 (8-bit): the AVX2 panel splits them into nibbles */
  int8_t *xp;       /* [tiles][blocks][32][16][4] */
  float *xs;        /* [tiles][blocks][16] s_x */
  float *gx;        /* [tiles][n_groups][16] */
} lb_gact;
/* Rows [r0, r0 + nr) (nr ≤ LB_GEMM_RB) of Y from their unpacked levels wu [LB_GEMM_RB][blocks·128]
 * (kernel order), float scales sw and s·z szw [LB_GEMM_RB][n_groups]; Y is [rows, out]. */
typedef void (*lb_gemm_panel_fn)(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr);
/* One 128-column block of `bits`-bit levels (lowbit.h layout) into 128 u8 levels in kernel order. */
typedef void (*lb_unpack_fn)(const uint8_t *blk, int bits, uint8_t *dst);
/* Y = X·Wᵀ on the pool's threads (perm: stored → original column of X, or NULL). Returns 0 when out of memory. */
int lb_gemm(const lb_uniform *w, const int32_t *perm, const float *x, int rows, float *y);
int lb_gemm_mixed(const lb_mixed *w, const float *x, int rows, float *y);
void lb_gemm_panel_scalar(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr);
#if defined(__x86_64__)
void lb_gemm_panel_avx2(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr);
void lb_gemm_panel_vnni(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr);
void lb_unpack_avx2(const uint8_t *blk, int bits, uint8_t *dst);
#endif
/* The kernels lb_gemm uses with the selected instruction set (lowbit.c). */
lb_gemm_panel_fn lb_gemm_panel(void);
lb_unpack_fn lb_unpack(void);
void lb_unpack_scalar(const uint8_t *blk, int bits, uint8_t *dst);

/* The instruction set in use ("vnni", "avx2", "neon-dotprod", "scalar"); lb_set_isa picks one
 * the CPU has (tests run every path) and returns 0 when it is unavailable. */
const char *lb_isa(void);
int lb_set_isa(const char *name);

/* Shared by the per-ISA files, inline: they run once per block or group. */
static inline float lb_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else { /* subnormal: renormalise */
      int e = -1;
      do { man <<= 1; e++; } while (!(man & 0x400));
      bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | man << 13;
  else bits = sign | (exp + 112) << 23 | man << 13;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Zero of group g of row r. */
static inline int lb_zero(const lb_uniform *w, int r, int g) {
  if (!w->zero) return 1 << (w->bits - 1);
  const uint8_t *z = w->zero + (size_t)r * w->zbytes;
  int bit = g * w->bits, byte = bit >> 3;
  unsigned v = z[byte] | (byte + 1 < w->zbytes ? (unsigned)z[byte + 1] << 8 : 0u);
  return (int)((v >> (bit & 7)) & ((1u << w->bits) - 1));
}

static inline int lb_block_bytes(int bits) { return bits == 3 ? 48 : 16 * bits; }

static inline float lb_mixed_zero(const lb_mixed *w, int r, int g) {
  int zb = w->zbit[g], b = w->widths[g];
  if (zb < 0) return lb_f16(w->zero1[(size_t)r * w->n1 + (-1 - zb)]);
  const uint8_t *z = w->zero + (size_t)r * w->zbytes;
  int byte = zb >> 3;
  unsigned v = z[byte] | (byte + 1 < w->zbytes ? (unsigned)z[byte + 1] << 8 : 0u);
  return (float)((v >> (zb & 7)) & ((1u << b) - 1));
}

/* The groups of a mixed tensor by width (every row has the same widths): order [n_groups] lists
 * width 1's groups, then 2's, 3's, 4's; width b's run is order[start[b] .. start[b + 1]) (start[5]
 * = n_groups). The SIMD kernels loop width by width: a switch per group mispredicted. */
static inline void lb_mixed_order(const lb_mixed *w, int *order, int start[6]) {
  int fill[6] = {0, 0, 0, 0, 0, 0};
  for (int g = 0; g < w->n_groups; g++) fill[w->widths[g] > 4 ? 4 : w->widths[g]]++;
  start[0] = start[1] = 0;
  for (int b = 1; b <= 4; b++) start[b + 1] = start[b] + fill[b];
  memcpy(fill, start, sizeof fill);
  for (int g = 0; g < w->n_groups; g++) order[fill[w->widths[g] > 4 ? 4 : w->widths[g]]++] = g;
}

/* Block b of row r, or a zero-padded copy in tmp [16·bits] when the row ends inside it. */
static inline const uint8_t *lb_block(const lb_uniform *w, int r, int b, uint8_t *tmp) {
  size_t bb = (size_t)lb_block_bytes(w->bits), off = (size_t)b * bb;
  const uint8_t *row = w->q + (size_t)r * w->row_stride;
  if (off + bb <= w->row_stride) return row + off;
  size_t have = w->row_stride > off ? w->row_stride - off : 0;
  memset(tmp, 0, bb);
  memcpy(tmp, row + off, have);
  return tmp;
}
void lb_rows_scalar(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1);
#if defined(__x86_64__)
void lb_rows_avx2(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1);
void lb_rows_vnni(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1);
void lb_rows_vnni_sub(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1);
void lb_mixed_rows_avx2(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1);
void lb_mixed_rows_vnni(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1);
/* Σ_g s_w·z·gx[g] of row r of a mixed tensor (f [n_groups] its scales as float; AVX2 gathers). */
float lb_mixed_zero_term_avx2(const lb_mixed *w, int r, const float *f, const float *gx);
int lb_cpu_avx2(void);
int lb_cpu_vnni(void);
#endif
#if defined(__aarch64__)
void lb_rows_neon(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1);
int lb_cpu_dotprod(void);
#endif

/* The 32-column part (0..3) of a block that kernel-order quad k (lanes 4k..4k+3) of a `bits`-bit
 * block falls in (lane_of below): the prefill tiles of groups of 32 and 64 put the quads of each
 * part together (lowbit-gemm.c), so a panel sums each part in one run. */
static inline int lb_quad_part(int k, int bits) {
  if (bits == 2 || bits == 3) return (k & 7) >> 1;
  if (bits == 4) return (k & 15) >> 2;
  return k >> 3;
}

/* Kernel-order lane of column c (0..127) within its block. */
static inline int lane_of(int c, int bits) {
  if (bits == 1) return 16 * (c & 7) + (c >> 3);
  if (bits == 2 || bits == 3) return 32 * (c & 3) + (c >> 2);
  if (bits == 4) return 64 * (c & 1) + (c >> 1);
  return c;
}

/* The body of lb_quantize_act, inline so lowbit-x86.c compiles it again for AVX2 (vroundss, vector max). */
static inline __attribute__((always_inline)) void lb_quantize_act_body(const float *x, const int32_t *perm, int in, int blocks, int bits0, const uint8_t *widths, lb_act *a) {
  for (int b = 0; b < blocks; b++) {
    int bits = widths ? widths[b] : bits0;
    int c0 = b * LB_BLOCK, n = in - c0 < LB_BLOCK ? in - c0 : LB_BLOCK;
    float v[LB_BLOCK], amax = 0;
    for (int c = 0; c < n; c++) {
      v[c] = perm ? x[perm[c0 + c]] : x[c0 + c];
      float m = fabsf(v[c]);
      amax = m > amax ? m : amax;
    }
    const int pairs = a->pairs && !widths && (bits == 2 || bits == 3);
    int8_t *out = pairs ? a->xq + (size_t)(b >> 1) * 256 + (b & 1) * 32 : a->xq + (size_t)b * LB_BLOCK;
    if (pairs)
      for (int k = 0; k < 4; k++) memset(out + 64 * k, 0, 32);
    else
      memset(out, 0, LB_BLOCK);
    /* float32 steps the reference (int8-activations.ts) repeats exactly: s = amax / 127, x · (1 / s), round half even */
    float s = amax / 127.0f, inv = amax > 0 ? 1.0f / s : 0.0f;
    int32_t sum32[4] = {0, 0, 0, 0};
    for (int c = 0; c < n; c++) {
      float t = rintf(v[c] * inv); /* round half even (the default rounding mode) */
      int qv = t > 127 ? 127 : t < -127 ? -127 : (int)t;
      int l = lane_of(c, bits);
      out[pairs ? 64 * (l >> 5) + (l & 31) : l] = (int8_t)qv;
      sum32[c >> 5] += qv;
    }
    a->xs[b] = s;
    a->xsum[b] = sum32[0] + sum32[1] + sum32[2] + sum32[3];
    if (a->xsum32) memcpy(a->xsum32 + 4 * (size_t)b, sum32, sizeof sum32);
  }
}

#if defined(__x86_64__)
void lb_quantize_act_avx2(const float *x, const int32_t *perm, int in, int blocks, int bits0, const uint8_t *widths, lb_act *a);
#endif

#endif
