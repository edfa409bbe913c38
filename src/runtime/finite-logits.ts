import { InputError } from '../io/errors.js';

/**
 * The model's logits hold a NaN or an infinity: its weights are finite (loaders check) but
 * overflow float32 on the way, so the file is unusable. An input error (exit code 2) naming
 * the model file, never a NaN perplexity or an empty story with exit code 0.
 */
export class NonFiniteLogitsError extends InputError {
  constructor(model: string, position: number) {
    super(model, `the model computes non-finite logits (NaN or infinity) at token ${position}: its weights overflow float32 or are corrupt`);
  }
}
