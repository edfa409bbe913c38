/** The WGSL kernel of a packed tensor, by its format family (formats/registry.ts). */
import { getFormat } from '../../formats/registry.js';
import type { PackedTensor } from '../../formats/types.js';
import type { LinearKernel } from '../linear.js';
import { binaryKernel } from './binary.js';
import { codebookKernel } from './codebook.js';
import { mixedKernel } from './mixed.js';
import { uniformKernel } from './uniform.js';

export { denseKernel } from './dense.js';

export function packedKernel(t: PackedTensor): LinearKernel {
  const family = getFormat(t.format).family;
  switch (family) {
    case 'uniform':
      return uniformKernel(t);
    case 'mixed':
      return mixedKernel(t);
    case 'codebook':
      return codebookKernel(t);
    case 'binary':
      return binaryKernel(t);
  }
}
