/**
 * The defects of the reliability review (issue 15), each as the user met it: the CLI run as a
 * process, judged by exit code, its one-line message and what it left on disk.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sortModelFiles } from '../src/browser/files.js';
import { bitWidthLegend } from '../src/report/bit-colors.js';
import { smallTokenizerJson, writeHfStories, STORIES_BIN } from './hf-fixture.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const SHARED = fileURLToPath(new URL('../../../shared/', import.meta.url));
const TOK512 = join(SHARED, 'models/stories260K/tok512.bin');
const HELDOUT = join(SHARED, 'data/tinystories/heldout.txt');
const CALIB = join(SHARED, 'data/tinystories/calib.txt');
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-rely-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function bitcrush(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit code 2, one line `bitcrush: …` matching `pattern` on stderr, no stack trace. */
function assertInputError(r: ReturnType<typeof bitcrush>, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !/^(quantize|eval|tokenize)\b.*%/.test(l));
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^bitcrush: /);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.match(lines[0]!, pattern);
}

/** A directory of its own for one test, with stories260K and its tokenizer copied in. */
function storiesDir(name: string): { dir: string; model: string } {
  const dir = join(tmp, name);
  mkdirSync(dir);
  copyFileSync(STORIES_BIN, join(dir, 'stories260K.bin'));
  copyFileSync(TOK512, join(dir, 'tok512.bin'));
  return { dir, model: join(dir, 'stories260K.bin') };
}

function hfDir(name: string, tokenizer: (t: Record<string, unknown>) => void = () => {}): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeHfStories(dir);
  const t = JSON.parse(smallTokenizerJson()) as Record<string, unknown>;
  tokenizer(t);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t));
  return dir;
}

describe('quantize checks its output before any work', () => {
  it('--out equal to the input model is refused and the model is untouched (defect 1)', () => {
    const { model } = storiesDir('same');
    const before = readFileSync(model);
    assertInputError(bitcrush('quantize', model, '--method', 'rtn', '--bits', '2', '--out', model), /--out .*stories260K\.bin is the input/);
    assert.ok(Buffer.compare(before, readFileSync(model)) === 0, 'the source model changed');
    // through a symlink, and into a Hugging Face directory's own weights, too
    const link = join(tmp, 'same', 'link.bin');
    symlinkSync(model, link);
    assertInputError(bitcrush('quantize', model, '--method', 'rtn', '--bits', '2', '--out', link), /is the input/);
    const hf = hfDir('same-hf');
    const weights = join(hf, 'model.safetensors');
    const w0 = readFileSync(weights);
    assertInputError(bitcrush('quantize', hf, '--method', 'rtn', '--bits', '2', '--out', weights), /is the input/);
    assert.ok(Buffer.compare(w0, readFileSync(weights)) === 0);
  });

  it('--out naming a directory fails at once, leaving no work directory (defect 2)', () => {
    const { dir, model } = storiesDir('isdir');
    const out = join(dir, 'out');
    mkdirSync(out);
    const t0 = performance.now();
    assertInputError(bitcrush('quantize', model, '--method', 'gptq', '--bits', '2', '--calib', CALIB, '--nsamples', '4', '--seqlen', '64', '--out', out), /--out .*out is a directory/);
    assert.ok(!existsSync(`${out}.partial`), 'work directory left behind');
    assert.ok(performance.now() - t0 < 30_000);
    assertInputError(bitcrush('quantize', model, '--method', 'rtn', '--out', join(dir, 'nope', 'x.bcq')), /directory .*nope does not exist/);
  });

  it('a truncated inputs file in the work directory is an input error naming it (defect 7)', () => {
    const { dir, model } = storiesDir('resume');
    const out = join(dir, 'q.bcq');
    const args = ['quantize', model, '--method', 'gptq', '--bits', '2', '--calib', CALIB, '--nsamples', '4', '--seqlen', '32', '--out', out];
    assert.equal(bitcrush(...args, '--stop-after-block', '0').code, 0);
    const inputs = join(`${out}.partial`, 'inputs-1.f32');
    truncateSync(inputs, 1000);
    assertInputError(bitcrush(...args, '--resume'), /inputs-1\.f32: holds 1000 bytes, this run needs 8192 float32 values/);
  });

  it('a calibration text shorter than one window names the file', () => {
    const { dir, model } = storiesDir('calib');
    const calib = join(dir, 'short.txt');
    writeFileSync(calib, '');
    assertInputError(bitcrush('quantize', model, '--method', 'gptq', '--calib', calib, '--out', join(dir, 'x.bcq')), /short\.txt: the calibration text has 1 tokens/);
  });
});

