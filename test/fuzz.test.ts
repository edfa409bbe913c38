/**
 * The fuzz suite inside `npm test`: 480 seeded cases (30 per input type) over every loader and
 * every command that reads a file; every 16th also runs as a real process. `npm run fuzz`
 * runs more (see test/fuzz/runner.ts for what a case must do to behave).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSummary, runFuzz } from './fuzz/runner.js';

test('fuzz: 480 mutated inputs give exit 2 with one line naming the file, or finite results', { timeout: 240_000 }, async (t) => {
  const s = await runFuzz({ cases: 480, seed: 20261203, workers: 2, spawnEvery: 16 });
  const report = formatSummary(s);
  t.diagnostic(report);
  assert.equal(s.cases, 480);
  assert.equal(s.spawned, 30);
  // every input type was exercised and mostly rejected (a mutator whose cases all pass unchanged would test nothing)
  for (const [target, t] of Object.entries(s.byTarget)) assert.ok(t['error-names-file'] + t['error-names-other-input'] >= 10, `${target}: too few rejected cases\n${report}`);
  assert.equal(s.verdicts.misbehaving, 0, report);
});
