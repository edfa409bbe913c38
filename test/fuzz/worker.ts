/**
 * A fuzz worker process: runs CLI cases in process, one after another, so a case costs a
 * function call rather than a Node start. The parent sends { id, argv }, gets back the exit
 * code and what the case wrote, and kills this process when a case runs too long or too big.
 */
import { runCli } from '../../src/cli/run.js';

interface Request {
  id: number;
  argv: string[];
}

const out = { stdout: '', stderr: '' };
const capture = (which: 'stdout' | 'stderr') =>
  ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    out[which] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined;
    cb?.();
    return true;
  }) as typeof process.stdout.write;
process.stdout.write = capture('stdout');
process.stderr.write = capture('stderr');

let queue: Promise<void> = Promise.resolve();
process.on('message', (msg: Request) => {
  queue = queue.then(async () => {
    out.stdout = '';
    out.stderr = '';
    const t0 = performance.now();
    let code: number;
    try {
      code = await runCli(['node', 'bitcrush', ...msg.argv]);
    } catch (e) {
      // runCli catches everything; this is a bug of the harness or of commander
      code = 1;
      out.stderr += `bitcrush-fuzz: runCli threw ${String(e)}\n`;
    }
    process.send!({ id: msg.id, code, stdout: out.stdout, stderr: out.stderr, ms: performance.now() - t0 });
  });
});
process.send!({ ready: true });