describe('non-finite numbers never pass as results (defect 5)', () => {
  it('a NaN weight in a llama2.c file is refused, naming the tensor', () => {
    const { model } = storiesDir('nan');
    const b = readFileSync(model);
    b.writeFloatLE(NaN, 28 + 4 * 1000); // inside the token embedding
    writeFileSync(model, b);
    assertInputError(bitcrush('eval', model, '--text', HELDOUT, '--seqlen', '32', '--max-windows', '1'), /stories260K\.bin: tensor model\.embed_tokens\.weight holds a non-finite value \(NaN\) at index 1000/);
    assertInputError(bitcrush('generate', model, '-n', '4'), /non-finite value/);
  });

  it('finite weights that overflow float32 end with a clear error, not perplexity NaN', () => {
    const { model } = storiesDir('overflow');
    const b = readFileSync(model);
    for (let i = 0; i < 512 * 64; i++) b.writeFloatLE(3e38, 28 + 4 * i); // the whole embedding
    writeFileSync(model, b);
    assertInputError(bitcrush('eval', model, '--text', HELDOUT, '--seqlen', '32', '--max-windows', '1'), /stories260K\.bin: the model computes non-finite logits/);
    assertInputError(bitcrush('generate', model, '-n', '4', '-t', '0'), /non-finite logits/);
  });

  it('logits so large that the perplexity overflows float64 are an error, not "ppl": null', () => {
    const { model } = storiesDir('ppl-overflow');
    const b = readFileSync(model);
    const [dim, hidden, layers, heads, kvHeads, vocab] = [0, 1, 2, 3, 4, 5].map((i) => b.readInt32LE(4 * i)) as [number, number, number, number, number, number];
    const kv = (dim * kvHeads) / heads;
    // llama2.c order: embedding, then per layer norms and q k v o, norms, w1 w2 w3; then the final norm
    const finalNorm = 28 + 4 * (vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim));
    for (let i = 0; i < dim; i++) b.writeFloatLE(1e30, finalNorm + 4 * i);
    writeFileSync(model, b);
    assertInputError(bitcrush('eval', model, '--text', HELDOUT, '--seqlen', '32', '--max-windows', '1', '--json'), /stories260K\.bin: perplexity overflows: a mean loss of .* nats per token/);
  });

  it('a safetensors header length one byte short (every tensor shifted) is refused', () => {
    const dir = hfDir('shifted');
    const p = join(dir, 'model.safetensors');
    const b = readFileSync(p);
    const n = b.readBigUInt64LE(0);
    // pad the JSON with a space so it still parses, then claim one byte less
    const json = b.subarray(8, 8 + Number(n)).toString('utf8');
    const padded = Buffer.concat([Buffer.alloc(8), Buffer.from(`${json} `), b.subarray(8 + Number(n))]);
    padded.writeBigUInt64LE(n, 0);
    writeFileSync(p, padded);
    assertInputError(bitcrush('eval', dir, '--text', HELDOUT, '--seqlen', '32', '--max-windows', '1'), /model\.safetensors: bad safetensors header: the tensors cover/);
  });
});

