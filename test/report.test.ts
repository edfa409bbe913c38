/**
 * The results report: pure parts (Pareto front, ticks, README markers, results-file checks, SVG
 * well-formedness) and the smoke test of the whole path — `bench/run.js --quick` quantizes,
 * packs, loads and evaluates stories260K with three methods in child processes, then writes the
 * report into a temp dir, whose every row and plot is checked here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/io/errors.js';
import { paretoFront } from '../src/report/charts.js';
import { README_END, README_START, spliceReadme } from '../src/report/markdown.js';
import { mergeResults, parseResults, type ResultsFile, type RunRecord } from '../src/report/results.js';
import { barChart, chart, linearTicks, logTicks } from '../src/report/svg.js';

const RUN = fileURLToPath(new URL('../bench/run.js', import.meta.url));

/** Throws unless `svg` is one well-formed <svg> element: every tag closed in order, attributes quoted. */
function assertWellFormedSvg(svg: string, name: string): void {
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+" viewBox="0 0 \d+ \d+">/, `${name}: root`);
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<>]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    assert.doesNotMatch(svg.slice(last, m.index), /[<>]/, `${name}: stray markup before offset ${m.index}`);
    last = m.index + m[0].length;
    if (m[1]) assert.equal(stack.pop(), m[2], `${name}: </${m[2]}> closes the wrong element`);
    else if (!m[4]) stack.push(m[2]!);
  }
  assert.deepEqual(stack, [], `${name}: unclosed elements`);
  assert.doesNotMatch(svg, /NaN|undefined|Infinity/, `${name}: non-finite coordinates`);
}

test('paretoFront keeps the runs no other run beats on both axes', () => {
  const runs = [
    { id: 'a', bpw: 2, ppl: 100 },
    { id: 'b', bpw: 2, ppl: 50 },
    { id: 'c', bpw: 3, ppl: 60 },
    { id: 'd', bpw: 3, ppl: 20 },
    { id: 'e', bpw: 4, ppl: 20 },
    { id: 'f', bpw: 1, ppl: NaN },
  ];
  assert.deepEqual(paretoFront(runs, (r) => r.bpw, (r) => r.ppl).map((r) => r.id), ['b', 'd']);
});

