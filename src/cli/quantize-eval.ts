/** Perplexity of the packed file `quantize` just wrote (run on its packed kernels), and optionally of the float model. */
import type { Backend } from '../backend/types.js';
import { readText } from '../io/bytes.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { ModelSource } from '../model/weights.js';
import { perplexityOfText } from '../eval/perplexity.js';
import { FileSource } from '../node/fs.js';
import { openRunnable, runnableLinears } from '../node/packed-open.js';
import { LlamaModel } from '../runtime/model.js';
import { namingText } from './eval.js';
import { createProgress } from './progress.js';

export interface EvalReport {
  text: string;
  seqlen: number;
  windows: number;
  ppl: number;
  fp32?: number;
  seconds: number;
}

export function evaluateFiles(
  packedPath: string,
  floatSource: ModelSource,
  tokenizer: Tokenizer,
  backend: Backend,
  texts: string[],
  seqLen: number,
  withFp32: boolean,
): EvalReport[] {
  const packed = openRunnable(packedPath);
  const model = new LlamaModel(packed.source, { backend, linear: runnableLinears(packed, backend) });
  const float = withFp32 ? new LlamaModel(floatSource, { backend }) : undefined;
  const reports = texts.map((path): EvalReport => {
    const file = new FileSource(path);
    const text = readText(file);
    file.close();
    const t0 = performance.now();
    const progress = createProgress(process.stderr, `eval ${path}`, 'windows');
    const r = namingText(path, () => perplexityOfText(model, tokenizer, text, { seqLen, onProgress: (d, t) => progress.update(d, t) }));
    progress.finish();
    const fp32 = float ? perplexityOfText(float, tokenizer, text, { seqLen }).ppl : undefined;
    return { text: path, seqlen: seqLen, windows: r.windows, ppl: r.ppl, fp32, seconds: (performance.now() - t0) / 1000 };
  });
  model.dispose();
  float?.dispose();
  return reports;
}