describe('tokenizer.json ids and detection by content', () => {
  it('an added token id of 1e9 is refused at once, not a hang (defect 4)', () => {
    const dir = hfDir('huge-id', (t) => {
      (t['added_tokens'] as Array<{ id: number }>)[0]!.id = 1e9;
    });
    const t0 = performance.now();
    assertInputError(bitcrush('info', dir), /tokenizer\.json: added_tokens\[0\]\.id = 1000000000 is not a token id/);
    assert.ok(performance.now() - t0 < 20_000);
  });

  it('negative token ids are an input error, not an internal one (defect 6)', () => {
    const dir = hfDir('negative-id', (t) => {
      const vocab = (t['model'] as { vocab: Record<string, number> }).vocab;
      vocab['▁t'] = -1;
    });
    assertInputError(bitcrush('generate', dir, '-p', 'the cat', '-n', '2'), /tokenizer\.json: model\.vocab\["▁t"\] = -1 is not a token id/);
  });

  it('info on a directory whose tokenizer.json is bad JSON fails (defect 9)', () => {
    const dir = hfDir('bad-json');
    writeFileSync(join(dir, 'tokenizer.json'), '{ "model": ');
    assertInputError(bitcrush('info', dir), /tokenizer\.json: bad JSON/);
    // absent, it is reported and info succeeds
    rmSync(join(dir, 'tokenizer.json'));
    const r = bitcrush('info', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /tokenizer\s+not found/);
  });

  it('a packed file named *.bin runs as a packed file (defect 8)', () => {
    const { dir, model } = storiesDir('packed-bin');
    const out = join(dir, 'q.bin');
    assert.equal(bitcrush('quantize', model, '--method', 'rtn', '--bits', '4', '--out', out).code, 0);
    const r = bitcrush('info', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const g = bitcrush('generate', out, '-n', '8', '-t', '0');
    assert.equal(g.code, 0, g.stderr);
    // and a packed file cannot be quantized again
    assertInputError(bitcrush('quantize', out, '--method', 'rtn', '--out', join(dir, 'qq.bcq')), /q\.bin: is a bitcrush packed file/);
  });
});

describe('small ones (defect 10)', () => {
  const { dir, model } = { dir: join(tmp, 'small'), model: join(tmp, 'small', 'stories260K.bin') };
  const packed = join(tmp, 'small', 'slim.bcq');
  it('quantize warns when group scales cost more than the weights', () => {
    mkdirSync(dir);
    copyFileSync(STORIES_BIN, model);
    copyFileSync(TOK512, join(dir, 'tok512.bin'));
    const r = bitcrush('quantize', model, '--method', 'rtn', '--bits', '2', '--group-size', '7', '--out', join(dir, 'g7.bcq'), '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^warning: --group-size 7 stores at least 2\.50 bits per weight of group scales, more than the 2 bits/m);
    const bpw = (JSON.parse(r.stdout) as { linearBpw: number }).linearBpw;
    assert.ok(bpw > 4, `${bpw} bits per weight`);
    const quiet = bitcrush('quantize', model, '--method', 'rtn', '--bits', '2', '--group-size', '32', '--out', join(dir, 'g32.bcq'));
    assert.doesNotMatch(quiet.stderr, /warning/);
  });

  it('info on a packed file names its method and bits; inspect --plot says where it wrote', () => {
    const q = bitcrush('quantize', model, '--method', 'slim', '--bits', '2', '--group-size', '32', '--calib', CALIB, '--nsamples', '4', '--seqlen', '32', '--out', packed, '--json');
    assert.equal(q.code, 0, q.stderr);
    const summary = JSON.parse(q.stdout) as { linearBpw: number };
    const info = bitcrush('info', packed);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`^packed +slim: ${summary.linearBpw.toFixed(4)} bits per weight in the block linears`, 'm'));
    const j = JSON.parse(bitcrush('info', packed, '--json').stdout) as { packed: { method: string; linearBpw: number } };
    assert.equal(j.packed.method, 'slim');
    assert.equal(j.packed.linearBpw, summary.linearBpw);

    const svgPath = join(dir, 'map.svg');
    const r = bitcrush('inspect', packed, '--plot', svgPath);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^plot +wrote ${svgPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ tensors`, 'm'));
    // the plot's legend uses the one bit-width palette the browser card uses too
    const svg = readFileSync(svgPath, 'utf8');
    for (const it of bitWidthLegend()) assert.ok(svg.includes(`fill="${it.color}"`), `legend colour ${it.color} of ${it.label}`);
    assertInputError(bitcrush('inspect', packed, '--plot', dir), /--plot .*small is a directory/);
  });

  it('generate --json: text, counts, stop reason and tokens/s as one object', () => {
    const r = bitcrush('generate', model, '-n', '16', '-t', '0', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { text: string; generatedTokens: number; stop: string; tokensPerSecond: number };
    assert.match(out.text, /^Once upon a time/);
    assert.equal(out.generatedTokens, 16);
    assert.equal(out.stop, 'max-tokens');
    assert.ok(out.tokensPerSecond > 0);
  });

  it('the browser names a truncated packed file as truncated', () => {
    const bytes = new Uint8Array(readFileSync(packed));
    const tok = new Uint8Array(readFileSync(TOK512));
    assert.throws(
      () => sortModelFiles([{ name: 'slim.bcq', bytes: bytes.subarray(0, bytes.length >> 1) }, { name: 'tok512.bin', bytes: tok }]),
      /^InputError: slim\.bcq: .*truncated/,
    );
    assert.equal(sortModelFiles([{ name: 'slim.bcq', bytes }, { name: 'tok512.bin', bytes: tok }]).model.name, 'slim.bcq');
  });
});

describe('found by the fuzz suite', () => {
  it('an eval text shorter than one window names the text file', () => {
    const { dir, model } = storiesDir('short-text');
    const text = join(dir, 'tiny.txt');
    writeFileSync(text, 'Once');
    assertInputError(bitcrush('eval', model, '--text', text, '--seqlen', '32'), /tiny\.txt: the text has \d+ tokens, fewer than one window of 32/);
  });

  it('a tokenizer with fewer tokens than the model produces: an input error naming the tokenizer', () => {
    const { dir, model } = storiesDir('short-tok');
    const tok = join(dir, 'tok512.bin');
    truncateSync(tok, 4557); // 347 whole tokens: byte fallbacks present, the model's later ids missing
    assertInputError(bitcrush('generate', model, '-n', '64', '-t', '0'), /tok512\.bin: token id \d+ is outside this tokenizer's \d+ tokens/);
  });

  it('a llama2.c tokenizer without the 256 byte-fallback tokens is refused when read', () => {
    const { dir, model } = storiesDir('no-bytes');
    truncateSync(join(dir, 'tok512.bin'), 142);
    assertInputError(bitcrush('eval', model, '--text', HELDOUT, '--seqlen', '32', '--max-windows', '1'), /tok512\.bin: only \d+ tokens: a llama2\.c tokenizer starts with 3 special and 256 byte-fallback tokens/);
  });
});
