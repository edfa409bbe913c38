/**
 * npm run bench:scale — quantization and fp32 evaluation at real sizes, as a user runs them:
 * `bitcrush quantize` (GPTQ 2-bit g128, 32 × 512 calibration tokens of WikiText-2) on a
 * TinyLlama-1.1B-shaped random BF16 directory (22 layers), and on a 4-layer Llama-2-7B-shaped
 * one whose figures are extrapolated to 32 layers; `bitcrush eval` (fp32 reference mode, BF16
 * weights kept 16-bit) on the 7B-shaped one. Per phase (tokenize, capture, quantize, write):
 * wall and CPU seconds and RSS, from the command's --json; peak RSS sampled from /proc every
 * 100 ms; 'other' is what no phase covers (start-up, opening the model). Options: --tiny-layers N
 * (22), --big-layers N (4), --nsamples N (32: the issue's figure; fewer for a quick look),
 * --skip-tiny, --skip-7b, --json.
 * Models are written once into $TMPDIR/bitcrush-bench-models (about 4.3 GB).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomHfDir, shared } from './random-hf.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MODELS = join(tmpdir(), 'bitcrush-bench-models');
const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const num = (f: string, d: number) => (argv.includes(f) ? Number(argv[argv.indexOf(f) + 1]) : d);

interface Phase { wallSeconds: number; cpuSeconds: number; rssMiB: number; calls: number }
interface Run { wallSeconds: number; cpuSeconds?: number; peakRssMiB: number; out: Record<string, unknown> }

/** Runs the CLI, sampling the child's RSS; returns its parsed --json line. */
function runCli(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    let cpu = 0; // the child's CPU seconds at the last sample
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) / 1024);
        // utime + stime (fields 14, 15 after the parenthesised name), in clock ticks of 1/100 s
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        cpu = Math.max(cpu, (Number(f[11]) + Number(f[12])) / 100);
      } catch {
        // the child has exited
      }
    };
    const timer = setInterval(sample, 100);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!flag('--json')) process.stderr.write(`  ${String(d).trimEnd().split('\n').at(-1)}\r`);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`bitcrush ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').at(-1)}`));
      const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
      resolve({ wallSeconds: (performance.now() - t0) / 1000, cpuSeconds: cpu, peakRssMiB: Math.max(peak, Number(out['peakRssMiB'] ?? 0)), out });
    });
  });
}

function quantizeArgs(dir: string, out: string): string[] {
  return ['quantize', dir, '--method', 'gptq', '--bits', '2', '--group-size', '128', '--calib', shared('data/wikitext2/test.txt'), '--nsamples', String(num('--nsamples', 32)), '--seqlen', '512', '--out', out];
}

/** One line per phase, then what no phase covers (process start, opening the model, the summary). */
function phaseTable(phases: Record<string, Phase>, r: Run): string[] {
  const line = (name: string, wall: number, cpu: string, rss: string) =>
    `  ${name.padEnd(9)} ${wall.toFixed(1).padStart(8)} s wall ${cpu.padStart(8)} s CPU${rss ? `   RSS ${rss.padStart(6)} MiB` : ''}`;
  const rows = Object.entries(phases).map(([name, p]) => line(name, p.wallSeconds, p.cpuSeconds.toFixed(1), p.rssMiB.toFixed(0)));
  const covered = Object.values(phases).reduce((s, p) => s + p.wallSeconds, 0);
  rows.push(line('other', r.wallSeconds - covered, r.cpuSeconds === undefined ? '' : (r.cpuSeconds - Object.values(phases).reduce((s, p) => s + p.cpuSeconds, 0)).toFixed(1), ''));
  return rows;
}

