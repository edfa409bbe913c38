/* The NEON dot product shared by the arm64 kernels (lowbit-arm.c, binary-arm.c); aarch64 only. */
#ifndef BITCRUSH_ARM_DOT_H
#define BITCRUSH_ARM_DOT_H

#include <arm_neon.h>

/*
 * sdot on any arm64 build: GCC's arm_neon.h declares vdotq_s32 for functions targeting the
 * extension; older clang headers declare it only when the whole file is, so clang gets the
 * instruction's encoding with its operands pinned to v0-v2.
 */
#if defined(__clang__)
static inline __attribute__((always_inline)) int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  register int32x4_t d __asm__("v0") = acc;
  register int8x16_t n __asm__("v1") = a;
  register int8x16_t m __asm__("v2") = b;
  __asm__(".inst 0x4e829420" : "+w"(d) : "w"(n), "w"(m)); /* sdot v0.4s, v1.16b, v2.16b */
  return d;
}
#define T_DOT
#else
#define T_DOT __attribute__((target("arch=armv8.2-a+dotprod")))
#define sdot(acc, a, b) vdotq_s32(acc, a, b)
#endif

#endif