test('axis ticks are round and cover the range', () => {
  assert.deepEqual(linearTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(linearTicks(1.2, 4.9, 6), [1.5, 2, 2.5, 3, 3.5, 4, 4.5]);
  assert.deepEqual(logTicks(4, 400), [5, 10, 20, 50, 100, 200]);
  assert.deepEqual(logTicks(3, 40000), [10, 100, 1000, 10000]);
  assert.deepEqual(logTicks(138, 238), [140, 160, 180, 200, 220], 'narrow log range: linear steps');
});

test('charts are well-formed SVG, with log axes and labels escaped', () => {
  const svg = chart({
    title: 'ppl <vs> bpw & "time"',
    xLabel: 'bpw',
    yLabel: 'ppl',
    logY: true,
    series: [
      { label: 'gptq', color: '#1f77b4', marker: 'square', points: [{ x: 2, y: 200, label: '2-bit' }, { x: 3, y: 8 }] },
      { label: 'front', color: '#444', style: 'line', dashed: true, points: [{ x: 2, y: 200 }, { x: 3, y: 8 }, { x: 4, y: -1 }] },
    ],
  });
  assertWellFormedSvg(svg, 'chart');
  assert.match(svg, /ppl &lt;vs&gt; bpw &amp; &quot;time&quot;/);
  assert.match(svg, />100</, 'a decade tick on the log axis');
  const bars = barChart({ title: 't', xLabel: 's', logX: true, bars: [{ label: 'a', value: 0.5, color: 'red' }, { label: 'b', value: NaN, color: 'blue' }] });
  assertWellFormedSvg(bars, 'bars');
  assert.match(bars, />n\/a</, 'a missing value says so instead of drawing a bar');
});

test('the README block replaces only what is between the markers, or is appended once', () => {
  const block = `${README_START}\nnew\n${README_END}`;
  const appended = spliceReadme('# bitcrush\n\nintro\n', block);
  assert.equal(appended, `# bitcrush\n\nintro\n\n## Results\n\n${block}\n`);
  const replaced = spliceReadme(`head\n${README_START}\nold table\n${README_END}\ntail\n`, block);
  assert.equal(replaced, `head\n${block}\ntail\n`);
  assert.equal(spliceReadme(replaced, block), replaced);
});

test('parseResults names the file and the problem', () => {
  assert.throws(() => parseResults('r.json', '{'), (e: unknown) => e instanceof InputError && /r\.json/.test(e.message) && /not JSON/.test(e.message));
  const base = { schema: 1, models: [], machine: {}, records: [{ id: 'm/x', model: 'm', method: 'rtn', label: 'x', linearBpw: 'two' }] };
  assert.throws(() => parseResults('r.json', JSON.stringify(base)), /linearBpw is not a number/);
  assert.throws(() => parseResults('r.json', JSON.stringify({ ...base, schema: 99 })), /schema 99/);
  const failed = { ...base, records: [{ id: 'm/x', model: 'm', method: 'rtn', label: 'x', error: 'boom' }] };
  assert.equal(parseResults('r.json', JSON.stringify(failed)).records[0]!.error, 'boom');
});

test('mergeResults replaces remeasured records, keeps the rest in suite order and records which command measured which', () => {
  const rec = (id: string, ppl: number) => ({ id, model: id.split('/')[0]!, method: 'rtn', label: id.split('/')[1]!, perplexity: [{ text: 't', ppl, windows: 1 }],
    linearBpw: 2, modelBpw: 2, fileBytes: 1, decodeTokensPerSecond: 1, prefillTokensPerSecond: 1, quantizeSeconds: null, wallSeconds: null, peakRssMiB: null }) as unknown as RunRecord;
  const file = (command: string, hash: string, records: RunRecord[], models: string[]) => ({
    schema: 1, name: 'full', mode: 'full', command, startedAt: command, totalSeconds: 1, machine: { cpu: 'c', cores: 2, memoryGiB: 1, os: 'o', loadAverage: [0] },
    versions: { node: '', npm: '' }, backend: { kind: 'wasm', threads: 1 }, commit: { hash, dirty: false }, decode: { steps: 1, prefillTokens: 1 },
    models: models.map((name) => ({ name, path: name, calibration: command, groupSize: 'g', eval: [], role: '' })), records,
  }) as ResultsFile;
  const order = ['a/fp32', 'a/x', 'b/fp32', 'b/x', 'b/y'];
  const first = file('one', 'h1', [rec('a/fp32', 1), rec('a/x', 2), rec('b/fp32', 3), rec('b/x', 4)], ['a', 'b']);
  const second = mergeResults(first, file('two', 'h2', [rec('b/y', 6), rec('b/x', 5)], ['b']), order);
  assert.deepEqual(second.records.map((r) => `${r.id}=${r.perplexity[0]!.ppl}`), ['a/fp32=1', 'a/x=2', 'b/fp32=3', 'b/x=5', 'b/y=6']);
  assert.deepEqual(second.models.map((m) => `${m.name}:${m.calibration}`), ['a:one', 'b:two']);
  assert.deepEqual(second.history!.map((h) => `${h.commit.hash}:${h.ids.join(',')}`), ['h1:a/fp32,a/x,b/fp32', 'h2:b/y,b/x']);
  // a third merge that remeasures everything of the first command drops it from the history
  const third = mergeResults(second, file('three', 'h3', [rec('a/fp32', 1), rec('a/x', 2), rec('b/fp32', 3)], ['a', 'b']), order);
  assert.deepEqual(third.history!.map((h) => h.commit.hash), ['h2', 'h3']);
  assert.equal(parseResults('m.json', JSON.stringify(third)).history!.length, 2);
  assert.throws(() => parseResults('m.json', JSON.stringify({ ...third, history: [{ ids: [] }] })), /history entries need command and ids/);
});

test('bench --quick: quantize → pack → load → eval → report, every row and plot present', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitcrush-report-test-'));
  try {
    const readme = join(dir, 'README.md');
    writeFileSync(readme, '# project\n\nwords the report must keep\n');
    const r = spawnSync(process.execPath, [RUN, '--quick', '--out-dir', dir, '--docs', join(dir, 'docs'), '--readme', readme], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const res = parseResults('quick.json', readFileSync(join(dir, 'quick.json'), 'utf8'));
    assert.deepEqual(res.records.map((x) => x.method), ['fp32', 'rtn', 'gptq', 'slim']);
    for (const rec of res.records) {
      assert.equal(rec.error, undefined, `${rec.id} failed: ${rec.error}`);
      assert.ok(rec.perplexity.length === 1 && Number.isFinite(rec.perplexity[0]!.ppl), `${rec.id}: perplexity`);
      assert.ok(rec.decodeTokensPerSecond > 0 && rec.prefillTokensPerSecond > 0, `${rec.id}: speed`);
      if (rec.method !== 'fp32') {
        assert.ok(rec.linearBpw > 2 && rec.linearBpw < 3, `${rec.id}: 2-bit with metadata, got ${rec.linearBpw}`);
        assert.ok(rec.quantizeSeconds! > 0 && rec.peakRssMiB! > 0, `${rec.id}: time and memory of the child`);
      }
    }
    const [fp32, rtn] = res.records;
    assert.ok(rtn!.perplexity[0]!.ppl > fp32!.perplexity[0]!.ppl, '2-bit RTN is worse than fp32');
    const slim = res.records[3]!;
    assert.ok(slim.bitMaps && new Set(slim.bitMaps.flatMap((b) => b.bits)).size > 1, 'slim records a mixed bit map');

    const md = readFileSync(join(dir, 'docs/results.md'), 'utf8');
    for (const rec of res.records) assert.ok(md.includes(`| \`${rec.id}\` |`), `results.md has the row of ${rec.id}`);
    assert.match(md, /Total runtime of the command: \d+/);
    const plots = [...md.matchAll(/!\[[^\]]*\]\(plots\/([^)]+\.svg)\)/g)].map((m) => m[1]!);
    for (const want of ['ppl-bpw-stories260K.svg', 'ppl-filebpw-stories260K.svg', 'decode-bpw-stories260K.svg', 'quantize-time.svg', 'bitmap-stories260K-slim_2-bit_g32.svg']) {
      assert.ok(plots.includes(want), `results.md shows ${want}`);
    }
    for (const p of plots) {
      const path = join(dir, 'docs/plots', p);
      assert.ok(existsSync(path), `${p} written`);
      assertWellFormedSvg(readFileSync(path, 'utf8'), p);
    }
    const rd = readFileSync(readme, 'utf8');
    assert.ok(rd.startsWith('# project\n\nwords the report must keep\n'), 'README text outside the markers kept');
    for (const rec of res.records) {
      const row = rd.split('\n').find((l) => l.includes(`\`${rec.id}\``));
      assert.ok(row, `README row of ${rec.id}`);
      assert.ok(row.includes(`| ${rec.perplexity[0]!.ppl.toFixed(2)} |`), `README perplexity of ${rec.id} is the record's`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
