/**
 * Rotary position embedding frequencies, as transformers computes them
 * (`modeling_rope_utils.py`): pair i of a head (of size hs) turns by position · invFreq[i].
 * Plain RoPE: invFreq[i] = theta^(-2i / hs). Scaled variants change only these frequencies
 * (their attention factor is 1, so cos and sin are not rescaled).
 */
import { headSize, type LlamaConfig } from './config.js';

/** [headSize / 2] the angle per position of each rotated pair. */
export function ropeInvFrequencies(c: LlamaConfig): Float64Array {
  const hs = headSize(c);
  const inv = new Float64Array(hs / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = Math.pow(c.ropeTheta, (-2 * i) / hs);
  const s = c.ropeScaling;
  if (s === undefined) return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  if (s.type === 'factors') return inv.map((f, i) => f / s.factors[i]!);
  // llama3: wavelengths longer than the original context / lowFreqFactor are stretched by
  // `factor`, shorter than original / highFreqFactor kept, the band between interpolated
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}