async function main(): Promise<void> {
  const report: Record<string, unknown> = { loadAverageBefore: loadavg() };
  const lines: string[] = [`bench:scale — load average ${loadavg().map((v) => v.toFixed(2)).join(' ')} (2-core machine; other work inflates wall time)`];

  if (!flag('--skip-tiny')) {
    const layers = num('--tiny-layers', 22);
    const t0 = performance.now();
    const dir = randomHfDir(join(MODELS, `tinyllama-${layers}`), 'tinyllama', layers);
    const writeSeconds = (performance.now() - t0) / 1000;
    const out = join(MODELS, `tinyllama-${layers}-gptq-w2g128.bcq`);
    const r = await runCli(quantizeArgs(dir, out));
    rmSync(out, { force: true });
    report['tinyllama'] = { layers, modelWriteSeconds: writeSeconds, ...r };
    lines.push(
      `TinyLlama-1.1B shape, ${layers} layers, BF16: GPTQ 2-bit g128, ${num('--nsamples', 32)} × 512 calibration tokens`,
      `  total     ${r.wallSeconds.toFixed(1).padStart(8)} s wall (target ≤ 900) ${r.cpuSeconds!.toFixed(1).padStart(8)} s CPU   peak RSS ${r.peakRssMiB.toFixed(0)} MiB (target ≤ 3072)   file ${(Number(r.out['fileBytes']) / 1e6).toFixed(1)} MB`,
      ...phaseTable(r.out['phases'] as Record<string, Phase>, r),
    );
  }

  if (!flag('--skip-7b')) {
    const layers = num('--big-layers', 4);
    const dir = randomHfDir(join(MODELS, `llama2-7b-${layers}`), 'llama2-7b', layers);
    const out = join(MODELS, `llama2-7b-${layers}-gptq-w2g128.bcq`);
    const q = await runCli(quantizeArgs(dir, out));
    rmSync(out, { force: true });
    const phases = q.out['phases'] as Record<string, Phase>;
    // per block: capture + quantize scale with the layer count; tokenize does not; write with the file
    const perBlock = ((phases['capture']?.wallSeconds ?? 0) + (phases['quantize']?.wallSeconds ?? 0)) / layers;
    const fileBytes = Number(q.out['fileBytes']);
    // memory: the activations of the windows, one float block and the results so far — only the packed results grow with depth
    const packedPerBlock = fileBytes / (layers + 2); // rough: the embedding and head count about one block each at 7B shapes
    const rss32 = q.peakRssMiB + ((32 - layers) * packedPerBlock) / 2 ** 20;
    const text = shared('data/wikitext2/test.txt');
    const e = await runCli(['eval', dir, '--text', text, '--seqlen', '128', '--max-windows', '2']);
    const blockBf16 = (4 * 4096 * 4096 + 3 * 4096 * 11008) * 2;
    const eval32 = e.peakRssMiB + ((32 - layers) * blockBf16) / 2 ** 20;
    report['llama2-7b'] = { layers, quantize: q, eval: e, extrapolated32: { quantizeWallSeconds: perBlock * 32, quantizePeakRssMiB: rss32, evalPeakRssMiB: eval32 } };
    lines.push(
      `Llama-2-7B shape, ${layers} layers, BF16: GPTQ 2-bit g128, ${num('--nsamples', 32)} × 512 calibration tokens`,
      `  total     ${q.wallSeconds.toFixed(1).padStart(8)} s wall   peak RSS ${q.peakRssMiB.toFixed(0)} MiB`,
      ...phaseTable(phases, q),
      `  → 32 layers: about ${(perBlock * 32 / 60).toFixed(0)} min of capture + quantize, peak RSS about ${rss32.toFixed(0)} MiB (target ≤ 12288)`,
      `fp32 eval (BF16 weights kept 16-bit), ${layers} layers, 2 windows of 128: peak RSS ${e.peakRssMiB.toFixed(0)} MiB, ${e.wallSeconds.toFixed(1)} s` +
        ` → 32 layers: about ${eval32.toFixed(0)} MiB (target ≤ 16384)`,
    );
  }
  report['loadAverageAfter'] = loadavg();
  lines.push(`load average after: ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  process.stdout.write(flag('--json') ? `${JSON.stringify(report)}\n` : `${lines.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:scale: ${(e as Error).message}\n`);
  process.exit(1);
});
