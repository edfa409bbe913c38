/**
 * Which of the two kernel modules to run (scripts/build-wasm.sh): wasm/kernels.wasm (SIMD128,
 * every engine) or wasm/kernels-relaxed.wasm (the same kernels with relaxed SIMD's int8 dot
 * product; the same integers, float sums in another lane order). The relaxed module runs where
 * the engine validates a tiny module using i16x8.relaxed_dot_i8x16_i7x16_s: Chrome 114+ by
 * default, Node 20 with --experimental-wasm-relaxed-simd. No platform imports: the Node and
 * browser layers fetch the file this names.
 */
export type WasmKernelsKind = 'simd128' | 'relaxed';
export const WASM_KERNELS_KINDS: readonly WasmKernelsKind[] = ['simd128', 'relaxed'];

/** The module file of each kind, in wasm/. */
export const WASM_KERNEL_FILES: Record<WasmKernelsKind, string> = { simd128: 'kernels.wasm', relaxed: 'kernels-relaxed.wasm' };

// (func (param v128 v128) (result v128) local.get 0 local.get 1 i16x8.relaxed_dot_i8x16_i7x16_s):
// the instruction the relaxed kernels use (csrc/lowbit-int8.h)
const RELAXED_PROBE = Uint8Array.of(
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7b, 0x7b, 0x01, 0x7b, // type section
  0x03, 0x02, 0x01, 0x00, // function section
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfd, 0x92, 0x02, 0x0b, // code section
);

/** Whether this engine runs relaxed SIMD. */
export function relaxedSimdAvailable(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/**
 * The module to run: `auto` takes the relaxed one where the engine has relaxed SIMD, else the
 * SIMD128 one; asking for `relaxed` where the engine lacks it is an error that says how to enable it.
 */
export function chooseWasmKernels(want: WasmKernelsKind | 'auto' = 'auto'): WasmKernelsKind {
  if (want === 'simd128') return 'simd128';
  const ok = relaxedSimdAvailable();
  if (want === 'relaxed' && !ok) {
    throw new Error('the relaxed-SIMD kernels need an engine with relaxed SIMD (Node 20: node --experimental-wasm-relaxed-simd; Chrome 114+)');
  }
  return ok ? 'relaxed' : 'simd128';
}
